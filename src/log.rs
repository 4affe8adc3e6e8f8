//! `--verbose` diagnostics on standard error: every request and stage, never the token.
//!
//! Requests carry the token only in a header, which is never logged; as a second guard every
//! line passes through the same redaction as the report.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static VERBOSE: AtomicBool = AtomicBool::new(false);
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Registers a secret that must never appear in a log line.
pub fn forbid(secret: &str) {
    if secret.len() >= 4 {
        if let Ok(mut s) = SECRETS.lock() {
            s.push(secret.to_string());
        }
    }
}

/// Replaces every registered secret in `text`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    if let Ok(secrets) = SECRETS.lock() {
        for s in secrets.iter() {
            out = out.replace(s.as_str(), "<redacted>");
        }
    }
    out
}

pub fn debug(line: impl AsRef<str>) {
    if !enabled() {
        return;
    }
    let text = redact(line.as_ref());
    let _ = writeln!(std::io::stderr(), "consul-doctor: debug: {text}");
}
