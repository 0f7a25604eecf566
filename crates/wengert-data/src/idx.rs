//! The IDX format of MNIST and Fashion-MNIST, gzipped or not.
//!
//! An IDX file is a big-endian header — two zero bytes, a type code (`0x08`
//! for unsigned bytes) and the number of dimensions — then one 32-bit
//! extent per dimension, then the data. Reading checks every part and names
//! the file and what is wrong.

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;
use wengert_core::{Error, Result};

/// An array of unsigned bytes read from an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The extents, outermost first (`[n, rows, cols]` for images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// The values in row-major order.
    pub data: Vec<u8>,
}

fn bad(path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::Io { path: path.display().to_string(), detail: detail.to_string() }
}

/// Reads `path`, decompressing it when it starts with the gzip magic
/// bytes. The header is read first: data the header does not declare are
/// never decompressed (a gzip bomb stops at the declared size), and a
/// declared size past the memory available is an error before any is read.
pub fn read(path: &Path) -> Result<Idx> {
    use std::io::{BufReader, Seek};
    let mut file = BufReader::new(std::fs::File::open(path).map_err(|e| bad(path, e))?);
    let mut magic = [0u8; 2];
    let gzip = file.read(&mut magic).map_err(|e| bad(path, e))? == 2 && magic == [0x1f, 0x8b];
    file.rewind().map_err(|e| bad(path, e))?;
    let mut source: Box<dyn Read> = if gzip { Box::new(GzDecoder::new(file)) } else { Box::new(file) };
    let damaged = |e: std::io::Error| match gzip {
        true => bad(path, format!("gzip data is damaged: {e}")),
        false => bad(path, e),
    };
    // The fixed part, then the extents it announces.
    let mut head = Vec::new();
    (&mut source).take(4).read_to_end(&mut head).map_err(damaged)?;
    if head.len() == 4 {
        (&mut source).take(4 * u64::from(head[3].min(4))).read_to_end(&mut head).map_err(damaged)?;
    }
    let (dims, len) = header(path, &head)?;
    super::bounded::check_room(path, len as u64, "the data declared take")?;
    let mut data = Vec::new();
    source.take(len as u64 + 1).read_to_end(&mut data).map_err(damaged)?;
    let more = data.len() > len;
    data.truncate(len);
    if data.len() != len || more {
        let what = if data.len() < len { "truncated" } else { "too long" };
        let have = if more { format!("more than {len}") } else { data.len().to_string() };
        return Err(bad(path, format!("{what}: dimensions {dims:?} need {len} data bytes, the file has {have}")));
    }
    Ok(Idx { dims, data })
}

/// The extents an IDX header declares and the data bytes they need;
/// `bytes` must hold at least the header.
fn header(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, usize)> {
    if bytes.len() < 4 {
        return Err(bad(path, format!("{} bytes is too short for an IDX header", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(
            path,
            format!("not an IDX file: magic number starts {:02x} {:02x}, expected 00 00", bytes[0], bytes[1]),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(bad(path, format!("element type 0x{:02x} is not supported (only 0x08, unsigned bytes)", bytes[2])));
    }
    let rank = bytes[3] as usize;
    if rank == 0 || rank > 4 {
        return Err(bad(path, format!("{rank} dimensions; expected 1 to 4")));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(bad(path, format!("truncated header: {} bytes, the header needs {header}", bytes.len())));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(path, format!("dimensions {dims:?} overflow")))?;
    Ok((dims, len))
}

/// Parses IDX bytes; `path` is only used in error messages.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Idx> {
    let (dims, len) = header(path, bytes)?;
    let header = 4 + 4 * dims.len();
    let have = bytes.len() - header;
    if have != len {
        let what = if have < len { "truncated" } else { "too long" };
        return Err(bad(path, format!("{what}: dimensions {dims:?} need {len} data bytes, the file has {have}")));
    }
    Ok(Idx { dims, data: bytes[header..].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn reads_and_checks() {
        let p = Path::new("x-idx3-ubyte");
        let ok = parse(p, &file(&[2, 1, 2], &[1, 2, 3, 4])).unwrap();
        assert_eq!((ok.dims, ok.data), (vec![2, 1, 2], vec![1, 2, 3, 4]));
        let e = parse(p, &file(&[2, 1, 2], &[1, 2, 3])).unwrap_err().to_string();
        assert_eq!(e, "x-idx3-ubyte: truncated: dimensions [2, 1, 2] need 4 data bytes, the file has 3");
        let mut wrong = file(&[1], &[7]);
        wrong[0] = 0x50;
        assert!(parse(p, &wrong).unwrap_err().to_string().contains("not an IDX file"));
        let mut float = file(&[1], &[7]);
        float[2] = 0x0d;
        assert!(parse(p, &float).unwrap_err().to_string().contains("element type 0x0d"));
        assert!(parse(p, &[0, 0, 8, 3, 0, 0]).unwrap_err().to_string().contains("truncated header"));
    }
}
