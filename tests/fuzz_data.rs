//! Fuzzing the data path as a user's own data reaches it: generated image
//! folders, CIFAR files, array files and IDX files, each damaged in the
//! ways files are (decompression bombs, gzip bombs, thin strips,
//! truncation, flipped bits, a wrong extension, odd colour modes, names
//! that are not UTF-8, huge declared sizes). Each case loads both splits
//! and builds every batch, as training does. The promise under test: a
//! typed error naming the file, or a correct result, never a panic or an
//! abort, and a bounded peak memory, measured per case from the process's
//! high-water mark (`VmHWM`, reset before each case).
//!
//! The cases run one after another in one test, so that each one's peak
//! memory is its own.

use image::{DynamicImage, ImageFormat};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use wengert::core::Tensor;
use wengert::data::{Dataset, Decode, LoadOptions, Loader, Split};

/// The most a case may add to the process's peak resident memory: twice
/// what the largest legitimate case decodes, an 8192 × 8192 image (64 MiB
/// grey, 192 MiB as RGB).
const PEAK_BOUND: u64 = 512 << 20;

/// What a case must end in.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Loads, with this many training images.
    Loads(usize),
    /// A typed error naming a file or folder.
    Refused,
    /// Either, as long as it is one of the two (random damage that may
    /// leave a file readable).
    Either,
}

fn scratch() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-data");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A field of `/proc/self/status` in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Resets the high-water mark to the present resident size (Linux
/// `clear_refs` 5); false where that is not possible.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Loads both splits of `dir` and builds every batch of each (decoding
/// image files as training would); the training set's size, or the error.
fn load_all(dir: &Path, options: LoadOptions) -> wengert::core::Result<usize> {
    let train = Dataset::load_with(dir, Split::Train, options)?;
    let test = Dataset::load_with(dir, Split::Test, options)?;
    let n = train.len();
    for set in [train, test] {
        let loader = Loader::new(set, 4, 0)?;
        for b in 0..loader.batches() {
            let batch = loader.batch::<f32>(0, b)?;
            let x: &Tensor<f32> = &batch.images;
            assert!(x.data().iter().all(|v| v.is_finite()), "{}: a batch holds a non-finite pixel", dir.display());
        }
    }
    Ok(n)
}

/// Tallies of the cases run.
#[derive(Default)]
struct Tally {
    cases: usize,
    loaded: usize,
    refused: usize,
    peak: u64,
    peak_case: String,
}

impl Tally {
    /// Runs one case on the folder `dir` and checks what it ends in.
    fn run(&mut self, name: &str, dir: &Path, options: LoadOptions, expect: Expect) {
        let measured = reset_peak();
        let before = status_bytes("VmRSS:").unwrap_or(0);
        let result = catch_unwind(AssertUnwindSafe(|| load_all(dir, options)));
        let peak = status_bytes("VmHWM:").unwrap_or(0).saturating_sub(before);
        let result = result.unwrap_or_else(|_| panic!("{name}: panicked"));
        match (&result, expect) {
            (Ok(n), Expect::Loads(want)) => assert_eq!(*n, want, "{name}: loaded {n} training images, not {want}"),
            (Err(e), Expect::Loads(_)) => panic!("{name}: refused a good data set: {e}"),
            (Ok(n), Expect::Refused) => panic!("{name}: accepted damaged data ({n} images)"),
            _ => {}
        }
        if let Err(e) = &result {
            let text = e.to_string();
            assert!(text.contains(&dir.display().to_string()), "{name}: the error names no file: {text}");
        }
        if measured {
            assert!(peak <= PEAK_BOUND, "{name}: peak memory grew by {} MiB", peak >> 20);
            if peak > self.peak {
                (self.peak, self.peak_case) = (peak, name.to_string());
            }
        }
        self.cases += 1;
        if result.is_ok() {
            self.loaded += 1;
        } else {
            self.refused += 1;
        }
    }
}

// ----- image files -----

/// An image of `w × h` in one of the colour modes files come in.
fn picture(mode: usize, w: u32, h: u32, seed: u8) -> DynamicImage {
    let rgb = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([seed, (x * 7) as u8, (y * 11) as u8]));
    let img = DynamicImage::ImageRgb8(rgb);
    match mode % 6 {
        0 => img,
        1 => DynamicImage::ImageLuma8(img.to_luma8()),
        2 => DynamicImage::ImageLumaA8(img.to_luma_alpha8()),
        3 => DynamicImage::ImageRgba8(img.to_rgba8()),
        4 => DynamicImage::ImageLuma16(img.to_luma16()),
        _ => DynamicImage::ImageRgba16(img.to_rgba16()),
    }
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let img = match format {
        // JPEG holds 8-bit grey or colour only.
        ImageFormat::Jpeg if img.color().has_color() => DynamicImage::ImageRgb8(img.to_rgb8()),
        ImageFormat::Jpeg => DynamicImage::ImageLuma8(img.to_luma8()),
        _ => img.clone(),
    };
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A PNG whose header declares `w × h` 8-bit grey pixels, with the CRC
/// fixed so that only the size is wrong, and `rows` real rows of zeros.
fn png_declaring(w: u32, h: u32, rows: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let row = vec![0u8; w as usize + 1];
    for _ in 0..rows {
        z.write_all(&row).unwrap();
    }
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// CRC-32 (ISO-HDLC, PNG's), bit by bit: the test needs a few hundred bytes' worth.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// An image folder of two classes, two images a class and split, each
/// written by `file(split, class, i)` as `(name, bytes)`.
fn folder(dir: &Path, mut file: impl FnMut(&str, usize, usize) -> (String, Vec<u8>)) {
    for split in ["train", "val"] {
        for class in 0..2 {
            let d = dir.join(split).join(format!("class{class}"));
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..2 {
                let (name, bytes) = file(split, class, i);
                std::fs::write(d.join(name), bytes).unwrap();
            }
        }
    }
}

/// Damages `bytes` at random: truncation, flipped bits or overwritten bytes.
fn damage(bytes: &mut Vec<u8>, rng: &mut impl Rng) -> &'static str {
    match rng.random_range(0..3) {
        0 => {
            let keep = rng.random_range(0..bytes.len());
            bytes.truncate(keep);
            "truncated"
        }
        1 => {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            "flipped"
        }
        _ => {
            let i = rng.random_range(0..bytes.len());
            bytes[i] = rng.random();
            "overwritten"
        }
    }
}

fn image_cases(root: &Path, tally: &mut Tally, rng: &mut rand::rngs::StdRng) {
    let sized = LoadOptions::default().with_image_size(16);
    let formats = [(ImageFormat::Png, "png"), (ImageFormat::Jpeg, "jpg")];
    // Every colour mode in both formats, with and without an image size,
    // and under both decode modes: all load.
    for mode in 0..6 {
        for (format, ext) in formats {
            for (k, options) in
                [sized, LoadOptions::default(), sized.with_decode(Decode::EachBatch)].into_iter().enumerate()
            {
                let dir = root.join(format!("mode{mode}-{ext}-{k}"));
                folder(&dir, |_, c, i| {
                    (format!("{i}.{ext}"), encode(&picture(mode, 12, 10, (40 * c + i) as u8), format))
                });
                tally.run(&format!("colour mode {mode} as {ext}, options {k}"), &dir, options, Expect::Loads(4));
            }
        }
    }
    // A wrong extension: the content decides, with and without an image size.
    for (options, k) in [(sized, "sized"), (LoadOptions::default(), "as is")] {
        let dir = root.join(format!("wrong-ext-{k}"));
        folder(&dir, |_, c, i| {
            let (format, ext) = if i == 0 { (ImageFormat::Jpeg, "png") } else { (ImageFormat::Png, "jpg") };
            (format!("{i}.{ext}"), encode(&picture(0, 12, 10, c as u8), format))
        });
        tally.run(&format!("JPEG named .png and PNG named .jpg, {k}"), &dir, options, Expect::Loads(4));
    }
    // Random damage to one image; truncation is always an error.
    for n in 0..64 {
        let dir = root.join(format!("damaged-{n}"));
        let (format, ext) = formats[n % 2];
        let mut kind = "";
        let victim = rng.random_range(0..8);
        let mut count = 0;
        let rng2 = &mut *rng;
        folder(&dir, |_, c, i| {
            let mut bytes = encode(&picture(n, 12, 10, (c * 50 + i) as u8), format);
            if count == victim {
                kind = damage(&mut bytes, rng2);
            }
            count += 1;
            (format!("{i}.{ext}"), bytes)
        });
        let expect = if kind == "truncated" { Expect::Refused } else { Expect::Either };
        let options = if n % 3 == 0 { sized.with_decode(Decode::EachBatch) } else { sized };
        tally.run(&format!("{ext} {kind} (case {n})"), &dir, options, expect);
    }
    // Huge declared sizes: refused from the header, before any decoding.
    for (w, h) in [(u32::MAX, 1), (1 << 31, 1 << 31), (100_000, 100_000), (12_000, 12_000)] {
        let dir = root.join(format!("declares-{w}x{h}"));
        let good = encode(&picture(0, 12, 10, 1), ImageFormat::Png);
        folder(&dir, |split, c, i| {
            let bytes = if (split, c, i) == ("train", 1, 1) { png_declaring(w, h, 1) } else { good.clone() };
            (format!("{i}.png"), bytes)
        });
        for options in [sized, sized.with_decode(Decode::EachBatch), LoadOptions::default()] {
            tally.run(&format!("a PNG declaring {w}×{h}"), &dir, options, Expect::Refused);
        }
    }
    // A decompression bomb within the limits (8192 × 8192 grey zeros,
    // 64 MiB decoded from about 64 KiB), and the thin strip of 1 ×
    // 20,000,000 pixels: decoded, cropped to their centre square, resized.
    for (w, h, what) in [(8192, 8192, "decompression bomb"), (20_000_000, 1, "thin strip")] {
        let dir = root.join(what.replace(' ', "-"));
        let good = encode(&picture(0, 12, 10, 1), ImageFormat::Png);
        let bomb = png_declaring(w, h, h);
        folder(&dir, |split, c, i| {
            let bytes = if (split, c, i) == ("train", 0, 0) { bomb.clone() } else { good.clone() };
            (format!("{i}.png"), bytes)
        });
        tally.run(what, &dir, sized, Expect::Loads(4));
        tally.run(&format!("{what}, decoded each batch"), &dir, sized.with_decode(Decode::EachBatch), Expect::Loads(4));
        // Without an image size every image must be the first one's size.
        tally.run(&format!("{what} among 12×10 images"), &dir, LoadOptions::default(), Expect::Refused);
    }
    // Class folders whose names display alike (é composed or not, a
    // zero-width space) are refused; names that only look similar are not.
    let pairs = [
        ("caf\u{e9}", "cafe\u{301}", Expect::Refused),
        ("cat", "cat\u{200B}", Expect::Refused),
        ("cat", "Cat", Expect::Loads(4)),
    ];
    for (k, (a, b, expect)) in pairs.into_iter().enumerate() {
        let dir = root.join(format!("alike-{k}"));
        folder(&dir, |_, c, i| (format!("{i}.png"), encode(&picture(0, 12, 10, c as u8), ImageFormat::Png)));
        for split in ["train", "val"] {
            std::fs::rename(dir.join(split).join("class0"), dir.join(split).join(a)).unwrap();
            std::fs::rename(dir.join(split).join("class1"), dir.join(split).join(b)).unwrap();
        }
        tally.run(&format!("class folders {a:?} and {b:?}"), &dir, sized, expect);
    }
    // Names that are not UTF-8: a class folder is refused, a file is read.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = std::ffi::OsStr::from_bytes(b"cls\xff");
        let dir = root.join("non-utf8-class");
        folder(&dir, |_, c, i| (format!("{i}.png"), encode(&picture(0, 12, 10, c as u8), ImageFormat::Png)));
        std::fs::rename(dir.join("train/class1"), dir.join("train").join(odd)).unwrap();
        std::fs::rename(dir.join("val/class1"), dir.join("val").join(odd)).unwrap();
        tally.run("a class folder named cls\\xff", &dir, sized, Expect::Refused);
        let dir = root.join("non-utf8-file");
        folder(&dir, |_, c, i| (format!("{i}.png"), encode(&picture(0, 12, 10, c as u8), ImageFormat::Png)));
        std::fs::rename(
            dir.join("train/class1/1.png"),
            dir.join("train/class1").join(std::ffi::OsStr::from_bytes(b"\xfe.png")),
        )
        .unwrap();
        tally.run("an image file named \\xfe.png", &dir, sized, Expect::Loads(4));
    }
}

// ----- CIFAR files -----

/// A CIFAR-10 folder: five training files of two records and a test file of two.
fn cifar(dir: &Path, mut file: impl FnMut(&str, Vec<u8>) -> Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for (k, name) in names.iter().enumerate() {
        let mut b = Vec::new();
        for r in 0..2u8 {
            b.push((k as u8 + r) % 10);
            b.extend((0..3072).map(|i| (i % 251) as u8 ^ r));
        }
        std::fs::write(dir.join(name), file(name, b)).unwrap();
    }
}

fn cifar_cases(root: &Path, tally: &mut Tally, rng: &mut rand::rngs::StdRng) {
    let dir = root.join("cifar-good");
    cifar(&dir, |_, b| b);
    tally.run("a CIFAR-10 folder", &dir, LoadOptions::default(), Expect::Loads(10));
    for n in 0..32 {
        let dir = root.join(format!("cifar-{n}"));
        let victim = ["data_batch_1.bin", "data_batch_4.bin", "test_batch.bin"][n % 3];
        let mut what = "";
        cifar(&dir, |name, mut b| {
            if name == victim {
                what = match n % 4 {
                    0 => {
                        b.truncate(rng.random_range(0..b.len()));
                        "truncated"
                    }
                    1 => {
                        b.extend(std::iter::repeat_n(0, rng.random_range(1..3073)));
                        "too long"
                    }
                    2 => {
                        b[3073 * rng.random_range(0..2)] = rng.random_range(10..=255);
                        "a label past the classes"
                    }
                    _ => {
                        damage(&mut b, rng);
                        "damaged"
                    }
                };
            }
            b
        });
        let expect = if what == "damaged" { Expect::Either } else { Expect::Refused };
        tally.run(&format!("CIFAR {victim} {what} (case {n})"), &dir, LoadOptions::default(), expect);
    }
}

// ----- array files -----

/// A safetensors file of `tensors` (name, dtype, shape, bytes) with `meta`.
fn safetensors_bytes(tensors: &[(&str, &str, Vec<u64>, Vec<u8>)], meta: Option<&str>) -> Vec<u8> {
    let mut header = String::from("{");
    let mut offset = 0;
    for (name, dtype, shape, bytes) in tensors {
        let shape: Vec<String> = shape.iter().map(u64::to_string).collect();
        header += &format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}},",
            shape.join(","),
            offset + bytes.len()
        );
        offset += bytes.len();
    }
    header += &match meta {
        Some(m) => format!("\"__metadata__\":{{\"layout\":\"{m}\"}}}}"),
        None => "\"__metadata__\":{\"source\":\"fuzz_data\"}}".to_string(),
    };
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    out
}

fn arrays(dir: &Path, train: Vec<u8>, test: Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("train.safetensors"), train).unwrap();
    std::fs::write(dir.join("test.safetensors"), test).unwrap();
}

/// A good array file of `n` 3×5×5 u8 images.
fn good_arrays(n: u64) -> Vec<u8> {
    let images = (0..n * 75).map(|i| i as u8).collect();
    let labels = (0..n).flat_map(|i| (i % 3).to_le_bytes()).collect();
    safetensors_bytes(&[("images", "U8", vec![n, 3, 5, 5], images), ("labels", "I64", vec![n], labels)], None)
}

fn array_cases(root: &Path, tally: &mut Tally, rng: &mut rand::rngs::StdRng) {
    let dir = root.join("arrays-good");
    arrays(&dir, good_arrays(6), good_arrays(2));
    tally.run("array files", &dir, LoadOptions::default(), Expect::Loads(6));
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let labels = |n: u64| (0..n).flat_map(|i| (i % 3).to_le_bytes()).collect::<Vec<u8>>();
    let refused: Vec<(&str, Vec<u8>)> = vec![
        (
            "a huge declared shape",
            safetensors_bytes(
                &[("images", "U8", vec![1 << 40, 3, 32, 32], vec![0; 48]), ("labels", "I64", vec![2], labels(2))],
                None,
            ),
        ),
        (
            "fewer labels than images",
            safetensors_bytes(
                &[("images", "U8", vec![2, 3, 4, 4], vec![0; 96]), ("labels", "I64", vec![1], labels(1))],
                None,
            ),
        ),
        (
            "a label past 255",
            safetensors_bytes(
                &[
                    ("images", "U8", vec![1, 3, 4, 4], vec![0; 48]),
                    ("labels", "I64", vec![1], 300i64.to_le_bytes().to_vec()),
                ],
                None,
            ),
        ),
        (
            "a negative label",
            safetensors_bytes(
                &[
                    ("images", "U8", vec![1, 3, 4, 4], vec![0; 48]),
                    ("labels", "I64", vec![1], (-1i64).to_le_bytes().to_vec()),
                ],
                None,
            ),
        ),
        (
            "a NaN pixel",
            safetensors_bytes(
                &[
                    ("images", "F32", vec![1, 1, 2, 2], f32s(&[0.0, f32::NAN, 1.0, 2.0])),
                    ("labels", "I64", vec![1], labels(1)),
                ],
                None,
            ),
        ),
        (
            "an infinite pixel",
            safetensors_bytes(
                &[
                    ("images", "F32", vec![1, 1, 2, 2], f32s(&[0.0, f32::INFINITY, 1.0, 2.0])),
                    ("labels", "I64", vec![1], labels(1)),
                ],
                None,
            ),
        ),
        (
            "16-bit integer pixels",
            safetensors_bytes(
                &[("images", "I16", vec![1, 1, 2, 2], vec![0; 8]), ("labels", "I64", vec![1], labels(1))],
                None,
            ),
        ),
        ("no labels", safetensors_bytes(&[("images", "U8", vec![1, 3, 4, 4], vec![0; 48])], None)),
        (
            "rank-5 images",
            safetensors_bytes(
                &[("images", "U8", vec![1, 1, 3, 4, 4], vec![0; 48]), ("labels", "I64", vec![1], labels(1))],
                None,
            ),
        ),
        (
            "an unknown layout",
            safetensors_bytes(
                &[("images", "U8", vec![1, 3, 4, 4], vec![0; 48]), ("labels", "I64", vec![1], labels(1))],
                Some("CHWN"),
            ),
        ),
        (
            "an ambiguous layout",
            safetensors_bytes(
                &[("images", "U8", vec![1, 3, 4, 3], vec![0; 36]), ("labels", "I64", vec![1], labels(1))],
                None,
            ),
        ),
        (
            "an empty image",
            safetensors_bytes(
                &[("images", "U8", vec![1, 3, 0, 4], vec![]), ("labels", "I64", vec![1], labels(1))],
                None,
            ),
        ),
        ("a header length past the file", {
            let mut b = good_arrays(2);
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
    ];
    for (what, train) in refused {
        let dir = root.join(format!("arrays-{}", what.replace(' ', "-")));
        arrays(&dir, train, good_arrays(2));
        tally.run(&format!("array files with {what}"), &dir, LoadOptions::default(), Expect::Refused);
    }
    for n in 0..40 {
        let dir = root.join(format!("arrays-damaged-{n}"));
        let mut train = good_arrays(6);
        let kind = damage(&mut train, rng);
        arrays(&dir, train, good_arrays(2));
        let expect = if kind == "truncated" { Expect::Refused } else { Expect::Either };
        tally.run(&format!("array file {kind} (case {n})"), &dir, LoadOptions::default(), expect);
    }
}

// ----- IDX files -----

/// An IDX header declaring `dims`, then `data`.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gzip(bytes: &[u8], zeros_after: usize) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(bytes).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..zeros_after >> 20 {
        z.write_all(&block).unwrap();
    }
    z.finish().unwrap()
}

/// An MNIST-style folder: four training and two test images of 4 × 4,
/// the training images' file made by `images` from its plain bytes.
fn mnist(dir: &Path, images: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let pixels: Vec<u8> = (0..64).collect();
    std::fs::write(dir.join("train-images-idx3-ubyte"), images(idx(&[4, 4, 4], &pixels))).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&[4], &[0, 1, 2, 3])).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx(&[2, 4, 4], &pixels[..32])).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&[2], &[1, 0])).unwrap();
}

/// Makes a file's bytes from the good ones.
type Make = dyn FnOnce(Vec<u8>) -> Vec<u8>;

fn idx_cases(root: &Path, tally: &mut Tally, rng: &mut rand::rngs::StdRng) {
    let cases: Vec<(&str, Box<Make>, Expect)> = vec![
        ("plain", Box::new(|b| b), Expect::Loads(4)),
        ("gzipped", Box::new(|b| gzip(&b, 0)), Expect::Loads(4)),
        // 256 MiB of zeros after the declared data, in about 256 KiB: never inflated.
        ("a gzip bomb past the declared data", Box::new(|b| gzip(&b, 256 << 20)), Expect::Refused),
        (
            "a declared size of 2^32 - 1 images",
            Box::new(|_| gzip(&idx(&[u32::MAX, 28, 28], &[0; 64]), 0)),
            Expect::Refused,
        ),
        (
            "a declared size past usize",
            Box::new(|_| idx(&[u32::MAX, u32::MAX, u32::MAX, u32::MAX], &[])),
            Expect::Refused,
        ),
        (
            "a gzip stream cut short",
            Box::new(|b| {
                let z = gzip(&b, 0);
                z[..z.len() / 2].to_vec()
            }),
            Expect::Refused,
        ),
    ];
    for (what, make, expect) in cases {
        let dir = root.join(format!("idx-{}", what.replace(' ', "-")));
        mnist(&dir, make);
        tally.run(&format!("IDX {what}"), &dir, LoadOptions::default(), expect);
    }
    for n in 0..16 {
        let dir = root.join(format!("idx-damaged-{n}"));
        let mut kind = "";
        mnist(&dir, |b| {
            let mut z = if n % 2 == 0 { gzip(&b, 0) } else { b };
            kind = damage(&mut z, rng);
            z
        });
        let expect = if kind == "truncated" { Expect::Refused } else { Expect::Either };
        tally.run(&format!("IDX {kind} (case {n})"), &dir, LoadOptions::default(), expect);
    }
}

#[test]
fn damaged_data_is_refused_or_read_correctly_within_bounded_memory() {
    let root = scratch();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut tally = Tally::default();
    image_cases(&root, &mut tally, &mut rng);
    cifar_cases(&root, &mut tally, &mut rng);
    array_cases(&root, &mut tally, &mut rng);
    idx_cases(&root, &mut tally, &mut rng);
    // The count CI prints: the line starts with the suite's name.
    println!(
        "fuzz_data: {} cases ({} loaded, {} refused with a typed error), none panicked; largest peak-memory growth {} MiB ({}), bound {} MiB",
        tally.cases,
        tally.loaded,
        tally.refused,
        tally.peak >> 20,
        tally.peak_case,
        PEAK_BOUND >> 20
    );
    assert!(tally.cases >= 200, "{} cases", tally.cases);
    std::fs::remove_dir_all(root).unwrap();
}
