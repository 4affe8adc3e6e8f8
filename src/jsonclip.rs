//! Bounds every string of a JSON document while it is read, before serde sees it.
//!
//! A server (or anything answering in its place) decides how long a check's `Output`, a node name
//! or a meta value is. serde_json's streaming decoder buffers a whole string before handing it
//! over, so one 1 GB field would need 1 GB of memory however little of it the doctor keeps.
//! [`ClipStrings`] sits between the byte stream and the decoder: a string longer than
//! [`MAX_STRING`] bytes keeps its first [`MAX_STRING`] bytes and an ellipsis, and the rest is
//! dropped as it streams past. It never cuts inside an escape sequence, a UTF-8 character or a
//! surrogate pair, so the result is always the same valid JSON with shorter strings.

use std::io::{self, Read};

/// Longest string kept whole, in bytes of its JSON form. Consul's own limits are far below it
/// (check output 4 KiB by default, meta values 512 characters); only a broken or hostile answer
/// reaches it.
pub const MAX_STRING: usize = 16 * 1024;

/// Appended to a clipped string.
const MARK: &[u8] = "…".as_bytes();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After a backslash.
    Backslash,
    /// After `\u` and this many hex digits, with their value so far.
    Unicode(u8, u16),
}

#[derive(Debug, Clone, Copy)]
struct InString {
    /// Bytes of the string copied so far.
    len: usize,
    escape: Escape,
    /// The last thing copied was a `\uD800`–`\uDBFF` escape: its pair must follow whole.
    high_surrogate: bool,
    /// Over the limit: bytes are dropped until the closing quote.
    skipping: bool,
}

/// A `Read` adapter that clips long JSON strings (see the module documentation).
pub struct ClipStrings<R> {
    inner: R,
    limit: usize,
    string: Option<InString>,
    input: Vec<u8>,
    out: Vec<u8>,
    at: usize,
    eof: bool,
}

impl<R: Read> ClipStrings<R> {
    pub fn new(inner: R) -> ClipStrings<R> {
        ClipStrings::with_limit(inner, MAX_STRING)
    }

    pub fn with_limit(inner: R, limit: usize) -> ClipStrings<R> {
        ClipStrings { inner, limit, string: None, input: vec![0; 64 * 1024], out: Vec::new(), at: 0, eof: false }
    }

    fn process(&mut self, n: usize) {
        let input = &self.input[..n];
        let out = &mut self.out;
        let mut i = 0;
        while i < input.len() {
            let Some(s) = self.string.as_mut() else {
                // Outside strings: copy through the next opening quote.
                match input[i..].iter().position(|&b| b == b'"') {
                    Some(p) => {
                        out.extend_from_slice(&input[i..=i + p]);
                        i += p + 1;
                        self.string =
                            Some(InString { len: 0, escape: Escape::None, high_surrogate: false, skipping: false });
                    }
                    None => {
                        out.extend_from_slice(&input[i..]);
                        i = input.len();
                    }
                }
                continue;
            };
            let b = input[i];
            if s.escape != Escape::None {
                // Inside an escape: one byte at a time, copied unless dropping.
                s.escape = match (s.escape, b) {
                    (Escape::Backslash, b'u') => Escape::Unicode(0, 0),
                    (Escape::Unicode(k, v), _) if k < 3 => Escape::Unicode(k + 1, v << 4 | hex(b)),
                    (Escape::Unicode(_, v), _) => {
                        s.high_surrogate = (0xD800..=0xDBFF).contains(&(v << 4 | hex(b)));
                        Escape::None
                    }
                    _ => {
                        s.high_surrogate = false;
                        Escape::None
                    }
                };
                if !s.skipping {
                    out.push(b);
                    s.len += 1;
                }
                i += 1;
                continue;
            }
            if s.skipping {
                match input[i..].iter().position(|&b| b == b'"' || b == b'\\') {
                    Some(p) if input[i + p] == b'"' => {
                        out.push(b'"');
                        self.string = None;
                        i += p + 1;
                    }
                    Some(p) => {
                        s.escape = Escape::Backslash;
                        i += p + 1;
                    }
                    None => i = input.len(),
                }
                continue;
            }
            if b != b'"' && s.len >= self.limit && !s.high_surrogate && !is_continuation(b) {
                out.extend_from_slice(MARK);
                s.skipping = true;
                continue;
            }
            match b {
                b'"' => {
                    out.push(b'"');
                    self.string = None;
                    i += 1;
                }
                b'\\' => {
                    out.push(b'\\');
                    s.len += 1;
                    s.escape = Escape::Backslash;
                    i += 1;
                }
                _ => {
                    // A run of plain bytes, up to the limit and then to the end of its character.
                    let run = input[i..].iter().position(|&b| b == b'"' || b == b'\\').unwrap_or(input.len() - i);
                    let mut take = run.min(self.limit.saturating_sub(s.len).max(1));
                    while take < run && is_continuation(input[i + take]) {
                        take += 1;
                    }
                    out.extend_from_slice(&input[i..i + take]);
                    s.len += take;
                    s.high_surrogate = false;
                    i += take;
                }
            }
        }
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0b1100_0000 == 0b1000_0000
}

fn hex(b: u8) -> u16 {
    match b {
        b'0'..=b'9' => u16::from(b - b'0'),
        b'a'..=b'f' => u16::from(b - b'a' + 10),
        b'A'..=b'F' => u16::from(b - b'A' + 10),
        _ => 0,
    }
}

impl<R: Read> Read for ClipStrings<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.out.len() {
                let n = buf.len().min(self.out.len() - self.at);
                buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.eof || buf.is_empty() {
                return Ok(0);
            }
            self.out.clear();
            self.at = 0;
            let n = loop {
                match self.inner.read(&mut self.input) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other?,
                }
            };
            if n == 0 {
                self.eof = true;
            } else {
                self.process(n);
            }
        }
    }
}

/// `s` clipped as a JSON string of it would be: its first [`MAX_STRING`] bytes (to a character
/// boundary) and an ellipsis.
pub fn clip_str(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_STRING {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = MAX_STRING;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &s[..end]))
}

/// Decodes JSON from bytes with every string clipped to [`MAX_STRING`].
pub fn from_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    // No string is longer than the whole document: a short one decodes as it is, without the
    // adapter's buffers.
    if bytes.len() <= MAX_STRING {
        return serde_json::from_slice(bytes);
    }
    // serde_json reads a byte at a time: the buffer keeps those reads cheap.
    serde_json::from_reader(io::BufReader::with_capacity(64 * 1024, ClipStrings::new(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads through the adapter `step` bytes of input at a time.
    struct Dribble<'a>(&'a [u8], usize);

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn clip(json: &str, limit: usize, step: usize) -> String {
        let mut out = String::new();
        ClipStrings::with_limit(Dribble(json.as_bytes(), step), limit).read_to_string(&mut out).unwrap();
        out
    }

    fn all_steps(json: &str, limit: usize) -> String {
        let whole = clip(json, limit, usize::MAX);
        for step in [1, 2, 3, 5, 7, 64] {
            assert_eq!(clip(json, limit, step), whole, "step {step} of {json:?}");
        }
        whole
    }

    #[test]
    fn short_strings_and_everything_outside_strings_pass_unchanged() {
        let doc = r#"{"Node":"n1","Port":8080,"Tags":["a","b\"c"],"X":null,"Y":[1.5e3,true],"é":"ü\u00e9"}"#;
        assert_eq!(all_steps(doc, 64), doc);
    }

    #[test]
    fn long_strings_keep_their_start_and_an_ellipsis_and_stay_valid_json() {
        let long = "x".repeat(100);
        let out = all_steps(&format!(r#"{{"Output":"{long}","Next":"ok"}}"#), 10);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Output"], "xxxxxxxxxx…");
        assert_eq!(v["Next"], "ok");
    }

    #[test]
    fn never_cuts_an_escape_a_character_or_a_surrogate_pair() {
        for (input, limit) in [
            (r#"["abcdefghi\"quoted\" and more"]"#, 10),
            (r#"["abcdefgh\\\\\\\\\\\\\\\\\\"]"#, 9),
            (r#"["abcdefghé\u00e9\u00e9\u00e9 and more"]"#, 10),
            ("[\"abcdefghé€😀😀😀 and more\"]", 10),
            (r#"["abcdefgh\ud83d\ude00\ud83d\ude00\ud83d\ude00"]"#, 9),
            (r#"["abcdefgh\ud83d\ude00\ud83d\ude00\ud83d\ude00"]"#, 14),
            (r#"["a\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"", "b"]"#, 4),
        ] {
            let out = all_steps(input, limit);
            let v: Vec<String> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            let original: Vec<String> = serde_json::from_str(input).unwrap();
            assert!(v[0].ends_with('…'), "{out}");
            let kept = v[0].trim_end_matches('…');
            assert!(original[0].starts_with(kept), "{kept:?} is a prefix of {:?}", original[0]);
            assert!(out.len() <= input.len() + MARK.len());
        }
    }

    #[test]
    fn a_huge_field_streams_through_in_bounded_memory() {
        /// `{"Output":"xxxx…(n bytes)","Status":"passing"}` generated on the fly.
        struct Huge {
            n: usize,
            at: usize,
        }
        impl Read for Huge {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let head = br#"{"Output":""#;
                let tail = br#"","Status":"passing"}"#;
                let total = head.len() + self.n + tail.len();
                let mut k = 0;
                while k < buf.len() && self.at < total {
                    buf[k] = if self.at < head.len() {
                        head[self.at]
                    } else if self.at < head.len() + self.n {
                        b'x'
                    } else {
                        tail[self.at - head.len() - self.n]
                    };
                    k += 1;
                    self.at += 1;
                }
                Ok(k)
            }
        }
        #[derive(serde::Deserialize)]
        struct Check {
            #[serde(rename = "Output")]
            output: String,
            #[serde(rename = "Status")]
            status: String,
        }
        let reader = io::BufReader::new(ClipStrings::new(Huge { n: 64 << 20, at: 0 }));
        let c: Check = serde_json::from_reader(reader).unwrap();
        assert_eq!(c.output.len(), MAX_STRING + MARK.len());
        assert_eq!(c.status, "passing");
    }
}
