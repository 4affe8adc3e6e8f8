//! Scan JSON: one top-level object with the scan's own `schema_version` (README "scan JSON schema").

use crate::scan::report::ScanReport;

pub fn render(report: &ScanReport) -> String {
    let mut s = serde_json::to_string_pretty(report)
        .unwrap_or_else(|e| format!("{{\"schema_version\":1,\"command\":\"scan\",\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}
