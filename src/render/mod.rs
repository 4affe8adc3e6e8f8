//! Report renderers: one file per format, all fed the same `Report`.

pub mod human;
pub mod json;
pub mod junit;

use std::io::Write;
use std::path::Path;

use crate::cli::Format;
use crate::report::Report;

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Human => human::render(report),
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
