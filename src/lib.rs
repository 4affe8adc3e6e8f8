//! consul-doctor: diagnoses why a service cannot register with a HashiCorp Consul agent.
//!
//! `run` parses the command line and hands it to one command: [`check`] (the staged diagnosis), [`wait`] (the deploy gate),
//! `explain`/`codes` (lookups in [`codes`]) or `completions`. The commands share what no command
//! owns: the client side ([`connection`] inputs, the [`consul`] HTTP client, [`transport`],
//! [`join`]), the staged [`diagnosis`] (`check` runs all of it; `wait` and `scan` run its
//! connection stages through [`diagnosis::connect`]), the one table of [`codes`], the [`report`]
//! model and the [`render`]ers (neither depends on [`cli`]).

pub mod agentless;
pub mod check;
pub mod cli;
pub mod clip;
pub mod codes;
pub mod connection;
pub mod consul;
pub mod consul_cli;
pub mod consul_facts;
pub mod diagnosis;
pub mod duration;
pub mod explain;
pub mod hcl;
pub mod inputs;
pub mod join;
pub mod jsonclip;
pub mod jsonsplit;
pub mod localfile;
pub mod log;
pub mod render;
pub mod report;
pub mod scan;
pub mod secret;
pub mod service;
pub mod transport;
pub mod wait;

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
        cli::Parsed::Check(raw) => check::run(*raw),
        cli::Parsed::Wait(raw) => wait::run(*raw),
        cli::Parsed::Scan(raw) => scan::run(*raw),
        cli::Parsed::Explain { code } => explain::explain(&code),
        cli::Parsed::Codes { format, stage } => explain::codes(format, stage.as_deref()),
        cli::Parsed::Completions { shell } => {
            let script = cli::completion_script(shell);
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => ExitStatus::Usage,
                _ => ExitStatus::Clean,
            }
        }
    }
}

/// What every network command does before it runs: colour and log settings from its inputs,
/// one crypto provider for every TLS user (reqwest, the tls stage; already set is fine), and a
/// single-threaded runtime.
pub(crate) fn command_runtime(inputs: &inputs::Inputs) -> Result<tokio::runtime::Runtime, String> {
    inputs.color.write_global();
    log::set_verbose(inputs.verbose);
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start runtime: {err}"))
}
