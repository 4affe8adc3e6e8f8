//! What `wait` shows while it waits, on standard error (standard output is the report's).
//! On a terminal: one live line, redrawn in place (what it waits for, how many pass, time
//! left, the latest change with Consul's check output). Elsewhere (CI logs): only state
//! changes and retries, one timestamped line each. Colour follows anstream (NO_COLOR honoured).

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anstyle::{AnsiColor, Style};

use super::condition::{Change, Health, Tally};

const GOOD: Style = AnsiColor::Green.on_default();
const BAD: Style = AnsiColor::Red.on_default();
const DIM: Style = Style::new().effects(anstyle::Effects::DIMMED);

/// State-change lines printed per answer off a terminal (the first answer on a catalog of
/// thousands would otherwise print thousands).
const MAX_LINES_PER_ANSWER: usize = 20;

pub struct Progress {
    live: bool,
    what: String,
    tally: Option<Tally>,
    latest: String,
    deadline: tokio::time::Instant,
    drawn: bool,
}

impl Progress {
    pub fn new(what: String, deadline: tokio::time::Instant) -> Progress {
        let live = std::io::stderr().is_terminal();
        Progress { live, what, tally: None, latest: String::new(), deadline, drawn: false }
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    pub fn changes(&mut self, changes: &[Change]) {
        if !self.live && changes.len() > MAX_LINES_PER_ANSWER {
            self.line(&format!("… {} more change(s) in this answer", changes.len() - MAX_LINES_PER_ANSWER));
        }
        // On a terminal only the latest change is shown.
        let shown = if self.live { &changes[changes.len().saturating_sub(1)..] } else { changes };
        for c in shown.iter().take(MAX_LINES_PER_ANSWER) {
            let style = match c.to {
                Health::Passing => GOOD,
                Health::Absent => DIM,
                _ => BAD,
            };
            let mut text = format!("{} {} → {style}{}{style:#}", c.instance, c.from.as_str(), c.to.as_str());
            if !c.output.is_empty() {
                text.push_str(&format!(": {}", c.output));
            }
            if self.live {
                self.latest = text;
            } else {
                self.line(&text);
            }
        }
    }

    pub fn tally(&mut self, tally: Tally) {
        self.tally = Some(tally);
        self.redraw();
    }

    pub fn retrying(&mut self, why: &str, pause: Duration) {
        let text = format!("retrying in {} ms: {why}", pause.as_millis());
        if self.live {
            self.latest = text;
            self.redraw();
        } else {
            self.line(&text);
        }
    }

    /// Redraws the live line (time left changes every second); nothing off a terminal.
    pub fn redraw(&mut self) {
        if !self.live {
            return;
        }
        let left = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        let counts = match self.tally {
            Some(t) => format!("{} of {} matching passing", t.passing, t.matching),
            None => "connecting".to_string(),
        };
        let mut line = format!("⏳ {} · {counts} · {}s left", self.what, left.as_secs());
        if !self.latest.is_empty() {
            line.push_str(&format!(" · {}", self.latest));
        }
        let width = terminal_width();
        let line: String = truncate_visible(&line, width.saturating_sub(1));
        // The line clear is terminal control, not colour: written past anstream, which would
        // strip it under NO_COLOR.
        clear_line();
        let mut err = anstream::stderr();
        let _ = write!(err, "{}", crate::secret::redact(&line));
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the live line before the report.
    pub fn finish(&mut self) {
        if self.live && self.drawn {
            clear_line();
            self.drawn = false;
        }
    }

    fn line(&self, text: &str) {
        let mut err = anstream::stderr();
        let _ = writeln!(err, "{DIM}{}{DIM:#} {}", utc_now(), crate::secret::redact(text));
    }
}

fn clear_line() {
    let mut err = std::io::stderr();
    let _ = err.write_all(b"\r\x1b[2K");
    let _ = err.flush();
}

fn terminal_width() -> usize {
    crate::render::stderr_width()
}

/// Cuts a line with ANSI styles to `width` visible characters (escape sequences kept).
fn truncate_visible(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut visible = 0;
    let mut in_escape = false;
    for ch in s.chars() {
        if in_escape {
            out.push(ch);
            in_escape = ch != 'm';
            continue;
        }
        if ch == '\x1b' {
            in_escape = true;
            out.push(ch);
            continue;
        }
        if visible >= width {
            continue;
        }
        visible += 1;
        out.push(ch);
    }
    if s.contains('\x1b') {
        out.push_str("\x1b[0m");
    }
    out
}

/// `2026-12-02T18:01:31Z` (UTC, whole seconds).
pub fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    crate::duration::format_utc(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_line_is_cut_by_visible_width() {
        let s = format!("{GOOD}passing{GOOD:#} and more");
        let cut = truncate_visible(&s, 7);
        assert!(cut.contains("passing") && !cut.contains("and"));
    }
}
