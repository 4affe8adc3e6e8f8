//! Flags of `scan`: the same connection flags (and `CONSUL_*` fallbacks) as `check`, the
//! scope of the scan (`--service`, `--expect`) and the one write it may make (`--prune`).

use std::path::PathBuf;

use clap::{ArgMatches, Args};

use crate::cli::{ColorMode, FailOn, Format};
use crate::inputs::{RawInputs, ServiceInputs};

/// Flags of `scan`. No `Debug`: the token must never be printable.
#[derive(Args)]
#[command(after_long_help = crate::scan::prune::CONTRACT)]
pub struct ScanArgs {
    #[command(flatten)]
    pub connection: crate::cli::ConnectionArgs,

    /// Scan only this service (repeatable; default: the whole catalog)
    #[arg(long, value_name = "NAME", help_heading = "Scan")]
    pub service: Vec<String>,
    /// Expect at most N instances of service NAME (repeatable)
    #[arg(long, value_name = "NAME=N", value_parser = parse_expect, help_heading = "Scan")]
    pub expect: Vec<(String, usize)>,
    /// Deregister the instances the prune contract allows (below), each re-checked right
    /// before its write (a PUT /v1/txn that Consul refuses if it changed); without it, a dry run
    #[arg(long, help_heading = "Scan")]
    pub prune: bool,
    /// How long a node must stay gone (failed or left, serfHealth unchanged) after this run
    /// first sees it before --prune removes its instances (Go duration syntax)
    #[arg(long, default_value = crate::scan::prune::DEFAULT_GRACE, value_name = "DURATION", help_heading = "Scan")]
    pub grace: String,
    /// Do not ask before pruning (required when standard input is not a terminal)
    #[arg(long, requires = "prune", help_heading = "Scan")]
    pub yes: bool,

    /// Resolve the agent host through this DNS server (IP or IP:PORT) instead of the system's
    #[arg(long, value_name = "IP:PORT", help_heading = "Diagnosis")]
    pub dns_server: Option<String>,
    /// Timeout of each network step (Go duration syntax)
    #[arg(long, default_value = "5s", value_name = "DURATION", help_heading = "Diagnosis")]
    pub timeout: String,
    /// Deadline of the whole run (Go duration syntax)
    #[arg(long, default_value = "60s", value_name = "DURATION", help_heading = "Diagnosis")]
    pub deadline: String,

    /// Report format
    #[arg(long, value_enum, default_value_t = Format::Human, help_heading = "Output")]
    pub format: Format,
    /// Write the report to this file instead of standard output
    #[arg(long, short = 'o', value_name = "PATH", value_parser = crate::cli::output_path, help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Lowest status that makes the exit code 1
    #[arg(long, value_enum, default_value_t = FailOn::Fail, help_heading = "Output")]
    pub fail_on: FailOn,
    /// When to colour the human report (NO_COLOR and CLICOLOR_FORCE are honoured in auto)
    #[arg(long, value_enum, default_value_t = ColorMode::Auto, help_heading = "Output")]
    pub color: ColorMode,
    /// List every instance, not only the findings (requests are logged with CONSUL_DOCTOR_LOG=debug)
    #[arg(long, short = 'v', help_heading = "Output")]
    pub verbose: bool,
}

/// `NAME=N`.
fn parse_expect(s: &str) -> Result<(String, usize), String> {
    let (name, n) = s.rsplit_once('=').ok_or_else(|| format!("expected NAME=N, got {s:?}"))?;
    if name.is_empty() {
        return Err(format!("expected NAME=N, got {s:?}"));
    }
    let n = n.trim().parse::<usize>().map_err(|_| format!("N in {s:?} must be a whole number"))?;
    Ok((name.to_string(), n))
}

/// What `scan` was asked to do, beside the connection.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    pub services: Vec<String>,
    pub expect: Vec<(String, usize)>,
    pub prune: bool,
    pub yes: bool,
    /// `--verbose`: list every instance.
    pub list_instances: bool,
    /// `--grace` as given (validated by `scan::run`).
    pub grace: String,
}

/// The parsed `scan` command line: the connection inputs in `check`'s shape, and the scan's own.
pub struct ScanRaw {
    pub raw: RawInputs,
    pub options: ScanOptions,
}

pub fn raw_inputs(a: ScanArgs, m: &ArgMatches) -> ScanRaw {
    let consul = crate::cli::consul_inputs(a.connection, m);
    let raw = RawInputs {
        consul,
        service: ServiceInputs { files: Vec::new(), flags: Default::default(), go_mod: None },
        dns_server: a.dns_server,
        timeout: a.timeout,
        timeout_source: crate::cli::source_of(m, "timeout", None),
        deadline: a.deadline,
        wait: None,
        skip: Vec::new(),
        format: a.format,
        output: a.output,
        fail_on: a.fail_on,
        color: a.color,
        verbose: std::env::var("CONSUL_DOCTOR_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug")),
        ignore: Vec::new(),
        pre_start: false,
        deadline_given: true,
        consul_dns: None,
        probe_register: false,
        probe_name: None,
        mesh_from: None,
    };
    let mut services: Vec<String> = Vec::new();
    for s in a.service.into_iter().filter(|s| !s.is_empty()) {
        if !services.contains(&s) {
            services.push(s);
        }
    }
    ScanRaw {
        raw,
        options: ScanOptions {
            services,
            expect: a.expect,
            prune: a.prune,
            yes: a.yes,
            list_instances: a.verbose,
            grace: a.grace,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_takes_name_equals_count() {
        assert_eq!(parse_expect("payments=3").unwrap(), ("payments".to_string(), 3));
        assert_eq!(parse_expect("a=b=2").unwrap(), ("a=b".to_string(), 2));
        assert!(parse_expect("payments").is_err());
        assert!(parse_expect("=3").is_err());
        assert!(parse_expect("payments=-1").is_err());
    }
}
