//! The ACL token secret, wrapped so that it cannot be printed by accident.
//!
//! `Secret` has no `Display`, and its `Debug` prints a fixed placeholder. The only way to the
//! value is [`Secret::expose`], used where the token goes into the `X-Consul-Token` header.
//! Every secret is also remembered when it is created, and [`redact`] removes all of them from
//! any text that leaves the process (report, log lines), as a second guard.

use std::fmt;
use std::sync::Mutex;

static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers a secret value that is not held in a `Secret` (a password part, for example).
pub fn forbid(value: &str) {
    // Very short values would redact ordinary words; nothing real is that short.
    if value.len() >= 4 {
        if let Ok(mut known) = KNOWN.lock() {
            if !known.iter().any(|k| k == value) {
                known.push(value.to_string());
            }
        }
    }
}

/// Replaces every secret seen so far in `text`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    if let Ok(known) = KNOWN.lock() {
        for k in known.iter() {
            out = out.replace(k.as_str(), "<redacted>");
        }
    }
    out
}

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        forbid(&value);
        forbid(value.trim());
        Secret(value)
    }

    /// The raw secret; only for the request header and for output redaction.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("b1gs3cr3t-token");
        assert!(!format!("{s:?}").contains("b1gs3cr3t"));
        assert!(!format!("{:?}", Some(&s)).contains("b1gs3cr3t"));
    }

    #[test]
    fn every_secret_created_is_redacted() {
        let _s = Secret::new("r3dact-me-please");
        assert_eq!(redact("token r3dact-me-please!"), "token <redacted>!");
    }
}
