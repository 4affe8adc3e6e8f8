//! `--verbose` diagnostics on standard error: every request and stage, never the token.
//!
//! Requests carry the token only in a header, which is never logged; as a second guard every
//! line passes through the same redaction as the report.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

pub fn debug(line: impl AsRef<str>) {
    if !enabled() {
        return;
    }
    let text = crate::secret::redact(line.as_ref());
    let _ = writeln!(std::io::stderr(), "consul-doctor: debug: {text}");
}
