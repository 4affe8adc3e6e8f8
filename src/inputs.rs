//! Raw flags and environment -> one validated `Inputs` value.
//!
//! Every connection input remembers where it came from (flag, environment variable, default) so
//! the report can answer "which address did it actually use?". The doctor's own flags (timeouts,
//! DNS server, formats) are validated here and a bad value is a usage error (exit 2). Connection
//! inputs are kept as given: judging them is the config stage's job, because a broken
//! `CONSUL_HTTP_ADDR` is a finding, not a usage error.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{ColorMode, FailOn, Format};
use crate::duration::parse_go_duration;
use crate::secret::Secret;

/// Where an input value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    Default,
}

impl Source {
    pub fn describe(self) -> String {
        match self {
            Source::Flag => "flag".into(),
            Source::Env(name) => format!("env {name}"),
            Source::Default => "default".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// The `--service*` / `--check-*` flags.
#[derive(Debug, Clone, Default)]
pub struct FlagServiceArgs {
    pub name: Option<String>,
    pub id: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub check_http: Option<String>,
    pub check_tcp: Option<String>,
    pub check_interval: Option<String>,
    pub check_timeout: Option<String>,
}

impl FlagServiceArgs {
    pub fn given(&self) -> bool {
        self.name.is_some()
            || self.id.is_some()
            || self.address.is_some()
            || self.port.is_some()
            || self.check_http.is_some()
            || self.check_tcp.is_some()
            || self.check_interval.is_some()
            || self.check_timeout.is_some()
    }
}

/// The Consul connection inputs, exactly as the Consul CLI reads them (flag > env > default).
/// Judging them is the config stage's job.
pub struct ConsulInputs {
    pub http_addr: Sourced<String>,
    pub token: Option<Sourced<Secret>>,
    pub token_file: Option<Sourced<PathBuf>>,
    pub ca_file: Option<Sourced<PathBuf>>,
    pub ca_path: Option<Sourced<PathBuf>>,
    pub client_cert: Option<Sourced<PathBuf>>,
    pub client_key: Option<Sourced<PathBuf>>,
    pub tls_server_name: Option<Sourced<String>>,
    pub datacenter: Option<Sourced<String>>,
    /// CONSUL_HTTP_SSL / CONSUL_HTTP_SSL_VERIFY (environment only, unparsed).
    pub http_ssl: Option<String>,
    pub http_ssl_verify: Option<String>,
    /// `--namespace`/CONSUL_NAMESPACE, `--partition`/CONSUL_PARTITION: Enterprise-only; the
    /// client carries them on every request an Enterprise agent reads them from.
    pub namespace: Option<Sourced<String>>,
    pub partition: Option<Sourced<String>>,
    /// `--peer` (check, wait): the service is imported from this cluster peer.
    pub peer: Option<Sourced<String>>,
    /// CONSUL_HTTP_AUTH (`user[:password]`): HTTP Basic credentials for a reverse proxy.
    pub http_auth: Option<Secret>,
    pub proxy_env: Vec<(String, String)>,
}

/// What the operator is about to register.
pub struct ServiceInputs {
    pub files: Vec<PathBuf>,
    pub flags: FlagServiceArgs,
    pub go_mod: Option<PathBuf>,
}

/// What the command line and environment gave, unvalidated.
pub struct RawInputs {
    pub consul: ConsulInputs,
    pub service: ServiceInputs,
    pub dns_server: Option<String>,
    pub timeout: String,
    /// Where `timeout` came from (`--timeout`, or the command's default).
    pub timeout_source: Source,
    pub deadline: String,
    pub wait: Option<String>,
    pub skip: Vec<&'static str>,
    pub ignore: Vec<String>,
    pub pre_start: bool,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub fail_on: FailOn,
    pub color: ColorMode,
    pub verbose: bool,
    /// `--deadline` was given (not its default): with `--wait`, the default grows by the wait.
    pub deadline_given: bool,
    /// `--consul-dns`: the agent's DNS interface, when /v1/agent/self does not tell it.
    pub consul_dns: Option<String>,
    /// `--probe-register`: the one write `check` may make.
    pub probe_register: bool,
    pub probe_name: Option<String>,
    /// `--from NAME`: a mesh consumer whose intention to call the service is checked.
    pub mesh_from: Option<String>,
}

/// What the command needs the token for: registering (`check`), or only reading (`wait`,
/// `scan`), so advice about a missing or weak token asks for the grant the command needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Access {
    /// Registering services: `service:write` on each name.
    #[default]
    Register,
    /// Reading one service's health (`wait`): `service:read` on it and `node:read`.
    ReadService(String),
    /// Reading the whole catalog (`scan`): `service_prefix ""` and `node_prefix ""` read.
    ReadCatalog,
}

/// Validated inputs for one run.
pub struct Inputs {
    /// What the token is needed for (set by the command; `check` registers).
    pub access: Access,
    pub consul: ConsulInputs,
    pub service: ServiceInputs,
    pub dns_server: Option<SocketAddr>,
    pub timeout: Duration,
    pub timeout_source: Source,
    pub deadline: Duration,
    pub wait: Option<Duration>,
    /// Stages left out with --skip (names from the stage table).
    pub skip: Vec<&'static str>,
    /// Codes accepted with --ignore (validated against the code table).
    pub ignore: Vec<&'static str>,
    /// --pre-start: the application is not running yet.
    pub pre_start: bool,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub fail_on: FailOn,
    pub color: anstream::ColorChoice,
    pub verbose: bool,
    pub consul_dns: Option<SocketAddr>,
    pub probe_register: bool,
    pub probe_name: Option<String>,
    pub mesh_from: Option<String>,
}

/// One line of the "effective inputs" part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct InputEntry {
    pub name: &'static str,
    pub value: String,
    pub source: String,
}

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8500";

impl Inputs {
    pub fn resolve(raw: RawInputs) -> Result<Inputs, String> {
        let timeout = positive_duration("--timeout", &raw.timeout)?;
        let deadline = positive_duration("--deadline", &raw.deadline)?;
        let wait = raw.wait.as_deref().map(|w| positive_duration("--wait", w)).transpose()?;
        // The deadline bounds the whole invocation, waiting included; left at its default, it
        // leaves the last attempt after a --wait the default time to finish.
        let deadline = match wait {
            Some(w) if !raw.deadline_given => deadline.saturating_add(w),
            _ => deadline,
        };
        let dns_server = raw.dns_server.as_deref().map(parse_dns_server).transpose()?;
        if raw.probe_register && !raw.service.flags.given() && raw.service.files.is_empty() {
            return Err(
                "--probe-register needs a service (--service-file or --service): the probe takes its shape".into()
            );
        }
        let color = match raw.color {
            ColorMode::Auto => anstream::ColorChoice::Auto,
            ColorMode::Always => anstream::ColorChoice::Always,
            ColorMode::Never => anstream::ColorChoice::Never,
        };
        let mut ignore = Vec::new();
        for wanted in &raw.ignore {
            match crate::codes::find(wanted) {
                Some(code) => ignore.push(code.code),
                None => {
                    let near = crate::codes::suggest(wanted);
                    let hint =
                        if near.is_empty() { String::new() } else { format!(" (did you mean {})", near.join(", ")) };
                    return Err(format!("--ignore {wanted:?}: no such code{hint}; `consul-doctor codes` lists them"));
                }
            }
        }
        if let Some((_, password)) = raw.consul.http_auth.as_ref().and_then(|a| a.expose().split_once(':')) {
            crate::secret::forbid(password);
        }
        Ok(Inputs {
            access: Access::Register,
            consul: raw.consul,
            service: raw.service,
            dns_server,
            timeout,
            timeout_source: raw.timeout_source,
            deadline,
            wait,
            skip: raw.skip,
            ignore,
            pre_start: raw.pre_start,
            format: raw.format,
            output: raw.output,
            fail_on: raw.fail_on,
            color,
            verbose: raw.verbose,
            consul_dns: raw
                .consul_dns
                .as_deref()
                .map(|v| parse_dns_server(v).map_err(|e| e.replace("--dns-server", "--consul-dns")))
                .transpose()?,
            probe_register: raw.probe_register,
            probe_name: match raw.probe_name {
                Some(n) if n.trim().is_empty() => return Err("invalid --probe-name: empty".into()),
                Some(n) if !raw.probe_register => return Err(format!("--probe-name {n:?} needs --probe-register")),
                other => other,
            },
            mesh_from: match raw.mesh_from {
                Some(n) if n.trim().is_empty() => return Err("invalid --from: empty".into()),
                other => other,
            },
        })
    }

    /// The effective inputs, for the report. The token is never shown, only whether it is set.
    pub fn entries(&self) -> Vec<InputEntry> {
        let mut out = vec![InputEntry {
            name: "http_addr",
            value: self.consul.http_addr.value.clone(),
            source: self.consul.http_addr.source.describe(),
        }];
        if let Some(t) = &self.consul.token {
            out.push(InputEntry { name: "token", value: "(set, hidden)".into(), source: t.source.describe() });
        }
        let paths = [
            ("token_file", &self.consul.token_file),
            ("ca_file", &self.consul.ca_file),
            ("ca_path", &self.consul.ca_path),
            ("client_cert", &self.consul.client_cert),
            ("client_key", &self.consul.client_key),
        ];
        for (name, p) in paths {
            if let Some(p) = p {
                out.push(InputEntry { name, value: p.value.display().to_string(), source: p.source.describe() });
            }
        }
        for (name, v) in [("tls_server_name", &self.consul.tls_server_name), ("datacenter", &self.consul.datacenter)] {
            if let Some(v) = v {
                out.push(InputEntry { name, value: v.value.clone(), source: v.source.describe() });
            }
        }
        for (name, env, v) in [
            ("http_ssl", "CONSUL_HTTP_SSL", &self.consul.http_ssl),
            ("http_ssl_verify", "CONSUL_HTTP_SSL_VERIFY", &self.consul.http_ssl_verify),
        ] {
            if let Some(v) = v {
                out.push(InputEntry { name, value: v.clone(), source: format!("env {env}") });
            }
        }
        for f in &self.service.files {
            out.push(InputEntry { name: "service_file", value: f.display().to_string(), source: "flag".into() });
        }
        if let Some(n) = &self.service.flags.name {
            out.push(InputEntry { name: "service", value: n.clone(), source: "flag".into() });
        }
        if let Some(g) = &self.service.go_mod {
            out.push(InputEntry { name: "go_mod", value: g.display().to_string(), source: "flag".into() });
        }
        if self.consul.http_auth.is_some() {
            out.push(InputEntry {
                name: "http_auth",
                value: "(set, hidden)".into(),
                source: "env CONSUL_HTTP_AUTH".into(),
            });
        }
        for (name, v) in
            [("namespace", &self.consul.namespace), ("partition", &self.consul.partition), ("peer", &self.consul.peer)]
        {
            if let Some(v) = v {
                out.push(InputEntry { name, value: v.value.clone(), source: v.source.describe() });
            }
        }
        if let Some(d) = self.dns_server {
            out.push(InputEntry { name: "dns_server", value: d.to_string(), source: "flag".into() });
        }
        if !self.ignore.is_empty() {
            out.push(InputEntry {
                name: "ignore",
                value: self.ignore.join(","),
                source: "flag or env CONSUL_DOCTOR_IGNORE".into(),
            });
        }
        if self.pre_start {
            out.push(InputEntry { name: "pre_start", value: "true".into(), source: "flag".into() });
        }
        out.push(InputEntry {
            name: "timeout",
            value: crate::duration::format_go(self.timeout.as_nanos() as i64),
            source: self.timeout_source.describe(),
        });
        out
    }
}

fn positive_duration(flag: &str, value: &str) -> Result<Duration, String> {
    let nanos = parse_go_duration(value).map_err(|e| format!("invalid {flag} {value:?}: {e}"))?;
    if nanos <= 0 {
        return Err(format!("invalid {flag} {value:?}: must be greater than zero"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`; port 53 when omitted. Names are refused: resolving the
/// resolver would need a resolver.
pub fn parse_dns_server(value: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = value.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = value.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!("invalid --dns-server {value:?}: expected IP or IP:PORT (for example 127.0.0.1:8600)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_server_forms() {
        assert_eq!(parse_dns_server("127.0.0.1:8600").unwrap().port(), 8600);
        assert_eq!(parse_dns_server("127.0.0.1").unwrap().port(), 53);
        assert_eq!(parse_dns_server("[::1]:8600").unwrap().port(), 8600);
        assert_eq!(parse_dns_server("::1").unwrap().port(), 53);
        assert!(parse_dns_server("dns.example").is_err());
    }

    #[test]
    fn durations_must_be_positive_go_durations() {
        assert_eq!(positive_duration("--timeout", "2s").unwrap(), Duration::from_secs(2));
        assert!(positive_duration("--timeout", "2").is_err());
        assert!(positive_duration("--timeout", "0s").is_err());
    }
}
