//! `explain` and `codes`: pure lookups in the code table; no file I/O.

use std::io::Write;

use crate::cli::CodesFormat;
use crate::codes::{self, Severity};
use crate::ExitStatus;

pub fn explain(input: &str) -> ExitStatus {
    match codes::find(input) {
        Some(code) => {
            let mut out = anstream::stdout();
            let _ = out.write_all(code.doc.as_bytes());
            ExitStatus::Clean
        }
        None => {
            let mut err = anstream::stderr();
            let _ = writeln!(err, "consul-doctor: code {input:?} does not exist");
            let near = codes::suggest(input);
            if !near.is_empty() {
                let _ = writeln!(err, "codes with a similar name: {}", near.join(", "));
            }
            let _ = writeln!(err, "run `consul-doctor codes` for the full list");
            ExitStatus::Usage
        }
    }
}

pub fn codes(format: CodesFormat, stage: Option<&str>) -> ExitStatus {
    let mut out = anstream::stdout();
    let wanted: Vec<&codes::Code> = match stage.map(|s| s.trim().to_ascii_lowercase()) {
        None => codes::ALL.to_vec(),
        Some(s) => {
            let list: Vec<&codes::Code> = codes::ALL.iter().copied().filter(|c| c.stage == s).collect();
            if list.is_empty() {
                let mut stages: Vec<&str> = codes::ALL.iter().map(|c| c.stage).collect();
                stages.dedup();
                let _ = writeln!(
                    anstream::stderr(),
                    "consul-doctor: no stage {s:?}; stages with codes: {}",
                    stages.join(", ")
                );
                return ExitStatus::Usage;
            }
            list
        }
    };
    let text = match format {
        CodesFormat::Json => {
            let v = serde_json::json!({ "schema_version": crate::report::SCHEMA_VERSION, "codes": wanted });
            format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        CodesFormat::Human => {
            // On a terminal, titles wrap under themselves; piped, one code per line (for grep).
            let width = crate::render::terminal_width();
            let mut s = String::new();
            for c in &wanted {
                let sev = match c.severity {
                    Severity::Note => "note",
                    Severity::Warn => "warn",
                    Severity::Fail => "fail",
                };
                let prefix = format!("{:<8} {:<8} {:<5} ", c.code, c.stage, sev);
                crate::render::human::wrapped(&mut s, &prefix, c.title, prefix.len(), width);
            }
            s
        }
    };
    let _ = out.write_all(text.as_bytes());
    ExitStatus::Clean
}
