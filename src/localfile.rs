//! Bounded reads of the local files named on the command line (token file, TLS files, service
//! definitions, go.mod).
//!
//! Anything can be given as a path: `/dev/zero`, a FIFO nobody writes to, a terminal, a 200 MB
//! log. Only regular files are read, opened without blocking (a FIFO with no writer would
//! otherwise hang past the run's deadline) and never beyond a cap fitting what the file is for,
//! so memory and time stay bounded whatever the path points at.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// An ACL token is a 36-character UUID; a few KiB leaves room for anything sane.
pub const TOKEN_CAP: u64 = 4 * 1024;
/// A service definition (or a file of a configuration directory).
pub const DEFINITION_CAP: u64 = 4 * 1024 * 1024;
/// A PEM certificate, key or CA bundle (the system bundle is about 200 KiB).
pub const TLS_CAP: u64 = 4 * 1024 * 1024;
/// An application's go.mod.
pub const GO_MOD_CAP: u64 = 4 * 1024 * 1024;

/// Why a local file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// The operating system's own error (missing, permission denied, ...).
    Io(std::io::Error),
    /// Not a regular file: what it is instead ("a FIFO", "a character device", ...).
    NotRegular(&'static str),
    /// Larger than the cap for this kind of file.
    TooLarge { cap: u64 },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            ReadError::TooLarge { cap } => write!(f, "it is larger than {}", human_size(*cap)),
        }
    }
}

/// Reads a regular file of at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_nonblocking(path).map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(&meta)));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge { cap });
    }
    // The size may change while reading; never take more than the cap.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes).map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge { cap });
    }
    Ok(bytes)
}

/// [`read_capped`] as text (invalid UTF-8 is replaced, as the callers parse it leniently anyway).
pub fn read_text_capped(path: &Path, cap: u64) -> Result<String, ReadError> {
    read_capped(path, cap)
        .map(|b| String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO without a writer returns at once (then fstat refuses it);
    // O_NOCTTY: a terminal given as a path never becomes the controlling terminal.
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(unix)]
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

fn human_size(n: u64) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_small_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "abc").unwrap();
        assert_eq!(read_capped(&f, 3).unwrap(), b"abc");
        assert!(matches!(read_capped(&f, 2), Err(ReadError::TooLarge { cap: 2 })));
        assert!(matches!(read_capped(dir.path(), 10), Err(ReadError::NotRegular("a directory"))));
        assert!(matches!(read_capped(Path::new("/dev/zero"), 10), Err(ReadError::NotRegular("a character device"))));
        assert!(matches!(read_capped(&dir.path().join("missing"), 10), Err(ReadError::Io(_))));
    }

    #[test]
    fn a_fifo_without_writer_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_capped(&fifo, 10).unwrap_err();
        assert_eq!(err.to_string(), "it is a FIFO (named pipe), not a regular file");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(ReadError::TooLarge { cap: TOKEN_CAP }.to_string(), "it is larger than 4 KiB");
        assert_eq!(ReadError::TooLarge { cap: DEFINITION_CAP }.to_string(), "it is larger than 4 MiB");
    }
}
