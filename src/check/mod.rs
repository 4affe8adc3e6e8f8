//! `check`: the staged diagnosis. [`pipeline`] is the stage table and its runner, [`stages`]
//! one module per stage; `run` resolves the inputs, runs the pipeline (again and again with
//! `--wait`), renders the report and maps it to an exit status.

pub mod pipeline;
pub mod stages;

use std::io::Write;

use crate::{inputs, log, render, report, secret, ExitStatus};

pub fn run(raw: inputs::RawInputs) -> ExitStatus {
    let inputs = match inputs::Inputs::resolve(raw) {
        Ok(inputs) => inputs,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "consul-doctor: {message}");
            return ExitStatus::Usage;
        }
    };
    inputs.color.write_global();
    log::set_verbose(inputs.verbose);
    // One crypto provider for every TLS user (reqwest, the tls stage); already set is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "consul-doctor: cannot start runtime: {err}");
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
    let text = render::render(&report, inputs.format);
    let text = secret::redact(&text);
    if let Err(err) = render::emit(&text, inputs.output.as_deref()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            return report.exit_status(inputs.fail_on);
        }
        let _ = writeln!(std::io::stderr(), "consul-doctor: cannot write the report: {err}");
        return ExitStatus::Usage;
    }
    report.exit_status(inputs.fail_on)
}

/// Runs the pipeline once, or with `--wait` again every second until nothing fails or the wait
/// is over (for CI steps that start right after the agents do).
async fn run_until_clean(inputs: &inputs::Inputs) -> report::Report {
    let started = tokio::time::Instant::now();
    let mut attempts = 1;
    loop {
        let mut report = pipeline::run(inputs).await;
        report.attempts = attempts;
        let Some(wait) = inputs.wait else { return report };
        if report.status != report::Status::Fail || started.elapsed() + RETRY_PAUSE >= wait {
            return report;
        }
        let code = report.root_cause.as_ref().map(|r| r.code).unwrap_or("");
        log::debug(format!("attempt {attempts} failed with {code}; retrying in {} ms", RETRY_PAUSE.as_millis()));
        tokio::time::sleep(RETRY_PAUSE).await;
        attempts += 1;
    }
}

const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
