//! The result model every stage produces and every renderer reads: plain serialisable data.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::codes::{Code, Severity};
use crate::inputs::InputEntry;
use crate::ExitStatus;

pub const SCHEMA_VERSION: u32 = 1;

/// Evidence key of a result the token's read permissions kept the doctor from judging: the
/// smallest read rule that would let it see. Reports gather these into one line, so a
/// least-privilege token is told once what the doctor could not see, never nudged per check.
pub const READ_GRANT: &str = "read_grant";

/// The read rules of every unjudged result, each rule once, minus those a prefix rule covers:
/// (the check ids, the rules). Empty when the token is missing or unknown (ACL-001, ACL-002):
/// no grant helps a token that does not exist.
pub fn read_grants(checks: &[CheckResult]) -> (Vec<&'static str>, Vec<String>) {
    if checks.iter().any(|c| matches!(c.code, Some("ACL-001" | "ACL-002"))) {
        return (Vec::new(), Vec::new());
    }
    let mut ids: Vec<&'static str> = Vec::new();
    let mut rules: Vec<String> = Vec::new();
    for c in checks.iter().filter(|c| c.not_judged) {
        let Some(text) = c.evidence.get(READ_GRANT) else { continue };
        if !ids.contains(&c.id) {
            ids.push(c.id);
        }
        for rule in text.split_inclusive('}').map(str::trim).filter(|r| !r.is_empty()) {
            if !rules.iter().any(|r| r == rule) {
                rules.push(rule.to_string());
            }
        }
    }
    let covered = |rule: &str, kind: &str| {
        rule.starts_with(&format!("{kind} \"")) && rules.iter().any(|r| r.starts_with(&format!("{kind}_prefix \"\" ")))
    };
    let kept: Vec<String> =
        rules.iter().filter(|r| !["service", "node", "agent"].iter().any(|k| covered(r, k))).cloned().collect();
    (ids, kept)
}

/// Which findings make the run exit 1 (`--fail-on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// Exit 1 only when a check fails
    Fail,
    /// Exit 1 when a check fails or warns
    Warn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Skip,
    /// Advice (a `note` code, or a finding accepted with `--ignore`): shown, never a failure.
    Note,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Note => "note",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub stage: &'static str,
    pub id: &'static str,
    pub status: Status,
    pub code: Option<&'static str>,
    pub title: Option<&'static str>,
    pub message: String,
    pub fix: Option<String>,
    pub blocked_by: Option<&'static str>,
    pub evidence: BTreeMap<String, String>,
    pub elapsed_ms: u64,
    /// Accepted with `--ignore CODE`: reported as a note, blocks nothing, fails nothing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
    /// A skip because the doctor could not see what it needed (a 403, ACL-filtered lists):
    /// not a pass, and the message says which permission would let it judge.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_judged: bool,
    /// On a finding: the code of a dependent finding that raised this result's status above its
    /// code's severity (the pipeline's "one cause, one finding, at the cause's real severity").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raised_by: Option<&'static str>,
    /// On a skip blocked by an earlier finding: what the check itself judged, so the runner can
    /// keep a failure from hiding behind a milder cause (see `diagnosis::pipeline`).
    #[serde(skip)]
    pub verdict: Option<Box<CheckResult>>,
}

impl CheckResult {
    fn base(id: &'static str, status: Status, message: String) -> Self {
        CheckResult {
            stage: "",
            id,
            status,
            code: None,
            title: None,
            message,
            fix: None,
            blocked_by: None,
            evidence: BTreeMap::new(),
            elapsed_ms: 0,
            ignored: false,
            not_judged: false,
            raised_by: None,
            verdict: None,
        }
    }

    pub fn pass(id: &'static str, message: impl Into<String>) -> Self {
        Self::base(id, Status::Pass, message.into())
    }

    /// A note, warn or fail finding; the status follows the code's severity.
    pub fn finding(code: &'static Code, id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        let status = match code.severity {
            Severity::Note => Status::Note,
            Severity::Warn => Status::Warn,
            Severity::Fail => Status::Fail,
        };
        let mut r = Self::base(id, status, message.into());
        r.code = Some(code.code);
        r.title = Some(code.title);
        r.fix = Some(fix.into());
        r
    }

    /// Not run because a prerequisite failed.
    pub fn blocked(id: &'static str, by: &'static str) -> Self {
        let mut r = Self::base(id, Status::Skip, format!("skipped: blocked by {by}"));
        r.blocked_by = Some(by);
        r
    }

    /// Blocked by `by`, keeping the check's own `verdict` (a finding) for the pipeline's
    /// severity rule: a failure never hides behind a warning.
    pub fn blocked_with(id: &'static str, by: &'static str, message: String, verdict: CheckResult) -> Self {
        let mut r = Self::blocked(id, by);
        r.message = message;
        r.verdict = Some(Box::new(verdict));
        r
    }

    /// Not run, for a reason that is not a failure (not applicable, not verifiable).
    pub fn skipped(id: &'static str, reason: impl Into<String>) -> Self {
        Self::base(id, Status::Skip, reason.into())
    }

    /// Accepts the finding (`--ignore CODE`): it stays in the report as a note.
    pub fn ignore(&mut self) {
        if matches!(self.status, Status::Warn | Status::Fail) {
            self.status = Status::Note;
            self.ignored = true;
        }
    }

    /// Not judged: the doctor could not see what the check needs (the reason names the
    /// permission or setting that would let it see). Never shown as a pass.
    pub fn not_judged(id: &'static str, reason: impl Into<String>) -> Self {
        let mut r = Self::base(id, Status::Skip, reason.into());
        r.not_judged = true;
        r
    }

    /// Clips overlong echoed values (see [`crate::clip::bound`]) in what the result says, and
    /// bounds the length of its evidence.
    pub fn bound_text(&mut self) {
        let bound = |s: &mut String| {
            if let std::borrow::Cow::Owned(b) = crate::clip::bound(s) {
                *s = b;
            }
        };
        bound(&mut self.message);
        if let Some(fix) = &mut self.fix {
            bound(fix);
        }
        for value in self.evidence.values_mut() {
            if let std::borrow::Cow::Owned(b) = crate::clip::bound_evidence(value) {
                *value = b;
            }
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.evidence.insert(key.to_string(), value.into());
        self
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub note: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

/// The first failing check: what the operator should fix first.
#[derive(Debug, Clone, Serialize)]
pub struct RootCause {
    pub code: &'static str,
    pub check: &'static str,
    pub message: String,
}

/// What the doctor learned about the agent (shown in the report header).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentSummary {
    pub version: Option<String>,
    pub datacenter: Option<String>,
    pub node: Option<String>,
    pub mode: Option<String>,
    pub leader: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub target: String,
    pub inputs: Vec<InputEntry>,
    pub status: Status,
    pub root_cause: Option<RootCause>,
    pub agent: AgentSummary,
    pub checks: Vec<CheckResult>,
    pub summary: Summary,
    pub elapsed_ms: u64,
    /// How many times the pipeline ran (more than 1 only with `--wait`).
    pub attempts: u32,
}

impl Report {
    pub fn new(
        target: String,
        inputs: Vec<InputEntry>,
        agent: AgentSummary,
        checks: Vec<CheckResult>,
        elapsed_ms: u64,
    ) -> Report {
        let mut summary = Summary::default();
        let mut checks = checks;
        checks.iter_mut().for_each(CheckResult::bound_text);
        let mut inputs = inputs;
        for entry in &mut inputs {
            if let std::borrow::Cow::Owned(b) = crate::clip::bound(&entry.value) {
                entry.value = b;
            }
        }
        for c in &checks {
            match c.status {
                Status::Pass => summary.pass += 1,
                Status::Note => summary.note += 1,
                Status::Warn => summary.warn += 1,
                Status::Fail => summary.fail += 1,
                Status::Skip => summary.skip += 1,
            }
        }
        let status = if summary.fail > 0 {
            Status::Fail
        } else if summary.warn > 0 {
            Status::Warn
        } else {
            Status::Pass
        };
        let root_cause = checks.iter().find(|c| c.status == Status::Fail).map(|c| RootCause {
            code: c.code.unwrap_or(""),
            check: c.id,
            message: c.message.clone(),
        });
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool { name: "consul-doctor", version: env!("CARGO_PKG_VERSION") },
            target,
            inputs,
            status,
            root_cause,
            agent,
            checks,
            summary,
            elapsed_ms,
            attempts: 1,
        }
    }

    /// Stage names in the order their checks appear.
    pub fn stages(&self) -> Vec<&'static str> {
        let mut stages: Vec<&'static str> = Vec::new();
        for c in &self.checks {
            if !stages.contains(&c.stage) {
                stages.push(c.stage);
            }
        }
        stages
    }

    pub fn exit_status(&self, fail_on: FailOn) -> ExitStatus {
        match (self.status, fail_on) {
            (Status::Fail, _) | (Status::Warn, FailOn::Warn) => ExitStatus::Findings,
            _ => ExitStatus::Clean,
        }
    }
}
