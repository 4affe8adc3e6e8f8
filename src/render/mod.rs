//! Report renderers: one file per format, all fed the same `Report`.

pub mod human;
pub mod json;
pub mod junit;

use std::io::Write;
use std::path::Path;

use crate::cli::{FailOn, Format};
use crate::report::Report;

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

pub fn render(report: &Report, format: Format, opts: &Options) -> String {
    match format {
        Format::Human => human::render(report, opts),
        Format::Json => json::render(report),
        Format::Junit => junit::render(report),
    }
}

/// Writes the report to stdout (colour decided per stream) or to a file (never coloured unless
/// `--color always`).
pub fn emit(text: &str, output: Option<&Path>) -> std::io::Result<()> {
    match output {
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
