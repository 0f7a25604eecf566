//! Reading a file whose size comes from the input within the memory the
//! machine has: a file, or a gzip stream's declared contents, that would
//! not fit is an error naming it before anything is allocated, never an
//! allocation that aborts the process.

use std::path::Path;
use wengert_core::{memory, Error, Result};

fn io(path: &Path, detail: impl Into<String>) -> Error {
    Error::Io { path: path.display().to_string(), detail: detail.into() }
}

/// An error naming `path` unless `bytes` more fit in half the memory
/// available (the other half is for what the data becomes: the decoded
/// or converted copy, and training).
pub(crate) fn check_room(path: &Path, bytes: u64, what: &str) -> Result<()> {
    match memory::available() {
        Some(room) if bytes > room / 2 => Err(io(
            path,
            format!(
                "{what} {}, more than half of the {} this machine has available",
                memory::human(bytes),
                memory::human(room)
            ),
        )),
        _ => Ok(()),
    }
}

/// The whole file, when it fits ([`check_room`]).
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(|e| io(path, e.to_string()))?.len();
    check_room(path, len, "the file is")?;
    std::fs::read(path).map_err(|e| io(path, e.to_string()))
}
