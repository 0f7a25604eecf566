//! Datasets as array files: `train.safetensors` and `test.safetensors`,
//! each holding `images` (`[N, C, H, W]`, `[N, H, W, C]` or `[N, H, W]`)
//! and `labels` (one integer per image, 0–255). Pixels are 8-bit (`U8`,
//! which the loader divides by 255) or floats (`F32`, or `F64` read as
//! `f32`), which it takes as they are; every float must be finite. A metadata
//! entry `layout` (`NCHW` or `NHWC`) says how a rank-4 `images` is laid
//! out; without it the layout is inferred where the shape leaves no doubt
//! (one of axes 1 and 3 has 1, 3 or 4 entries and the other does not), and
//! is an error asking for the entry where it does.
//!
//! Writing such a file from Python:
//!
//! ```text
//! from safetensors.numpy import save_file
//! save_file({"images": x_uint8, "labels": y.astype("int64")}, "train.safetensors", {"layout": "NHWC"})
//! ```

use super::{Dataset, Split};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;
use wengert_core::{Error, Result};

/// The file of one split in `dir`.
fn file(dir: &Path, split: Split) -> std::path::PathBuf {
    dir.join(if split == Split::Train { "train.safetensors" } else { "test.safetensors" })
}

/// Whether `dir` holds array files.
pub(crate) fn present(dir: &Path) -> bool {
    file(dir, Split::Train).is_file() || file(dir, Split::Test).is_file()
}

/// Loads one split.
pub(crate) fn load(dir: &Path, split: Split) -> Result<Dataset> {
    let path = file(dir, split);
    let io = |detail: String| Error::Io { path: path.display().to_string(), detail };
    let bytes = super::bounded::read(&path)?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| io(format!("not a safetensors file ({e})")))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| io(format!("not a safetensors file ({e})")))?;
    let images = file.tensor("images").map_err(|_| io("no tensor named 'images'".into()))?;
    let labels = file.tensor("labels").map_err(|_| io("no tensor named 'labels'".into()))?;
    if !matches!(images.dtype(), Dtype::U8 | Dtype::F32 | Dtype::F64) {
        return Err(io(format!(
            "images are {:?}; pixels are read as U8 (0–255), F32 or F64: convert with .astype('float32')",
            images.dtype()
        )));
    }
    let dims = images.shape().to_vec();
    let layout = meta.metadata().as_ref().and_then(|m| m.get("layout").cloned());
    let nhwc = match (dims.len(), layout.as_deref()) {
        (3, _) => false,
        (4, Some("NCHW")) => false,
        (4, Some("NHWC")) => true,
        (4, Some(other)) => return Err(io(format!("metadata layout '{other}': use NCHW or NHWC"))),
        (4, None) => {
            let channels = |d: usize| matches!(d, 1 | 3 | 4);
            match (channels(dims[1]), channels(dims[3])) {
                (true, false) => false,
                (false, true) => true,
                _ => {
                    return Err(io(format!(
                        "images are {dims:?}: say whether that is NCHW or NHWC with a metadata entry 'layout'"
                    )))
                }
            }
        }
        _ => return Err(io(format!("images are {dims:?}; need [N, C, H, W], [N, H, W, C] or [N, H, W]"))),
    };
    let (n, c, h, w) = match (dims.len(), nhwc) {
        (3, _) => (dims[0], 1, dims[1], dims[2]),
        (_, false) => (dims[0], dims[1], dims[2], dims[3]),
        (_, true) => (dims[0], dims[3], dims[1], dims[2]),
    };
    let label_values = integers(labels.dtype(), labels.data()).ok_or_else(|| {
        io(format!("labels are {:?}; need integers (U8, I16, U16, I32, U32, I64 or U64)", labels.dtype()))
    })?;
    if labels.shape() != [n] {
        return Err(io(format!("labels are {:?} for {n} images; need one label per image", labels.shape())));
    }
    let labels = label_values
        .iter()
        .enumerate()
        .map(|(i, &l)| u8::try_from(l).map_err(|_| io(format!("label {l} of image {i} is outside 0–255"))))
        .collect::<Result<Vec<u8>>>()?;
    let data = images.data();
    let order = (nhwc, c, h, w);
    match images.dtype() {
        Dtype::U8 => Dataset::with_channels(channels_first(data.to_vec(), order), labels, c, h, w),
        Dtype::F32 => {
            let v = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            Dataset::with_float_channels(channels_first(v, order), labels, c, h, w)
        }
        _ => {
            let v = data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()) as f32).collect();
            Dataset::with_float_channels(channels_first(v, order), labels, c, h, w)
        }
    }
    .map_err(|e| io(e.to_string()))
}

/// `[N, H, W, C]` to `[N, C, H, W]` when `nhwc`.
fn channels_first<T: Copy + Default>(data: Vec<T>, (nhwc, c, h, w): (bool, usize, usize, usize)) -> Vec<T> {
    if !nhwc {
        return data;
    }
    let mut out = vec![T::default(); data.len()];
    for (i, &v) in data.iter().enumerate() {
        let (img, rest) = (i / (h * w * c), i % (h * w * c));
        let (pixel, channel) = (rest / c, rest % c);
        out[img * c * h * w + channel * h * w + pixel] = v;
    }
    out
}

/// Little-endian integers of `dtype`, widened to i128.
fn integers(dtype: Dtype, b: &[u8]) -> Option<Vec<i128>> {
    fn word<const N: usize>(c: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    }
    Some(match dtype {
        Dtype::U8 => b.iter().map(|&v| v as i128).collect(),
        Dtype::I8 => b.iter().map(|&v| v as i8 as i128).collect(),
        Dtype::I16 => b.chunks_exact(2).map(|c| i16::from_le_bytes(word(c)) as i128).collect(),
        Dtype::U16 => b.chunks_exact(2).map(|c| u16::from_le_bytes(word(c)) as i128).collect(),
        Dtype::I32 => b.chunks_exact(4).map(|c| i32::from_le_bytes(word(c)) as i128).collect(),
        Dtype::U32 => b.chunks_exact(4).map(|c| u32::from_le_bytes(word(c)) as i128).collect(),
        Dtype::I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(word(c)) as i128).collect(),
        Dtype::U64 => b.chunks_exact(8).map(|c| u64::from_le_bytes(word(c)) as i128).collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use std::collections::HashMap;

    fn write(path: &Path, images: (&[u8], &[usize], Dtype), labels: (&[u8], &[usize], Dtype), layout: Option<&str>) {
        let tensors = [
            ("images", TensorView::new(images.2, images.1.to_vec(), images.0).unwrap()),
            ("labels", TensorView::new(labels.2, labels.1.to_vec(), labels.0).unwrap()),
        ];
        let meta = layout.map(|l| HashMap::from([("layout".to_string(), l.to_string())]));
        std::fs::write(path, safetensors::serialize(tensors, meta).unwrap()).unwrap();
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("wengert-arrays-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn i64s(v: &[i64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn nhwc_images_become_nchw_and_labels_any_integer_type() {
        let dir = scratch("nhwc");
        // Two 2×2 RGB images, channels last: pixel p is (r, g, b) = (10p, 10p + 1, 10p + 2).
        let px: Vec<u8> = (0..8).flat_map(|p| [10 * p, 10 * p + 1, 10 * p + 2]).collect();
        let labels = i64s(&[4, 1]);
        // [2, 2, 2, 3]: only the last axis can be channels, so NHWC is inferred ...
        write(&dir.join("train.safetensors"), (&px, &[2, 2, 2, 3], Dtype::U8), (&labels, &[2], Dtype::I64), None);
        // ... and here it is said.
        write(
            &dir.join("test.safetensors"),
            (&px, &[2, 2, 2, 3], Dtype::U8),
            (&labels, &[2], Dtype::I64),
            Some("NHWC"),
        );
        for split in [Split::Train, Split::Test] {
            let d = Dataset::load(&dir, split).unwrap();
            assert_eq!((d.len(), d.image_shape(), d.labels()), (2, (3, 2, 2), &[4u8, 1][..]));
            // Image 0: the red plane, then the green, then the blue.
            assert_eq!(&d.pixels().as_u8().unwrap()[..12], &[0, 10, 20, 30, 1, 11, 21, 31, 2, 12, 22, 32]);
            assert_eq!(d.pixels().as_u8().unwrap()[12], 40, "image 1 starts with its red plane");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn float_pixels_are_kept_as_they_are_in_either_layout() {
        let dir = scratch("f32");
        // Two 1×2 images of two channels, channels last: pixel p of image i is (p - i, 10p).
        let px: Vec<f32> =
            (0..2).flat_map(|i| (0..2).flat_map(move |p| [p as f32 - i as f32, 10.0 * p as f32])).collect();
        let f32s: Vec<u8> = px.iter().flat_map(|x| x.to_le_bytes()).collect();
        let labels = i64s(&[1, 0]);
        write(
            &dir.join("train.safetensors"),
            (&f32s, &[2, 1, 2, 2], Dtype::F32),
            (&labels, &[2], Dtype::I64),
            Some("NHWC"),
        );
        let f64s: Vec<u8> = px.iter().flat_map(|&x| (x as f64).to_le_bytes()).collect();
        write(
            &dir.join("test.safetensors"),
            (&f64s, &[2, 1, 2, 2], Dtype::F64),
            (&labels, &[2], Dtype::I64),
            Some("NHWC"),
        );
        for split in [Split::Train, Split::Test] {
            let d = Dataset::load(&dir, split).unwrap();
            assert_eq!((d.image_shape(), d.labels()), ((2, 1, 2), &[1u8, 0][..]));
            let want = [0.0, 1.0, 0.0, 10.0, -1.0, 0.0, 0.0, 10.0];
            assert_eq!(d.pixels().as_f32().unwrap(), &want);
            // The loader divides 8-bit pixels by 255, floats not at all.
            let l = crate::Loader::new(d, 2, 0).unwrap().in_order().with_normalise(0.0, 1.0).unwrap();
            assert_eq!(l.batch::<f32>(0, 0).unwrap().images.data(), &want);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_arrays_are_named() {
        let dir = scratch("bad");
        let path = dir.join("train.safetensors");
        let err = |d: &Path| Dataset::load(d, Split::Train).unwrap_err().to_string();
        let f32s: Vec<u8> = [0.5f32, f32::NAN, 0.0, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        write(&path, (&f32s, &[1, 1, 2, 2], Dtype::F32), (&i64s(&[0]), &[1], Dtype::I64), None);
        assert!(err(&dir).contains("pixel 1 of image 0 is NaN; pixels must be finite"), "{}", err(&dir));
        write(&path, (&[0; 8], &[1, 1, 2, 2], Dtype::F16), (&i64s(&[0]), &[1], Dtype::I64), None);
        assert!(err(&dir).contains("images are F16; pixels are read as U8 (0–255), F32 or F64"), "{}", err(&dir));
        // [2, 3, 4, 3]: channels first or last? Ask.
        write(&path, (&[0; 72], &[2, 3, 4, 3], Dtype::U8), (&i64s(&[0, 1]), &[2], Dtype::I64), None);
        assert!(err(&dir).contains("say whether that is NCHW or NHWC"), "{}", err(&dir));
        write(&path, (&[0; 8], &[2, 2, 2], Dtype::U8), (&i64s(&[0, 300]), &[2], Dtype::I64), None);
        assert!(err(&dir).contains("label 300 of image 1 is outside 0–255"), "{}", err(&dir));
        write(&path, (&[0; 8], &[2, 2, 2], Dtype::U8), (&i64s(&[0]), &[1], Dtype::I64), None);
        assert!(err(&dir).contains("labels are [1] for 2 images"), "{}", err(&dir));
        std::fs::write(&path, b"not safetensors").unwrap();
        assert!(err(&dir).contains("train.safetensors: not a safetensors file"), "{}", err(&dir));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
