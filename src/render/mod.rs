//! Report renderers: one file per format, all fed the same `Report`.

pub mod human;
pub mod json;
pub mod junit;

use std::io::Write;
use std::path::Path;

use crate::report::{FailOn, Report};

/// The report formats (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Junit,
}

/// How to lay a report out (the same report feeds every format).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Every check on its own line, plus the summary table (human format).
    pub verbose: bool,
    /// Terminal width to wrap to; `None` for files and pipes.
    pub width: Option<usize>,
    pub fail_on: FailOn,
}

impl Options {
    /// Options for a report written to `output` (stdout when `None`).
    pub fn new(verbose: bool, fail_on: FailOn, output: Option<&Path>) -> Options {
        let width = if output.is_none() { terminal_width() } else { None };
        Options { verbose, width, fail_on }
    }
}

/// The width of the terminal on stdout (`COLUMNS` wins), if stdout is one.
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    if let Some(cols) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()) {
        return (cols >= 40).then_some(cols);
    }
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col >= 40).then_some(ws.ws_col as usize)
}

/// The width of the terminal on standard error, for progress lines redrawn in place (a line
/// wider than the terminal wraps, and clearing it leaves its first part behind): `COLUMNS`, else
/// the terminal's own, else 80.
pub fn stderr_width() -> usize {
    if let Some(cols) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 20) {
        return cols;
    }
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 20 {
        ws.ws_col as usize
    } else {
        80
    }
}

/// `text` cut to `width` characters, with an ellipsis when cut (for lines redrawn in place).
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub fn render(report: &Report, format: Format, opts: &Options) -> String {
    match format {
        Format::Human => human::render(report, opts),
        Format::Json => json::render(report),
        Format::Junit => junit::render(report, opts.fail_on),
    }
}

/// Writes the report to stdout (colour decided per stream) or to a file (never coloured unless
/// `--color always`).
pub fn emit(text: &str, output: Option<&Path>) -> std::io::Result<()> {
    match output {
        None if stdout_closed() => Err(std::io::Error::other("standard output is closed")),
        None => {
            let mut out = anstream::stdout();
            out.write_all(text.as_bytes())?;
            out.flush()
        }
        Some(path) => {
            let file = std::fs::File::create(path)?;
            let mut out = anstream::AutoStream::new(file, anstream::ColorChoice::global());
            out.write_all(text.as_bytes())?;
            out.flush()
        }
    }
}

/// Whether the process started with standard output closed (`>&-`). Rust's runtime then reopens
/// descriptors 0-2 on /dev/null read-write, which would swallow the report with exit status 0;
/// a shell's `>/dev/null` opens it write-only, so only the reopened descriptor matches.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // dev_t is not u64 everywhere
pub fn stdout_closed() -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: fstat and fcntl only read the state of descriptor 1 into a local struct.
    let (stat, flags) = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(libc::STDOUT_FILENO, &mut st) != 0 {
            return true;
        }
        (st, libc::fcntl(libc::STDOUT_FILENO, libc::F_GETFL))
    };
    let is_null = std::fs::metadata("/dev/null")
        .is_ok_and(|null| (stat.st_mode & libc::S_IFMT) == libc::S_IFCHR && stat.st_rdev as u64 == null.rdev());
    is_null && flags >= 0 && (flags & libc::O_ACCMODE) == libc::O_RDWR
}

#[cfg(not(unix))]
pub fn stdout_closed() -> bool {
    false
}
