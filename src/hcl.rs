//! A reader for the HCL (version 1) subset Consul service definitions use, into JSON values.
//!
//! Consul decodes configuration with HCL 1, where `service { name = "x"\n port = 8080 }` is valid
//! and repeated blocks (`checks { } checks { }`) become a list. HCL 2 parsers reject some of these
//! forms, so the doctor reads them itself: attributes, blocks (with optional labels), strings
//! with escapes, heredocs, numbers, booleans, lists and inline objects, and the three comment
//! styles. Errors carry a line and column.

use serde_json::{Map, Number, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HclError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for HclError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

/// Parses an HCL 1 document into a JSON object.
pub fn parse(text: &str) -> Result<Value, HclError> {
    let mut p = Parser { chars: text.chars().collect(), pos: 0, depth: 0 };
    let body = p.body(None)?;
    Ok(Value::Object(body))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

/// Deeper nesting is refused instead of exhausting the stack (serde_json stops at 128 too).
const MAX_DEPTH: usize = 128;

impl Parser {
    fn err(&self, message: impl Into<String>) -> HclError {
        let (mut line, mut column) = (1, 1);
        for &c in &self.chars[..self.pos.min(self.chars.len())] {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        HclError { line, column, message: message.into() }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Skips blanks and comments; newlines too when `newlines`.
    fn skip(&mut self, newlines: bool) -> Result<(), HclError> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r') => self.pos += 1,
                Some('\n') if newlines => self.pos += 1,
                Some('#') => self.line_comment(),
                Some('/') if self.chars.get(self.pos + 1) == Some(&'/') => self.line_comment(),
                Some('/') if self.chars.get(self.pos + 1) == Some(&'*') => {
                    let start = self.pos;
                    self.pos += 2;
                    loop {
                        match self.peek() {
                            None => {
                                self.pos = start;
                                return Err(self.err("unterminated /* comment"));
                            }
                            Some('*') if self.chars.get(self.pos + 1) == Some(&'/') => {
                                self.pos += 2;
                                break;
                            }
                            _ => self.pos += 1,
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn line_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.pos += 1;
        }
    }

    /// A sequence of attributes and blocks until `close` (or the end of input).
    fn body(&mut self, close: Option<char>) -> Result<Map<String, Value>, HclError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let result = self.body_inner(close);
        self.depth -= 1;
        result
    }

    fn body_inner(&mut self, close: Option<char>) -> Result<Map<String, Value>, HclError> {
        let mut out = Map::new();
        loop {
            self.skip(true)?;
            match self.peek() {
                None if close.is_none() => return Ok(out),
                None => return Err(self.err(format!("expected '{}' before the end of the file", close.unwrap_or('}')))),
                Some(c) if Some(c) == close => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(',') => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let key = self.key()?;
            self.skip(false)?;
            let mut labels = Vec::new();
            while self.peek() == Some('"') {
                labels.push(self.string()?);
                self.skip(false)?;
            }
            let value = match self.peek() {
                Some('=' | ':') if labels.is_empty() => {
                    self.pos += 1;
                    self.skip(false)?;
                    let v = self.value()?;
                    insert(&mut out, key, v, false);
                    continue;
                }
                Some('{') => {
                    self.pos += 1;
                    Value::Object(self.body(Some('}'))?)
                }
                _ => return Err(self.err(format!("expected '=' or '{{' after {key:?}"))),
            };
            let mut v = value;
            for label in labels.into_iter().rev() {
                let mut m = Map::new();
                m.insert(label, v);
                v = Value::Object(m);
            }
            insert(&mut out, key, v, true);
        }
    }

    fn key(&mut self) -> Result<String, HclError> {
        match self.peek() {
            Some('"') => self.string(),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Ok(self.chars[start..self.pos].iter().collect())
            }
            Some(c) => Err(self.err(format!("unexpected {c:?}, expected a key"))),
            None => Err(self.err("unexpected end of file, expected a key")),
        }
    }

    fn value(&mut self) -> Result<Value, HclError> {
        match self.peek() {
            Some('"') => Ok(Value::String(self.string()?)),
            Some('<') if self.chars.get(self.pos + 1) == Some(&'<') => self.heredoc(),
            Some('[') => {
                self.pos += 1;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.err(format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                let mut items = Vec::new();
                loop {
                    self.skip(true)?;
                    match self.peek() {
                        Some(']') => {
                            self.pos += 1;
                            self.depth -= 1;
                            return Ok(Value::Array(items));
                        }
                        Some(',') => self.pos += 1,
                        None => return Err(self.err("unterminated list: expected ']'")),
                        _ => items.push(self.value()?),
                    }
                }
            }
            Some('{') => {
                self.pos += 1;
                Ok(Value::Object(self.body(Some('}'))?))
            }
            Some(c) if c == '-' || c == '+' || c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_alphabetic() => {
                let word = self.key()?;
                match word.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    other => Err(self.err(format!("unexpected {other:?}: strings must be quoted"))),
                }
            }
            Some(c) => Err(self.err(format!("unexpected {c:?}, expected a value"))),
            None => Err(self.err("unexpected end of file, expected a value")),
        }
    }

    fn number(&mut self) -> Result<Value, HclError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => {
                self.pos = start;
                Err(self.err(format!("{text:?} is not a number (durations and other text must be quoted)")))
            }
        }
    }

    fn string(&mut self) -> Result<String, HclError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => {
                    self.pos = start;
                    return Err(self.err("unterminated string"));
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    let esc = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
                    self.pos += 1;
                    match esc {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'u' => {
                            let hex: String =
                                self.chars.get(self.pos..self.pos + 4).map(|s| s.iter().collect()).unwrap_or_default();
                            let c = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.err("invalid \\u escape"))?;
                            self.pos += 4;
                            out.push(c);
                        }
                        other => return Err(self.err(format!("unknown escape \\{other}"))),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn heredoc(&mut self) -> Result<Value, HclError> {
        self.pos += 2;
        let indent = self.peek() == Some('-');
        if indent {
            self.pos += 1;
        }
        let marker = self.key()?;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == '\n' {
                break;
            }
        }
        let mut lines = Vec::new();
        loop {
            if self.pos >= self.chars.len() {
                return Err(self.err(format!("heredoc not closed by {marker}")));
            }
            let start = self.pos;
            while let Some(c) = self.peek() {
                if c == '\n' {
                    break;
                }
                self.pos += 1;
            }
            let line: String = self.chars[start..self.pos].iter().collect();
            if self.peek() == Some('\n') {
                self.pos += 1;
            }
            if line.trim() == marker {
                break;
            }
            lines.push(line);
        }
        let mut text = lines.join("\n");
        text.push('\n');
        Ok(Value::String(text))
    }
}

/// HCL 1 turns repeated keys into lists; blocks merge into a list too.
fn insert(out: &mut Map<String, Value>, key: String, v: Value, block: bool) {
    match out.get_mut(&key) {
        Some(Value::Array(items)) if block => items.push(v),
        Some(existing) if block && existing.is_object() => {
            let prev = existing.take();
            *existing = Value::Array(vec![prev, v]);
        }
        _ => {
            out.insert(key, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_consul_service_definitions() {
        let v = parse(
            r#"
# a comment
service {
  name = "web"
  port = 8080
  tags = ["v1", "primary"]
  meta = { version = "1.2" }
  check {
    id       = "web-http"   // trailing comment
    http     = "http://localhost:8080/health"
    interval = "10s"
    header   = { Authorization = ["Bearer x"] }
  }
  /* block
     comment */
  enable_tag_override = true
}
"#,
        )
        .unwrap();
        assert_eq!(v["service"]["name"], "web");
        assert_eq!(v["service"]["port"], 8080);
        assert_eq!(v["service"]["tags"], json!(["v1", "primary"]));
        assert_eq!(v["service"]["check"]["interval"], "10s");
        assert_eq!(v["service"]["check"]["header"]["Authorization"], json!(["Bearer x"]));
        assert_eq!(v["service"]["enable_tag_override"], true);
    }

    #[test]
    fn repeated_blocks_become_lists() {
        let v = parse("services { name = \"a\" }\nservices { name = \"b\" }\n").unwrap();
        assert_eq!(v["services"], json!([{"name": "a"}, {"name": "b"}]));
        let v = parse("service { name = \"a\"\n checks { ttl = \"5s\" }\n checks { ttl = \"6s\" } }").unwrap();
        assert_eq!(v["service"]["checks"], json!([{"ttl": "5s"}, {"ttl": "6s"}]));
    }

    #[test]
    fn one_line_hcl1_forms_and_labels() {
        let v = parse("service { name = \"x\"\n port = 8080 }").unwrap();
        assert_eq!(v["service"]["port"], 8080);
        let v = parse("service \"legacy\" { port = 1 }").unwrap();
        assert_eq!(v["service"]["legacy"]["port"], 1);
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("service {\n  name = web\n}").unwrap_err();
        assert_eq!((e.line, e.column), (2, 13));
        assert!(e.message.contains("quoted"), "{e}");
        let e = parse("service {\n  name = \"web\"\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("service {\n  interval = 10s\n}").unwrap_err();
        assert!(e.message.contains("quoted"), "{e}");
    }

    #[test]
    fn heredocs() {
        let v = parse("notes = <<EOT\nline one\nline two\nEOT\n").unwrap();
        assert_eq!(v["notes"], "line one\nline two\n");
    }
}
