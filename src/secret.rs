//! The ACL token secret, wrapped so that it cannot be printed by accident.
//!
//! `Secret` has no `Display`, and its `Debug` prints a fixed placeholder. The only way to the
//! value is [`Secret::expose`], used where the token goes into the `X-Consul-Token` header.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
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
}
