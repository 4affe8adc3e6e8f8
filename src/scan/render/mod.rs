//! Scan report renderers: one file per format, all fed the same `ScanReport`.

pub mod human;
pub mod json;
pub mod junit;

use crate::render::Format;
use crate::scan::report::ScanReport;

/// `width`: the terminal's columns to lay the human report out in (`None`: a file or a pipe).
pub fn render(
    report: &ScanReport,
    format: Format,
    list_instances: bool,
    fail_on: crate::report::FailOn,
    width: Option<usize>,
) -> String {
    match format {
        Format::Human => human::render(report, list_instances, width),
        Format::Json => json::render(report),
        Format::Junit => junit::render(report, fail_on),
    }
}
