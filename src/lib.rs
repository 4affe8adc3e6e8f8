//! consul-doctor: diagnoses why a service cannot register with a HashiCorp Consul agent.
//!
//! `run` is the whole program: parse the command line, resolve inputs, run the stage pipeline,
//! render the report and turn the outcome into an [`ExitStatus`].

pub mod cli;
pub mod codes;
pub mod consul;
pub mod duration;
pub mod explain;
pub mod hcl;
pub mod inputs;
pub mod log;
pub mod pipeline;
pub mod render;
pub mod report;
pub mod secret;
pub mod service;
pub mod stages;
pub mod transport;

use std::ffi::OsString;
use std::io::Write;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// No failure (warnings allowed unless `--fail-on warn`).
    Clean,
    /// At least one failing check.
    Findings,
    /// The doctor could not run as asked (usage error, unwritable output).
    Usage,
    /// Interrupted by SIGINT.
    Interrupted,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Clean => 0,
            ExitStatus::Findings => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Interrupted => 130,
        }
    }
}

/// Runs the program for the given command line (including the program name).
pub fn run<I, T>(args: I) -> ExitStatus
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let parsed = match cli::parse(args) {
        Ok(parsed) => parsed,
        Err(err) => {
            let usage = err.use_stderr();
            let _ = err.print();
            return if usage { ExitStatus::Usage } else { ExitStatus::Clean };
        }
    };
    match parsed {
        cli::Parsed::Check(raw) => run_check(*raw),
        cli::Parsed::Explain { code } => explain::explain(&code),
        cli::Parsed::Codes { format } => explain::codes(format),
        cli::Parsed::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = cli::Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "consul-doctor", &mut script);
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => ExitStatus::Usage,
                _ => ExitStatus::Clean,
            }
        }
    }
}

fn run_check(raw: inputs::RawInputs) -> ExitStatus {
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
    runtime.shutdown_background();
    let Some(report) = outcome else {
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
