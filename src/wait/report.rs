//! `wait`'s final report: the condition, the outcome, time waited, requests made, the timeline
//! of state changes and, when the condition did not hold, the diagnosis in `check`'s shape.
//! Rendered as human text, JSON (own `schema_version`) or JUnit (through `check`'s renderer).

use std::fmt::Write;

use serde::Serialize;

use crate::render::human::wrapped;

use super::condition::{Change, Condition};
use crate::render::Format;
use crate::report::{CheckResult, Report, Status};

/// Version of the `wait` JSON document (independent of `check`'s).
pub const WAIT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The condition held before the deadline.
    Met,
    /// The deadline passed.
    Deadline,
    /// Stopped early: something waiting cannot fix (ACLs, configuration, TLS).
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct WaitReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub tool: crate::report::Tool,
    pub target: String,
    pub condition: Condition,
    pub description: String,
    pub outcome: Outcome,
    pub status: Status,
    pub waited_ms: u64,
    pub requests: u64,
    pub matching: usize,
    pub passing: usize,
    pub timeline: Vec<Change>,
    /// State changes beyond the timeline's limit, counted but not listed.
    pub timeline_dropped: usize,
    pub root_cause: Option<crate::report::RootCause>,
    /// Set when answers showed that blocking queries do not work through this path (WAIT-007's
    /// message): wait then polled, paced, instead of blocking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocking_queries: Option<String>,
    /// `check`'s report of the connection stages and wait's own checks (only on failure).
    pub diagnosis: Option<Report>,
}

impl WaitReport {
    pub fn render(&self, format: Format, opts: &crate::render::Options) -> String {
        match format {
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into()) + "\n",
            Format::Junit => crate::render::junit::render(&self.as_check_report(), opts.fail_on),
            Format::Human => self.human(opts),
        }
    }

    /// The outcome as a check report (one `wait.condition` result, then the diagnosis).
    fn as_check_report(&self) -> Report {
        match &self.diagnosis {
            Some(d) => d.clone(),
            None => {
                let mut c = CheckResult::pass("wait.condition", format!("{}: holds", self.description));
                c.stage = "wait";
                c.elapsed_ms = self.waited_ms;
                Report::new(self.target.clone(), Vec::new(), Default::default(), vec![c], self.waited_ms)
            }
        }
    }

    fn human(&self, opts: &crate::render::Options) -> String {
        let mut out = String::new();
        let secs = format!("{:.1}s", self.waited_ms as f64 / 1000.0);
        let green = anstyle::AnsiColor::Green.on_default();
        let red = anstyle::AnsiColor::Red.on_default().effects(anstyle::Effects::BOLD);
        match self.outcome {
            Outcome::Met => {
                let state = match self.condition.goal {
                    super::condition::Goal::Gone => "no matching instance left in the catalog".to_string(),
                    super::condition::Goal::Registered => {
                        format!("{} matching instance(s) registered ({} passing)", self.matching, self.passing)
                    }
                    super::condition::Goal::Passing(_) => {
                        format!("{} of {} matching instance(s) passing", self.passing, self.matching)
                    }
                };
                let text = format!(
                    "{}: {state} after {secs} ({} requests to {})",
                    self.description, self.requests, self.target
                );
                wrapped(&mut out, &format!("{green}✔{green:#} "), &text, 2, opts.width);
            }
            Outcome::Deadline | Outcome::Failed => {
                let why = if self.outcome == Outcome::Deadline { "not met by the deadline" } else { "stopped" };
                let text =
                    format!("{}: {why} after {secs} ({} requests to {})", self.description, self.requests, self.target);
                wrapped(&mut out, &format!("{red}✘{red:#} "), &text, 2, opts.width);
            }
        }
        if let (Some(note), None) = (&self.blocking_queries, &self.diagnosis) {
            // With a diagnosis, WAIT-007 is one of its lines already.
            wrapped(&mut out, "note WAIT-007: ", note, 2, opts.width);
        }
        if !self.timeline.is_empty() {
            let _ = writeln!(out, "timeline:");
            for c in &self.timeline {
                let output = if c.output.is_empty() { String::new() } else { format!(": {}", c.output) };
                let text = format!("{} ({})  {} → {}{output}", c.instance, c.node, c.from.as_str(), c.to.as_str());
                wrapped(&mut out, &format!("  +{:>6} ms  ", c.at_ms), &text, 6, opts.width);
            }
            if self.timeline_dropped > 0 {
                let _ = writeln!(out, "  … and {} more change(s)", self.timeline_dropped);
            }
        }
        if let Some(d) = &self.diagnosis {
            let _ = writeln!(out, "\ndiagnosis:");
            out.push_str(&crate::render::human::render(d, opts));
        }
        out
    }
}
