//! Decoding one image file (PNG or JPEG) to 8-bit RGB planes, `[3, h, w]`
//! row-major, as it is, resized and centre-cropped to a square, or a region
//! of it resized: the pixels of an image folder's dataset and of the
//! loader's random resized crops.

use std::path::Path;
use wengert_core::{Error, Result};

fn io(path: &Path, detail: impl Into<String>) -> Error {
    Error::Io { path: path.display().to_string(), detail: detail.into() }
}

/// An image size, checked.
pub(crate) fn checked_size(s: usize) -> Result<u32> {
    u32::try_from(s)
        .ok()
        .filter(|&s| (1..=16384).contains(&s))
        .ok_or_else(|| Error::argument("image folder", "image_size", format!("must be between 1 and 16384, got {s}")))
}

/// The most pixels an image file may declare: 2^27, about 134 million
/// (16,384 × 8,192), more than any camera's full-size photo. A header that
/// declares more is refused before anything is decoded; one image decodes
/// into at most 402 MiB of 8-bit RGB.
pub const MAX_PIXELS: u64 = 1 << 27;

/// The most bytes the decoder may hold for one image at a time: 512 MiB
/// (the `image` crate's default, stated so that it cannot change unseen).
const MAX_DECODER_BYTES: u64 = 512 << 20;

/// A reader of the image file whose format comes from the file's bytes
/// (the extension is only where the folder scan looked).
fn reader(path: &Path) -> Result<image::ImageReader<std::io::BufReader<std::fs::File>>> {
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| io(path, e.to_string()))?
        .with_guessed_format()
        .map_err(|e| io(path, e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODER_BYTES);
    reader.limits(limits);
    Ok(reader)
}

/// `(width, height)` from the file's header, its format found from its
/// content as when it is decoded; an error for an image of more than
/// [`MAX_PIXELS`].
pub(crate) fn dimensions(path: &Path) -> Result<(u32, u32)> {
    let (w, h) = reader(path)?.into_dimensions().map_err(|e| io(path, format!("cannot read the image: {e}")))?;
    check_pixels(path, (w, h))?;
    Ok((w, h))
}

/// An error naming `path` when `(w, h)` is more than [`MAX_PIXELS`].
fn check_pixels(path: &Path, (w, h): (u32, u32)) -> Result<()> {
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(io(
            path,
            format!("declares {w}×{h} pixels, more than the {MAX_PIXELS} an image may have: make it smaller"),
        ));
    }
    Ok(())
}

/// Decodes an image file to 8-bit RGB, strictly: a header declaring more
/// than [`MAX_PIXELS`], or more decoded bytes than the decoder may hold,
/// is an error before decoding, and so is a JPEG whose data stop before
/// its end-of-image marker (the decoder would fill the missing part grey)
/// or a PNG without its closing `IEND` chunk (which the decoder does not
/// read), as PIL refuses both.
fn decode_rgb(path: &Path) -> Result<image::RgbImage> {
    use image::ImageDecoder;
    let reader = reader(path)?;
    let format = reader.format();
    let undecodable = |e: image::ImageError| io(path, format!("cannot decode the image: {e}"));
    // The decoder reads the signature and header: a file that is not an
    // image at all fails here, before its end is looked at.
    let decoder = reader.into_decoder().map_err(undecodable)?;
    match format {
        Some(image::ImageFormat::Jpeg) if !ends_with(path, &JPEG_END)? => {
            return Err(io(path, "the JPEG is truncated: its data end before the end-of-image marker"));
        }
        Some(image::ImageFormat::Png) if !ends_with(path, &PNG_END)? => {
            return Err(io(path, "the PNG is truncated: it ends before its IEND chunk"));
        }
        _ => {}
    }
    check_pixels(path, decoder.dimensions())?;
    if decoder.total_bytes() > MAX_DECODER_BYTES {
        let bytes = decoder.total_bytes();
        return Err(io(path, format!("decodes to {bytes} bytes, more than the {MAX_DECODER_BYTES} an image may take")));
    }
    Ok(image::DynamicImage::from_decoder(decoder).map_err(undecodable)?.into_rgb8())
}

/// Whether a file ends with `marker`: a JPEG's end-of-image marker
/// (`FF D9`) or a PNG's empty `IEND` chunk, allowing the padding some
/// writers put after it: the marker must be in the last 4 KiB. (A JPEG
/// thumbnail's own marker sits near the file's start.)
fn ends_with(path: &Path, marker: &[u8]) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e.to_string()))?;
    let len = f.metadata().map_err(|e| io(path, e.to_string()))?.len();
    let tail = len.min(4096);
    f.seek(SeekFrom::Start(len - tail)).map_err(|e| io(path, e.to_string()))?;
    let mut bytes = Vec::with_capacity(tail as usize);
    f.read_to_end(&mut bytes).map_err(|e| io(path, e.to_string()))?;
    Ok(bytes.windows(marker.len()).any(|w| w == marker))
}

/// A JPEG's end-of-image marker.
const JPEG_END: [u8; 2] = [0xFF, 0xD9];

/// A PNG's last chunk: length 0, type `IEND`, and its CRC.
const PNG_END: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];

/// `[3, h, w]` row-major from an RGB image.
fn planes(rgb: &image::RgbImage) -> Vec<u8> {
    let plane = (rgb.width() * rgb.height()) as usize;
    let mut chw = vec![0u8; 3 * plane];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = p.0[c];
        }
    }
    chw
}

/// The centre `s × s` of the image resized so that its shorter side is `s`
/// (torchvision's `Resize(s)` then `CenterCrop(s)`), computed as the
/// centre square of the source resized to `s × s`: the same region, but the
/// memory is that of the square, never of the whole image resized (a thin
/// strip of 1 × 20,000,000 pixels would otherwise resize to 32 × 640
/// million).
fn centre_crop(rgb: &image::RgbImage, s: u32) -> image::RgbImage {
    let (w, h) = rgb.dimensions();
    let side = w.min(h);
    // A view, not a copy: the square of a large image is large.
    let square = image::imageops::crop_imm(rgb, (w - side) / 2, (h - side) / 2, side, side);
    image::imageops::resize(&*square, s, s, image::imageops::FilterType::Triangle)
}

/// Decodes an image file to 8-bit RGB, `[3, h, w]` row-major, resized and
/// centre-cropped to `size × size` when given; returns `(w, h, pixels)`.
pub fn decode(path: &Path, size: Option<usize>) -> Result<(u32, u32, Vec<u8>)> {
    let mut rgb = decode_rgb(path)?;
    if let Some(s) = size {
        rgb = centre_crop(&rgb, checked_size(s)?);
    }
    let (w, h) = rgb.dimensions();
    Ok((w, h, planes(&rgb)))
}

/// Decodes an image file to `[3, h, w]`: as it is when it is `h × w`
/// already, else resized and centre-cropped when `h == w` (the dataset
/// has an image size), else an error.
pub(crate) fn decode_sized(path: &Path, h: usize, w: usize) -> Result<Vec<u8>> {
    let rgb = decode_rgb(path)?;
    let (dw, dh) = rgb.dimensions();
    if (dh as usize, dw as usize) == (h, w) {
        return Ok(planes(&rgb));
    }
    if h != w {
        return Err(io(path, format!("is {dw}×{dh}, but the dataset's images are {w}×{h}")));
    }
    Ok(planes(&centre_crop(&rgb, h as u32)))
}

/// Decodes an image file, takes the region `(top, left, height, width)`
/// that `region` picks from its `(height, width)`, and resizes that to
/// `h × w`: `[3, h, w]` row-major.
pub(crate) fn decode_region(
    path: &Path,
    h: usize,
    w: usize,
    region: impl FnOnce(usize, usize) -> (usize, usize, usize, usize),
) -> Result<Vec<u8>> {
    let rgb = decode_rgb(path)?;
    let (y0, x0, rh, rw) = region(rgb.height() as usize, rgb.width() as usize);
    let crop = image::imageops::crop_imm(&rgb, x0 as u32, y0 as u32, rw as u32, rh as u32);
    let out = image::imageops::resize(&*crop, w as u32, h as u32, image::imageops::FilterType::Triangle);
    Ok(planes(&out))
}
