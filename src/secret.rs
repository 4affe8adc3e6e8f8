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

/// The shortest piece of a secret that is redacted on its own: a clipped message can keep the
/// start or the end of a token, and a piece this long is never an ordinary word.
pub const MIN_PART: usize = 8;

/// Replaces every secret seen so far in `text`, and every piece of one at least [`MIN_PART`]
/// bytes long (a token cut off by clipping elsewhere, its start or its end).
pub fn redact(text: &str) -> String {
    let known = match KNOWN.lock() {
        Ok(k) if !k.is_empty() => k.clone(),
        _ => return text.to_string(),
    };
    let mut out = text.to_string();
    for k in &known {
        out = redact_one(&out, k);
    }
    out
}

/// [`redact`] for one secret: every span of `text` that equals a run of at least
/// `min(MIN_PART, len)` consecutive bytes of `secret` becomes `<redacted>`.
fn redact_one(text: &str, secret: &str) -> String {
    let (t, s) = (text.as_bytes(), secret.as_bytes());
    let w = MIN_PART.min(s.len());
    if w == 0 || t.len() < w {
        return text.to_string();
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for j in 0..=s.len() - w {
        if !secret.is_char_boundary(j) || !secret.is_char_boundary(j + w) {
            continue;
        }
        let window = &secret[j..j + w];
        for (p, _) in text.match_indices(window) {
            // Grow the match both ways while the text goes on following the secret.
            let (mut a, mut sa) = (p, j);
            while a > 0 && sa > 0 && t[a - 1] == s[sa - 1] {
                a -= 1;
                sa -= 1;
            }
            let (mut b, mut sb) = (p + w, j + w);
            while b < t.len() && sb < s.len() && t[b] == s[sb] {
                b += 1;
                sb += 1;
            }
            while !text.is_char_boundary(a) {
                a -= 1;
            }
            while !text.is_char_boundary(b) {
                b += 1;
            }
            spans.push((a, b));
        }
    }
    if spans.is_empty() {
        return text.to_string();
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (a, b) in spans {
        if b <= at {
            continue;
        }
        if a >= at {
            out.push_str(&text[at..a]);
            out.push_str("<redacted>");
        }
        at = b;
    }
    out.push_str(&text[at..]);
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
    fn pieces_of_a_secret_are_redacted_wherever_clipping_cut_it() {
        let secret = "5b7c1d2e-aaaa-4bbb-8ccc-0123456789ab";
        // The start (27 of 36 characters, as a 200-character snippet cut it), the end, a middle.
        assert_eq!(redact_one("token 5b7c1d2e-aaaa-4bbb-8ccc-01…", secret), "token <redacted>…");
        assert_eq!(redact_one("…c-0123456789ab\"}", secret), "…<redacted>\"}");
        assert_eq!(redact_one("x aaaa-4bbb-8c y", secret), "x <redacted> y");
        // Shorter than MIN_PART: an ordinary word, kept.
        assert_eq!(redact_one("id 5b7c1d2", secret), "id 5b7c1d2");
        // Whole, twice, and overlapping windows give one replacement each.
        assert_eq!(redact_one(&format!("{secret}{secret}"), secret), "<redacted><redacted>");
        assert_eq!(redact_one(&format!("a {secret} b {secret}"), secret), "a <redacted> b <redacted>");
        // A short secret is only ever matched whole.
        assert_eq!(redact_one("the root of it", "root"), "the <redacted> of it");
        // Multi-byte text and secrets never split a character.
        assert_eq!(redact_one("é5b7c1d2e-aé", secret), "é<redacted>é");
        assert_eq!(redact_one("x ééééé-tok-ééé y", "ééééé-tok-ééé"), "x <redacted> y");
    }

    #[test]
    fn every_secret_created_is_redacted() {
        let _s = Secret::new("r3dact-me-please");
        assert_eq!(redact("token r3dact-me-please!"), "token <redacted>!");
    }
}
