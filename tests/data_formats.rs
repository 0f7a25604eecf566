//! The bundled MNIST, what happens with damaged files, and image folders
//! decoded once or as each batch is built.

use std::path::{Path, PathBuf};
use wengert::data::{Augment, Batch, Dataset, Decode, LoadOptions, Loader, Pixels, Split};

fn mnist() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
}

#[test]
fn bundled_mnist_has_the_published_counts() {
    let train = Dataset::load(mnist(), Split::Train).unwrap();
    let test = Dataset::load(mnist(), Split::Test).unwrap();
    assert_eq!((train.len(), train.rows(), train.cols()), (60_000, 28, 28));
    assert_eq!(test.len(), 10_000);
    let mut counts = [0usize; 10];
    train.labels().iter().for_each(|&l| counts[l as usize] += 1);
    // The training set's label histogram, as published with MNIST.
    assert_eq!(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
}

#[test]
fn damaged_files_are_named() {
    let dir = std::env::temp_dir().join(format!("wengert-idx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let labels = std::fs::read(mnist().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let images = std::fs::read(mnist().join("t10k-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), &labels).unwrap();
    // A gzip stream cut in half.
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), &images[..images.len() / 2]).unwrap();
    let e = Dataset::load(&dir, Split::Test).unwrap_err().to_string();
    assert!(e.contains("t10k-images-idx3-ubyte.gz") && e.contains("gzip data is damaged"), "{e}");
    // Missing files.
    let e = Dataset::load(&dir, Split::Train).unwrap_err().to_string();
    assert!(e.contains("no train-images-idx3-ubyte or train-images-idx3-ubyte.gz"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A folder of two classes of PNG and JPEG files in sizes that differ.
fn image_folder(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("wengert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for split in ["train", "val"] {
        for (class, tint) in [("dark", 20u32), ("light", 180)] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..5u32 {
                let (w, h) = (14 + i % 3 * 5, 11 + i % 2 * 6);
                let img = image::RgbImage::from_fn(w, h, |x, y| {
                    image::Rgb([(tint + x * 3) as u8, (tint + y * 2) as u8, (tint + i * 9) as u8])
                });
                img.save(dir.join(format!("{i}.{}", if i % 2 == 0 { "png" } else { "jpg" }))).unwrap();
            }
        }
    }
    root
}

fn epoch(l: &Loader) -> Vec<Batch<f32>> {
    l.epoch(2, 0).collect::<wengert::Result<_>>().unwrap()
}

#[test]
fn folders_decoded_each_batch_give_the_batches_decoded_once() {
    let root = image_folder("stream");
    let load = |decode| {
        Dataset::load_with(&root, Split::Train, LoadOptions::default().with_image_size(9).with_decode(decode)).unwrap()
    };
    let (once, each) = (load(Decode::Once), load(Decode::EachBatch));
    assert!(matches!(once.pixels(), Pixels::U8(_)) && matches!(each.pixels(), Pixels::Files(_)));
    assert_eq!((each.len(), each.image_shape(), each.labels()), (once.len(), once.image_shape(), once.labels()));
    assert_eq!(each.class_names(), ["dark", "light"]);
    // The statistics sample every file of so small a folder: the same numbers.
    assert_eq!(each.channel_stats().unwrap(), once.channel_stats().unwrap());
    // Shifted crops and flips: the same batches, pixel for pixel.
    let shifted = Augment::default().with_pad(2).with_flip(true);
    let loader = |d: &Dataset, a| Loader::new(d.clone(), 4, 3).unwrap().with_augment(a).unwrap();
    let (a, b) = (epoch(&loader(&once, shifted)), epoch(&loader(&each, shifted)));
    assert_eq!(a.len(), 3);
    for (a, b) in a.iter().zip(&b) {
        assert_eq!((&a.images, &a.labels), (&b.images, &b.labels));
    }
    // A resized crop of files crops the whole decoded file: seeded, and the
    // shards together are the whole batch.
    let resized = Augment::default().with_flip(true).with_resized_crop((0.2, 1.0));
    let streamed = loader(&each, resized);
    let first = epoch(&streamed);
    assert_eq!(first[0].images.dims(), &[4, 3, 9, 9]);
    assert!(first.iter().all(|b| b.images.data().iter().all(|v| v.is_finite())));
    let again = epoch(&streamed);
    assert!(first.iter().zip(&again).all(|(x, y)| x.images == y.images), "seeded by (seed, epoch, batch)");
    let halves: Vec<Batch<f32>> = (0..2).map(|r| streamed.clone().shard(r, 2).unwrap().batch(2, 1).unwrap()).collect();
    let joined: Vec<f32> = halves.iter().flat_map(|h| h.images.data().to_vec()).collect();
    assert_eq!(joined, first[1].images.data());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_file_that_stops_decoding_is_named_when_its_batch_is_built() {
    let root = image_folder("truncated");
    // The header is whole, the pixels cut off.
    let file = root.join("train/light/2.png");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..60]).unwrap();
    let options = |decode| LoadOptions::default().with_image_size(8).with_decode(decode);
    let e = Dataset::load_with(&root, Split::Train, options(Decode::Once)).unwrap_err().to_string();
    assert!(e.contains("light/2.png: the PNG is truncated"), "{e}");
    let each = Dataset::load_with(&root, Split::Train, options(Decode::EachBatch)).unwrap();
    let l = Loader::new(each, 10, 0).unwrap();
    let e = l.epoch::<f32>(0, 0).find_map(|b| b.err()).expect("the batch with the file fails").to_string();
    assert!(e.contains("light/2.png: the PNG is truncated"), "{e}");
    // Without an image size, a file not of the first one's size is named
    // from its header, in either mode, before any decoding.
    std::fs::write(&file, &bytes).unwrap();
    let e = Dataset::load_with(&root, Split::Train, LoadOptions::default().with_decode(Decode::EachBatch));
    assert!(e.unwrap_err().to_string().contains("pass --image-size N"));
    std::fs::remove_dir_all(&root).unwrap();
}

/// A one-class-per-folder image folder of `train` and `val` with the given
/// file in each class: `(class folder name as bytes, file name, bytes)`.
/// Unix only: folder names that are not UTF-8 are a Unix file system's.
#[cfg(unix)]
fn folder_of(name: &str, files: &[(&[u8], &str, &[u8])]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let root = std::env::temp_dir().join(format!("wengert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for split in ["train", "val"] {
        for (class, file, bytes) in files {
            let dir = root.join(split).join(std::ffi::OsStr::from_bytes(class));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(file), bytes).unwrap();
        }
    }
    root
}

fn encoded(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

/// Damaged and unusual image files: each was trained on silently, merged
/// into another class, or aborted the process, and is now an error naming
/// the file or a correct result within a small memory budget.
#[cfg(unix)]
#[test]
fn image_folders_refuse_what_they_would_read_wrong() {
    let square = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, 128])
    }));
    let jpeg = encoded(&square, image::ImageFormat::Jpeg);
    let png = encoded(&square, image::ImageFormat::Png);

    // A JPEG cut in half: PIL says "image file is truncated".
    let root = folder_of("truncated", &[(b"a", "0.jpg", &jpeg[..jpeg.len() / 2]), (b"b", "0.png", &png)]);
    let e = Dataset::load_with(&root, Split::Train, LoadOptions::default().with_image_size(16)).unwrap_err();
    assert!(e.to_string().contains("truncated") && e.to_string().contains("0.jpg"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();

    // A JPEG named .png reads the same with and without an image size: the
    // format comes from the bytes, for the header as for the pixels.
    let root = folder_of("misnamed", &[(b"a", "0.png", &jpeg), (b"b", "0.png", &png)]);
    let sized = Dataset::load_with(&root, Split::Train, LoadOptions::default().with_image_size(64)).unwrap();
    let plain = Dataset::load(&root, Split::Train).unwrap();
    assert_eq!((plain.len(), plain.image_shape()), (2, (3, 64, 64)));
    assert_eq!(sized.pixels().as_u8(), plain.pixels().as_u8(), "resizing 64 to 64 changes nothing");
    std::fs::remove_dir_all(&root).unwrap();

    // Two class folders whose names are not UTF-8 would both read as
    // "cls\u{FFFD}" and merge: an error naming the folder instead.
    let root = folder_of("non-utf8", &[(b"cls\xff", "0.png", &png), (b"cls\xfe", "0.png", &png)]);
    let e = Dataset::load(&root, Split::Train).unwrap_err().to_string();
    assert!(e.contains("not UTF-8"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();

    // A thin strip, 1 × 20,000,000 grey pixels (20 KB as a PNG): resized
    // whole on its shorter side it would take 32 × 640 million pixels; its
    // centre square is resized instead.
    let strip = image::DynamicImage::ImageLuma8(image::GrayImage::new(20_000_000, 1));
    let root = folder_of("strip", &[(b"a", "0.png", &encoded(&strip, image::ImageFormat::Png)), (b"b", "0.png", &png)]);
    let d = Dataset::load_with(&root, Split::Train, LoadOptions::default().with_image_size(32)).unwrap();
    assert_eq!(d.image_shape(), (3, 32, 32));
    let peak_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        })
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(kib) = peak_kib {
        assert!(kib < 2 << 20, "peak resident memory {kib} KiB: the strip was resized whole");
    }
    std::fs::remove_dir_all(&root).unwrap();
}
