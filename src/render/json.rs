//! JSON report: one top-level object with `schema_version` (see README "JSON schema").

use crate::report::Report;

pub fn render(report: &Report) -> String {
    let mut s =
        serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"schema_version\":1,\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}
