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

/// Decodes an image file to 8-bit RGB.
fn decode_rgb(path: &Path) -> Result<image::RgbImage> {
    let img = image::ImageReader::open(path)
        .map_err(|e| io(path, e.to_string()))?
        .with_guessed_format()
        .map_err(|e| io(path, e.to_string()))?
        .decode()
        .map_err(|e| io(path, format!("cannot decode the image: {e}")))?;
    Ok(img.to_rgb8())
}

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

/// The shorter side resized to `s`, the other in proportion, then the
/// centre `s × s`.
fn centre_crop(rgb: &image::RgbImage, s: u32) -> image::RgbImage {
    let (w, h) = rgb.dimensions();
    let scale = s as f64 / w.min(h) as f64;
    let (nw, nh) = (((w as f64 * scale).round() as u32).max(s), ((h as f64 * scale).round() as u32).max(s));
    let resized = image::imageops::resize(rgb, nw, nh, image::imageops::FilterType::Triangle);
    image::imageops::crop_imm(&resized, (nw - s) / 2, (nh - s) / 2, s, s).to_image()
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
    let crop = image::imageops::crop_imm(&rgb, x0 as u32, y0 as u32, rw as u32, rh as u32).to_image();
    let out = image::imageops::resize(&crop, w as u32, h as u32, image::imageops::FilterType::Triangle);
    Ok(planes(&out))
}
