//! Values echoed into findings (service names, IDs, addresses, tags, paths) come from files and
//! flags the doctor does not control; a 4 MiB service name must not make a 16 MiB report.
//! [`clip`] shortens one value where it is formatted into a message; [`bound`] is the safety net
//! every result goes through when the report is built.

use std::borrow::Cow;

/// The longest value echoed whole (in characters).
pub const ECHO_MAX: usize = 96;
/// A run of non-space characters longer than this in a message is clipped.
const WORD_MAX: usize = 256;
/// The longest message, fix or evidence value (in characters).
const TEXT_MAX: usize = 8192;

/// `s` itself when short, else its start, an ellipsis and its end (so a closing quote or a file
/// extension stays visible).
pub fn clip(s: &str) -> Cow<'_, str> {
    clip_to(s, ECHO_MAX)
}

/// [`clip`] to `max` characters.
pub fn clip_to(s: &str, max: usize) -> Cow<'_, str> {
    let count = s.chars().count();
    if count <= max {
        return Cow::Borrowed(s);
    }
    // A secret inside is removed before the cut, which could otherwise leave a piece of it.
    let redacted = crate::secret::redact(s);
    if redacted != s {
        return Cow::Owned(cut(&redacted, redacted.chars().count(), max).into_owned());
    }
    cut(s, count, max)
}

/// `s` (of `count` characters) cut to `max`: its start, an ellipsis and its end.
fn cut(s: &str, count: usize, max: usize) -> Cow<'_, str> {
    if count <= max {
        return Cow::Borrowed(s);
    }
    let tail = (max / 8).max(1);
    let head = max - tail - 1;
    let head_end = s.char_indices().nth(head).map(|(i, _)| i).unwrap_or(s.len());
    let tail_start = s.char_indices().nth(count - tail).map(|(i, _)| i).unwrap_or(s.len());
    Cow::Owned(format!("{}…{}", &s[..head_end], &s[tail_start..]))
}

/// Evidence (the server's words, a request): kept verbatim up to a bounded length.
pub fn bound_evidence(s: &str) -> Cow<'_, str> {
    clip_to(s, TEXT_MAX)
}

/// Clips every overlong word of `s`, then `s` itself to a bounded length.
pub fn bound(s: &str) -> Cow<'_, str> {
    let has_long_word = s.split(char::is_whitespace).any(|w| w.len() > WORD_MAX);
    let text: Cow<'_, str> = if has_long_word {
        let mut out = String::with_capacity(s.len().min(TEXT_MAX * 2));
        let mut rest = s;
        while !rest.is_empty() {
            let split = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (word, after) = rest.split_at(split);
            out.push_str(&clip_to(word, ECHO_MAX));
            let spaces = after.find(|c: char| !c.is_whitespace()).unwrap_or(after.len());
            out.push_str(&after[..spaces]);
            rest = &after[spaces..];
            if out.len() > TEXT_MAX * 4 {
                break;
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    };
    if text.len() <= TEXT_MAX {
        return text;
    }
    let end = text.char_indices().nth(TEXT_MAX - 1).map(|(i, _)| i).unwrap_or(text.len());
    Cow::Owned(format!("{}…", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_kept_long_ones_keep_both_ends() {
        assert_eq!(clip("web"), "web");
        let long = format!("{}.json", "a".repeat(500));
        let c = clip(&long);
        assert_eq!(c.chars().count(), ECHO_MAX);
        assert!(c.starts_with("aaaa") && c.ends_with("a.json") && c.contains('…'), "{c}");
        let wide = "é".repeat(200);
        assert_eq!(clip(&wide).chars().count(), ECHO_MAX);
    }

    #[test]
    fn bound_clips_long_words_and_long_text() {
        let msg = format!("service \"{}\" (web.json #1) has no port", "x".repeat(10_000));
        let b = bound(&msg);
        assert!(b.len() < 200, "{b}");
        assert!(b.starts_with("service \"xxx") && b.ends_with("\" (web.json #1) has no port"), "{b}");
        let many = "word ".repeat(10_000);
        let b = bound(&many);
        assert_eq!(b.chars().count(), TEXT_MAX);
        assert!(b.ends_with('…'));
        assert_eq!(bound("nothing to do"), "nothing to do");
    }
}
