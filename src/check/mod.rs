//! `check`: the whole staged diagnosis ([`crate::diagnosis`]). `run` resolves the inputs, runs
//! every stage (again and again with `--wait`), renders the report and maps it to an exit status.

use std::io::Write;

use crate::diagnosis::{pipeline, stages};
use crate::{inputs, log, render, report, secret, ExitStatus};

pub fn run(raw: inputs::RawInputs) -> ExitStatus {
    let inputs = match inputs::Inputs::resolve(raw) {
        Ok(inputs) => inputs,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "consul-doctor: {message}");
            return ExitStatus::Usage;
        }
    };
    let runtime = match crate::command_runtime(&inputs) {
        Ok(rt) => rt,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "consul-doctor: {message}");
            return ExitStatus::Usage;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            report = run_until_clean(&inputs) => Some(report),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    // A probe registration interrupted by Ctrl-C is deregistered before the process ends.
    let leftovers = match outcome {
        None => runtime.block_on(stages::probe::cleanup_pending(inputs.timeout)),
        Some(_) => Vec::new(),
    };
    runtime.shutdown_background();
    let Some(report) = outcome else {
        for r in leftovers {
            let fix = r.fix.as_deref().map(|f| format!("\n  fix: {f}")).unwrap_or_default();
            let _ = writeln!(std::io::stderr(), "consul-doctor: {}{fix}", secret::redact(&r.message));
        }
        let _ = writeln!(std::io::stderr(), "consul-doctor: interrupted");
        return ExitStatus::Interrupted;
    };
    let opts = render::Options::new(inputs.verbose, inputs.fail_on, inputs.output.as_deref());
    let text = render::render(&report, inputs.format, &opts);
    let text = secret::redact(&text);
    if let Err(err) = render::emit(&text, inputs.output.as_deref()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            return report.exit_status(inputs.fail_on);
        }
        let _ = match &inputs.output {
            Some(path) => {
                writeln!(std::io::stderr(), "consul-doctor: cannot write the report to {}: {err}", path.display())
            }
            None => writeln!(std::io::stderr(), "consul-doctor: cannot write the report: {err}"),
        };
        return ExitStatus::Usage;
    }
    if let Some(path) = &inputs.output {
        let line = secret::redact(&summary_line(&report, path));
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    report.exit_status(inputs.fail_on)
}

/// The one line `-o FILE` leaves on the terminal: the verdict, the root cause and where the
/// report went.
fn summary_line(report: &report::Report, path: &std::path::Path) -> String {
    let s = &report.summary;
    let counts = format!("{} passed, {} warnings, {} failed, {} skipped", s.pass, s.warn, s.fail, s.skip);
    let verdict = report.status.as_str().to_uppercase();
    let cause = match &report.root_cause {
        Some(rc) => {
            let first = rc.message.lines().next().unwrap_or("");
            format!(": root cause {} ({}): {}", rc.code, rc.check, crate::clip::clip_to(first, 200))
        }
        None => String::new(),
    };
    format!("consul-doctor: {verdict}{cause} [{counts}]; report written to {}", path.display())
}

/// Runs the pipeline once, or with `--wait` again every second until nothing fails or the wait
/// is over (for CI steps that start right after the agents do). `--deadline` bounds the whole
/// invocation: every attempt gets at most the time left of it, and an attempt still starts when
/// less than a pause of the wait is left, so the whole wait is used.
async fn run_until_clean(inputs: &inputs::Inputs) -> report::Report {
    let started = tokio::time::Instant::now();
    let deadline = started + inputs.deadline;
    let Some(wait) = inputs.wait else {
        return pipeline::run_stages_until(inputs, &all_stages(), deadline).await.report;
    };
    // When the deadline ends the wait, the last attempt still gets a pause's time to run (an
    // attempt started at the deadline could only report RUN-001).
    let reserve = RETRY_PAUSE.min(inputs.deadline / 2);
    let wait_end = (started + wait).min(deadline - reserve);
    let mut progress = Progress::new(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let mut attempts = 1;
    loop {
        let mut report = pipeline::run_stages_until(inputs, &all_stages(), deadline).await.report;
        report.attempts = attempts;
        let now = tokio::time::Instant::now();
        let left = wait_end.saturating_duration_since(now);
        let done = report.status != report::Status::Fail || left.is_zero();
        progress.attempt(attempts, &report, left, done);
        if done {
            return report;
        }
        let pause = RETRY_PAUSE.min(left);
        let code = report.root_cause.as_ref().map(|r| r.code).unwrap_or("");
        log::debug(format!("attempt {attempts} failed with {code}; retrying in {} ms", pause.as_millis()));
        tokio::time::sleep(pause).await;
        attempts += 1;
    }
}

fn all_stages() -> Vec<pipeline::StageId> {
    pipeline::STAGES.iter().map(|s| s.id).collect()
}

const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// `--wait` progress on standard error: a line per attempt on a terminal; elsewhere (CI logs)
/// only when the verdict or root cause changes, and the last attempt.
struct Progress {
    every_attempt: bool,
    last: Option<String>,
}

impl Progress {
    fn new(every_attempt: bool) -> Self {
        Progress { every_attempt, last: None }
    }

    fn attempt(&mut self, n: u32, report: &report::Report, left: std::time::Duration, last_attempt: bool) {
        let state = match &report.root_cause {
            Some(rc) => format!("{} ({})", rc.code, rc.check),
            None => report.status.as_str().to_uppercase(),
        };
        let changed = self.last.as_deref() != Some(state.as_str());
        if !(self.every_attempt || changed || last_attempt) {
            return;
        }
        let left = crate::duration::format_go(left.as_millis() as i64 * 1_000_000);
        let line = match (&report.root_cause, last_attempt) {
            (Some(_), false) => format!("consul-doctor: attempt {n}: root cause {state}; {left} left, retrying"),
            (Some(_), true) => format!("consul-doctor: attempt {n}: root cause {state}; the wait is over"),
            (None, _) => format!("consul-doctor: attempt {n}: {state}, nothing fails"),
        };
        let _ = writeln!(std::io::stderr(), "{}", secret::redact(&line));
        self.last = Some(state);
    }
}
