//! Splits a streamed JSON array into its elements, so each can be decoded from a slice.
//!
//! serde_json decodes a slice three to four times faster than a reader (a reader is read a byte
//! at a time), and a catalog-sized answer is tens of megabytes: [`for_each_element`] finds where
//! each top-level element of the array ends while the bytes stream in and hands the element's
//! bytes over whole. Memory stays bounded: an element longer than the caller's `max` (one node
//! with a million services) is handed over as a reader of its bytes instead, for the caller to
//! decode as it streams; scanning resumes right after it.

use std::io::{self, Read};

/// One element of the array.
pub enum Element<'a> {
    /// The element's bytes, whole.
    Slice(&'a [u8]),
    /// The element's bytes as they stream in, ending where the element ends.
    Stream(&'a mut dyn Read),
}

/// How many bytes are read at a time.
const READ: usize = 64 * 1024;

struct Scanner<R> {
    inner: R,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..]`.
    start: usize,
    eof: bool,
}

impl<R: Read> Scanner<R> {
    /// Reads more bytes after `buf`'s end (dropping what is consumed first); false at the end.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ, 0);
        let n = loop {
            match self.inner.read(&mut self.buf[len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(len);
                return Err(e);
            }
        };
        self.buf.truncate(len + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    /// The next byte that is not whitespace, not consumed; `None` at the end.
    fn peek_token(&mut self) -> io::Result<Option<u8>> {
        loop {
            while let Some(&b) = self.buf.get(self.start) {
                if !b.is_ascii_whitespace() {
                    return Ok(Some(b));
                }
                self.start += 1;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }
}

/// Where the element starting at `buf[0]` ends (exclusive), if it ends within `buf`. The
/// scan goes on where the last call stopped; [`ElementEnd::at`] counts from the element's
/// first byte not yet consumed.
#[derive(Default)]
struct ElementEnd {
    /// Bytes of the element already scanned.
    at: usize,
    depth: usize,
    in_string: bool,
    escape: bool,
    /// An object or array (else a scalar); known from its first byte.
    nested: Option<bool>,
}

impl ElementEnd {
    fn scan(&mut self, buf: &[u8]) -> Option<usize> {
        let nested = match self.nested {
            Some(n) => n,
            None => {
                let n = matches!(buf.first()?, b'{' | b'[');
                self.nested = Some(n);
                n
            }
        };
        while self.at < buf.len() {
            let b = buf[self.at];
            self.at += 1;
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if !nested {
                        return Some(self.at);
                    }
                } else {
                    // A run of plain string bytes at once.
                    self.at += skip(&buf[self.at..], |w| has(w, b'"') | has(w, b'\\'), |b| b == b'"' || b == b'\\');
                }
                continue;
            }
            if nested && !matches!(b, b'"' | b'{' | b'}' | b'[' | b']') {
                // Between tokens of an object or array only these bytes matter: skip to the next.
                // (`(b | 0x20) & 0xF9 == 0x79` holds for the four brackets, and for `Y`, `y`, `_` and
                // DEL, which JSON has only inside strings: a word without either is skipped.)
                self.at += skip(
                    &buf[self.at..],
                    |w| has(w, b'"') | has((w | 0x2020_2020_2020_2020) & 0xF9F9_F9F9_F9F9_F9F9, 0x79),
                    |b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']'),
                );
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if nested => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(self.at);
                    }
                }
                // A scalar ends before the separator or the array's end.
                b',' | b']' | b'}' if !nested => return Some(self.at - 1),
                _ if b.is_ascii_whitespace() && !nested => return Some(self.at - 1),
                _ => {}
            }
        }
        None
    }
}

/// Whether the word holds the byte `c` (may also say so for a byte after a true match).
fn has(w: u64, c: u8) -> u64 {
    let x = w ^ (0x0101_0101_0101_0101 * u64::from(c));
    x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080
}

/// How many bytes of `buf` come before the first one `stop` accepts (all of them if none):
/// eight at a time while `word` says none of the eight can be one.
fn skip(buf: &[u8], word: impl Fn(u64) -> u64, stop: impl Fn(u8) -> bool) -> usize {
    let mut at = 0;
    while let Some(w) = buf.get(at..at + 8) {
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        if word(w) != 0 {
            break;
        }
        at += 8;
    }
    at + buf[at..].iter().position(|&b| stop(b)).unwrap_or(buf.len() - at)
}

/// The bytes of one element, as they stream in: never a byte past its end.
struct ElementReader<'a, R> {
    s: &'a mut Scanner<R>,
    end: ElementEnd,
    /// Bytes left once its end is found.
    until: Option<usize>,
}

impl<R: Read> Read for ElementReader<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.until == Some(0) || out.is_empty() {
                return Ok(0);
            }
            let avail = &self.s.buf[self.s.start..];
            let n = match self.until {
                Some(n) => n,
                None => match self.end.scan(avail) {
                    Some(n) => {
                        self.until = Some(n);
                        n
                    }
                    None => avail.len(),
                },
            };
            if n == 0 {
                if !self.s.fill()? {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the answer ended inside an element"));
                }
                continue;
            }
            let k = n.min(out.len());
            out[..k].copy_from_slice(&avail[..k]);
            self.s.start += k;
            match &mut self.until {
                Some(u) => *u -= k,
                None => self.end.at -= k,
            }
            return Ok(k);
        }
    }
}

fn syntax(what: &str) -> serde_json::Error {
    serde::de::Error::custom(format!("expected {what}"))
}

/// Reads a JSON array (or `null`, as no elements) from `r` and calls `each` for every element:
/// as a slice when it is at most `max` bytes long, as a stream otherwise.
pub fn for_each_element<R: Read>(
    r: R,
    max: usize,
    mut each: impl FnMut(Element<'_>) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    let mut s = Scanner { inner: r, buf: Vec::with_capacity(2 * READ), start: 0, eof: false };
    let io = serde_json::Error::io;
    match s.peek_token().map_err(io)? {
        Some(b'[') => s.start += 1,
        Some(b'n') => {
            // `null`: Consul answers it for an empty list in some versions.
            while s.buf.len() - s.start < 4 && s.fill().map_err(io)? {}
            if s.buf.get(s.start..s.start + 4) != Some(b"null") {
                return Err(syntax("a list"));
            }
            s.start += 4;
            return match s.peek_token().map_err(io)? {
                None => Ok(()),
                Some(_) => Err(syntax("the end of the answer after null")),
            };
        }
        _ => return Err(syntax("a list")),
    }
    let mut first = true;
    loop {
        match s.peek_token().map_err(io)? {
            Some(b']') => {
                s.start += 1;
                break;
            }
            Some(b',') if !first => {
                s.start += 1;
                if matches!(s.peek_token().map_err(io)?, Some(b']') | None) {
                    return Err(syntax("an element after `,`"));
                }
            }
            Some(_) if first => {}
            Some(_) => return Err(syntax("`,` or `]` between the list's elements")),
            None => return Err(syntax("the rest of the list (the answer ended early)")),
        }
        first = false;
        let mut end = ElementEnd::default();
        loop {
            if let Some(n) = end.scan(&s.buf[s.start..]) {
                each(Element::Slice(&s.buf[s.start..s.start + n]))?;
                s.start += n;
                break;
            }
            if s.buf.len() - s.start > max {
                // Too long to hold: decoded as it streams in, from its first byte.
                let mut element = ElementReader { s: &mut s, end, until: None };
                each(Element::Stream(&mut element))?;
                // Whatever of it the callee left unread is skipped.
                let mut rest = [0u8; 4096];
                while element.read(&mut rest).map_err(io)? > 0 {}
                break;
            }
            // (`fill` drops the consumed bytes: the element then starts at 0, as `end` counts.)
            if !s.fill().map_err(io)? {
                return Err(syntax("the rest of the list (the answer ended inside an element)"));
            }
        }
    }
    match s.peek_token().map_err(io)? {
        None => Ok(()),
        Some(_) => Err(syntax("the end of the answer after the list")),
    }
}

/// Bytes of whole elements sent to the caller's thread at a time.
const BATCH: usize = 64 * 1024;

/// What the splitting thread hands over.
enum Piece {
    /// Whole elements, back to back, and where each ends.
    Batch(Vec<u8>, Vec<usize>),
    /// The next bytes of a long element; [`Piece::PartEnd`] after its last.
    Part(Vec<u8>),
    PartEnd,
}

/// A long element's bytes as the splitting thread sends them.
struct Parts<'a> {
    rx: &'a std::sync::mpsc::Receiver<Piece>,
    cur: Vec<u8>,
    at: usize,
    ended: bool,
}

impl Read for Parts<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Piece::Part(next)) => (self.cur, self.at) = (next, 0),
                Ok(Piece::PartEnd) => self.ended = true,
                Ok(Piece::Batch(..)) | Err(_) => {
                    self.ended = true;
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the answer ended inside an element"));
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.at);
        out[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The splitting thread stopped because the caller's side did (its error is the one to tell).
const STOPPED: &str = "the decoding side stopped";

/// [`for_each_element`] with the splitting done on a second thread while `each` decodes on
/// this one: the two passes over the bytes overlap. At most a few batches are in flight
/// (about 256 KiB), so memory stays bounded as in [`for_each_element`].
pub fn for_each_element_pipelined<R: Read + Send>(
    r: R,
    max: usize,
    mut each: impl FnMut(Element<'_>) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    let stopped = || <serde_json::Error as serde::de::Error>::custom(STOPPED);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(4);
        // A small stack: the splitter recurses nowhere.
        let spawned = std::thread::Builder::new().name("jsonsplit".into()).stack_size(256 * 1024).spawn_scoped(
            scope,
            move || {
                let (mut batch, mut ends) = (Vec::with_capacity(BATCH), Vec::new());
                let flush = |batch: &mut Vec<u8>, ends: &mut Vec<usize>| {
                    if ends.is_empty() {
                        return true;
                    }
                    let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
                    tx.send(Piece::Batch(full, std::mem::take(ends))).is_ok()
                };
                let result = for_each_element(r, max, |e| {
                    match e {
                        Element::Slice(b) => {
                            batch.extend_from_slice(b);
                            ends.push(batch.len());
                            if batch.len() >= BATCH && !flush(&mut batch, &mut ends) {
                                return Err(stopped());
                            }
                        }
                        Element::Stream(r) => {
                            if !flush(&mut batch, &mut ends) {
                                return Err(stopped());
                            }
                            let mut buf = vec![0u8; READ];
                            loop {
                                let n = r.read(&mut buf).map_err(serde_json::Error::io)?;
                                if n == 0 {
                                    break;
                                }
                                if tx.send(Piece::Part(buf[..n].to_vec())).is_err() {
                                    return Err(stopped());
                                }
                            }
                            if tx.send(Piece::PartEnd).is_err() {
                                return Err(stopped());
                            }
                        }
                    }
                    Ok(())
                });
                if result.is_ok() && !flush(&mut batch, &mut ends) {
                    return Err(stopped());
                }
                result
            },
        );
        let splitter = match spawned {
            Ok(s) => s,
            Err(e) => return Err(serde_json::Error::io(e)),
        };
        let mut decoded = Ok(());
        'pieces: while let Ok(piece) = rx.recv() {
            match piece {
                Piece::Batch(buf, ends) => {
                    let mut at = 0;
                    for end in ends {
                        if let Err(e) = each(Element::Slice(&buf[at..end])) {
                            decoded = Err(e);
                            break 'pieces;
                        }
                        at = end;
                    }
                }
                Piece::Part(first) => {
                    let mut parts = Parts { rx: &rx, cur: first, at: 0, ended: false };
                    let result = each(Element::Stream(&mut parts));
                    // Whatever of it the callee left unread is skipped.
                    let mut rest = [0u8; 4096];
                    while matches!(parts.read(&mut rest), Ok(n) if n > 0) {}
                    if let Err(e) = result {
                        decoded = Err(e);
                        break 'pieces;
                    }
                }
                Piece::PartEnd => {}
            }
        }
        drop(rx);
        let split = splitter
            .join()
            .unwrap_or_else(|_| Err(<serde_json::Error as serde::de::Error>::custom("the splitting thread failed")));
        match (split, decoded) {
            // The splitter's own error (a broken list, a cut answer) says more than what the
            // decoding side saw of it.
            (Err(e), _) if e.to_string() != STOPPED => Err(e),
            (_, Err(e)) => Err(e),
            (split, Ok(())) => split,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each element's bytes and how it came (slice or stream), reading the stream to the end
    /// of one JSON value with serde_json, as a caller does.
    fn split(body: &[u8], max: usize, chunk: usize) -> serde_json::Result<Vec<(bool, serde_json::Value)>> {
        struct Chunks<'a>(&'a [u8], usize);
        impl Read for Chunks<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.1).min(self.0.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        fn value(e: Element<'_>) -> serde_json::Result<(bool, serde_json::Value)> {
            match e {
                Element::Slice(b) => Ok((true, serde_json::from_slice(b)?)),
                Element::Stream(r) => {
                    use serde::Deserialize;
                    let mut de = serde_json::Deserializer::from_reader(io::BufReader::new(r));
                    let v = serde_json::Value::deserialize(&mut de)?;
                    de.end()?;
                    Ok((false, v))
                }
            }
        }
        let mut got = Vec::new();
        let mut piped = Vec::new();
        let piped =
            for_each_element_pipelined(Chunks(body, chunk), max, |e| value(e).map(|v| piped.push(v))).map(|()| piped);
        let plain = for_each_element(Chunks(body, chunk), max, |e| value(e).map(|v| got.push(v))).map(|()| got);
        match (&plain, &piped) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "the pipelined splitter hands over the same elements"),
            (Err(_), Err(_)) => {}
            _ => panic!("one splitter failed alone: plain {plain:?}, pipelined {piped:?}"),
        }
        plain
    }

    #[test]
    fn elements_come_whole_whatever_the_chunks() {
        let body = br#" [ {"a": "x]}\"{", "b": [1, {"c": []}]}, {"d": "\\"} ,[1,2],"s\"tr", 12 ,null,true ] "#;
        let want: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let got = split(body, 1 << 20, chunk).unwrap();
            assert_eq!(got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), want, "chunk {chunk}");
            assert!(got.iter().all(|g| g.0), "all small");
        }
    }

    #[test]
    fn long_elements_are_streamed_and_scanning_resumes_after_them() {
        let big = format!(r#"{{"n": "{}", "l": [1, 2, 3]}}"#, "x".repeat(200_000));
        let body = format!(r#"[{{"a": 1}}, {big}, {{"b": 2}}, {big}]"#);
        let want: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        for chunk in [5, 1000, 65536] {
            let got = split(body.as_bytes(), 100_000, chunk).unwrap();
            assert_eq!(got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), want);
            assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![true, false, true, false]);
            let cut = &body.as_bytes()[..body.len() - 100];
            assert!(split(cut, 100_000, chunk).is_err(), "an answer cut inside a long element");
        }
        // A long scalar element streams too.
        let body = format!(r#"["{}", 1]"#, "y".repeat(300_000));
        let got = split(body.as_bytes(), 1000, 4096).unwrap();
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![false, true]);
    }

    #[test]
    fn word_skipping_stops_where_a_byte_scan_stops() {
        // Every byte value at every offset of a 20-byte run of plain bytes.
        for c in 0..=255u8 {
            for at in 0..20 {
                let mut buf = vec![b'a'; 20];
                buf[at] = c;
                let brackets = |b: u8| matches!(b, b'"' | b'{' | b'}' | b'[' | b']');
                let quote = |b: u8| b == b'"' || b == b'\\';
                let want = |stop: &dyn Fn(u8) -> bool| buf.iter().position(|&b| stop(b)).unwrap_or(buf.len());
                let outside = skip(
                    &buf,
                    |w| has(w, b'"') | has((w | 0x2020_2020_2020_2020) & 0xF9F9_F9F9_F9F9_F9F9, 0x79),
                    brackets,
                );
                assert_eq!(outside, want(&brackets), "{c} at {at}");
                assert_eq!(skip(&buf, |w| has(w, b'"') | has(w, b'\\'), quote), want(&quote), "{c} at {at}");
            }
        }
    }

    #[test]
    fn broken_lists_are_refused() {
        for bad in ["", "{}", "[1 2]", "[1,", "[1,]", "[{\"a\": 1}", "[1]x", "[,1]", "nul", "null x", "[\"abc"] {
            assert!(split(bad.as_bytes(), 1 << 20, 3).is_err(), "{bad:?}");
        }
        assert!(split(b"null", 10, 1).unwrap().is_empty());
        assert!(split(b" [ ] ", 10, 1).unwrap().is_empty());
    }
}
