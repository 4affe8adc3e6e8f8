//! Flags of `scan`: the same connection flags (and `CONSUL_*` fallbacks) as `check`, the
//! scope of the scan (`--service`, `--expect`) and the one write it may make (`--prune`).

use std::path::PathBuf;

use clap::{ArgMatches, Args};

use crate::cli::{sourced, ColorMode, FailOn, Format};
use crate::inputs::{ConsulInputs, RawInputs, ServiceInputs, Source, Sourced, DEFAULT_HTTP_ADDR};
use crate::secret::Secret;

/// Flags of `scan`. No `Debug`: the token must never be printable.
#[derive(Args)]
pub struct ScanArgs {
    /// Agent address: host:port, http://, https:// or unix:///path [default: 127.0.0.1:8500]
    #[arg(long, env = "CONSUL_HTTP_ADDR", value_name = "ADDR", help_heading = "Consul connection")]
    pub http_addr: Option<String>,
    /// ACL token (a non-empty token file takes precedence, as in Consul)
    #[arg(
        long,
        env = "CONSUL_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Consul connection"
    )]
    pub token: Option<String>,
    /// File holding the ACL token
    #[arg(long, env = "CONSUL_HTTP_TOKEN_FILE", value_name = "PATH", help_heading = "Consul connection")]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle used to verify the agent's certificate
    #[arg(long, env = "CONSUL_CACERT", value_name = "PATH", help_heading = "Consul connection")]
    pub ca_file: Option<PathBuf>,
    /// Directory of PEM CA certificates
    #[arg(long, env = "CONSUL_CAPATH", value_name = "DIR", help_heading = "Consul connection")]
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate (for verify_incoming)
    #[arg(long, env = "CONSUL_CLIENT_CERT", value_name = "PATH", help_heading = "Consul connection")]
    pub client_cert: Option<PathBuf>,
    /// PEM client key
    #[arg(long, env = "CONSUL_CLIENT_KEY", value_name = "PATH", help_heading = "Consul connection")]
    pub client_key: Option<PathBuf>,
    /// Server name for SNI and certificate verification
    #[arg(long, env = "CONSUL_TLS_SERVER_NAME", value_name = "NAME", help_heading = "Consul connection")]
    pub tls_server_name: Option<String>,
    /// Datacenter to scan (default: the agent's own)
    #[arg(long, value_name = "DC", help_heading = "Consul connection")]
    pub datacenter: Option<String>,

    /// Scan only this service (repeatable; default: the whole catalog)
    #[arg(long, value_name = "NAME", help_heading = "Scan")]
    pub service: Vec<String>,
    /// Expect at most N instances of service NAME (repeatable)
    #[arg(long, value_name = "NAME=N", value_parser = parse_expect, help_heading = "Scan")]
    pub expect: Vec<(String, usize)>,
    /// Deregister the instances that are safe to remove (failed/left nodes, critical
    /// catalog-only nodes) through PUT /v1/catalog/deregister; without it, a dry run
    #[arg(long, help_heading = "Scan")]
    pub prune: bool,
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
    #[arg(long, short = 'o', value_name = "PATH", help_heading = "Output")]
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
}

/// The parsed `scan` command line: the connection inputs in `check`'s shape, and the scan's own.
pub struct ScanRaw {
    pub raw: RawInputs,
    pub options: ScanOptions,
}

pub fn raw_inputs(a: ScanArgs, m: &ArgMatches) -> ScanRaw {
    let env_var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let text = |v: Option<String>| v.filter(|s| !s.is_empty());
    let path = |v: Option<PathBuf>| v.filter(|p| !p.as_os_str().is_empty());
    let consul = ConsulInputs {
        http_addr: sourced(m, "http_addr", Some("CONSUL_HTTP_ADDR"), text(a.http_addr))
            .unwrap_or(Sourced { value: DEFAULT_HTTP_ADDR.to_string(), source: Source::Default }),
        token: sourced(m, "token", Some("CONSUL_HTTP_TOKEN"), text(a.token).map(Secret::new)),
        token_file: sourced(m, "token_file", Some("CONSUL_HTTP_TOKEN_FILE"), path(a.token_file)),
        ca_file: sourced(m, "ca_file", Some("CONSUL_CACERT"), path(a.ca_file)),
        ca_path: sourced(m, "ca_path", Some("CONSUL_CAPATH"), path(a.ca_path)),
        client_cert: sourced(m, "client_cert", Some("CONSUL_CLIENT_CERT"), path(a.client_cert)),
        client_key: sourced(m, "client_key", Some("CONSUL_CLIENT_KEY"), path(a.client_key)),
        tls_server_name: sourced(m, "tls_server_name", Some("CONSUL_TLS_SERVER_NAME"), text(a.tls_server_name)),
        datacenter: sourced(m, "datacenter", None, text(a.datacenter)),
        http_ssl: std::env::var("CONSUL_HTTP_SSL").ok(),
        http_ssl_verify: std::env::var("CONSUL_HTTP_SSL_VERIFY").ok(),
        namespace: env_var("CONSUL_NAMESPACE"),
        partition: env_var("CONSUL_PARTITION"),
        http_auth: env_var("CONSUL_HTTP_AUTH").map(Secret::new),
        proxy_env: ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"]
            .iter()
            .filter_map(|k| env_var(k).map(|v| (k.to_string(), v)))
            .collect(),
    };
    let raw = RawInputs {
        consul,
        service: ServiceInputs { files: Vec::new(), flags: Default::default(), go_mod: None },
        dns_server: a.dns_server,
        timeout: a.timeout,
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
    };
    let mut services: Vec<String> = Vec::new();
    for s in a.service.into_iter().filter(|s| !s.is_empty()) {
        if !services.contains(&s) {
            services.push(s);
        }
    }
    ScanRaw {
        raw,
        options: ScanOptions { services, expect: a.expect, prune: a.prune, yes: a.yes, list_instances: a.verbose },
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
