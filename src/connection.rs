//! The connection to an agent, as every command needs it: the address, token and TLS inputs
//! judged exactly as the Go API client (`api.NewClient`) reads them — address schemes and path
//! prefixes, the token file that overrides any token, TLS files loaded even for http:// addresses,
//! the environment-only booleans, and proxies from the environment. Knows no command or stage:
//! its findings are the `config.*` checks every command reports before any network traffic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::codes;
use crate::inputs::{Inputs, Sourced};
use crate::report::CheckResult;
use crate::secret::Secret;
use crate::transport::{client_config, ClientIdentity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp { scheme: Scheme, host: String, port: u16, path_prefix: String },
    Unix { path: PathBuf },
}

/// TLS settings for an https target.
pub struct TlsSettings {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    /// The host name certificates are verified against (server name or address host).
    pub server_name_host: String,
    pub custom_server_name: bool,
    pub verify: bool,
    pub has_client_cert: bool,
    pub custom_ca: bool,
}

/// Everything later stages need to talk to the agent.
pub struct Connection {
    pub target: Target,
    pub token: Option<Secret>,
    /// Where the token came from, for messages ("env CONSUL_HTTP_TOKEN", "token file /x").
    pub token_origin: Option<String>,
    pub tls: Option<TlsSettings>,
    pub display: String,
}

impl Connection {
    pub fn scheme(&self) -> Scheme {
        match &self.target {
            Target::Tcp { scheme, .. } => *scheme,
            Target::Unix { .. } => Scheme::Http,
        }
    }

    pub fn host(&self) -> Option<&str> {
        match &self.target {
            Target::Tcp { host, .. } => Some(host),
            Target::Unix { .. } => None,
        }
    }
}

/// The `config.*` checks this module reports, in report order.
const CONFIG_CHECKS: &[&str] = &["config.address", "config.token", "config.tls", "config.environment"];

/// True for loopback IPs and `localhost` names.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_matches(|c| c == '[' || c == ']').trim_end_matches('.');
    if let Ok(ip) = h.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost")
}

/// Judges the inputs; returns the connection when the address is usable.
pub fn evaluate(inputs: &Inputs) -> (Option<Connection>, Vec<CheckResult>) {
    let mut results = Vec::new();
    let ssl_env = parse_go_bool("CONSUL_HTTP_SSL", inputs.consul.http_ssl.as_deref(), &mut results);
    let verify_env = parse_go_bool("CONSUL_HTTP_SSL_VERIFY", inputs.consul.http_ssl_verify.as_deref(), &mut results);

    // config.address
    let addr = &inputs.consul.http_addr;
    let target = match parse_address(&addr.value, ssl_env == Some(true)) {
        Ok(parsed) => {
            let shown = display_target(&parsed.target);
            let mut r = CheckResult::pass("config.address", format!("{shown} ({})", addr.source.describe()))
                .with("raw", addr.value.clone())
                .with("source", addr.source.describe());
            if ssl_env == Some(false) && matches!(parsed.target, Target::Tcp { scheme: Scheme::Https, .. }) {
                r.message.push_str("; CONSUL_HTTP_SSL=false has no effect (it never downgrades https)");
            }
            if ssl_env == Some(true) && addr.value.starts_with("http://") {
                r.message.push_str("; CONSUL_HTTP_SSL=true turns http:// into https");
            }
            results.push(r);
            if parsed.default_port {
                if let Target::Tcp { scheme, port, host, .. } = &parsed.target {
                    results.push(CheckResult::finding(
                        codes::CFG_NO_PORT,
                        "config.address",
                        format!(
                            "{:?} has no port: the Consul CLI and Go client dial {host}:{port} ({} default), not 8500",
                            addr.value,
                            scheme.as_str()
                        ),
                        format!(
                            "give the port explicitly, for example {}://{}:{}",
                            scheme.as_str(),
                            bracket(host),
                            if *scheme == Scheme::Https { 8501 } else { 8500 }
                        ),
                    ));
                }
            }
            Some(parsed.target)
        }
        Err(why) => {
            results.push(
                CheckResult::finding(
                    codes::CFG_ADDRESS,
                    "config.address",
                    format!("cannot use {:?} ({}): {why}", addr.value, addr.source.describe()),
                    "set --http-addr / CONSUL_HTTP_ADDR to host:port, http://host:port, https://host:port or unix:///path/to/consul.sock, for example 127.0.0.1:8500",
                )
                .with("raw", addr.value.clone()),
            );
            None
        }
    };

    // config.token
    let (token, token_origin, token_results) = resolve_token(inputs);
    results.extend(token_results);

    // config.tls
    let (tls, tls_results) = resolve_tls(inputs, target.as_ref(), verify_env);
    results.extend(tls_results);

    // config.environment
    results.extend(check_proxy(inputs, target.as_ref()));
    if !results.iter().any(|r| r.id == "config.environment") {
        results.push(CheckResult::pass(
            "config.environment",
            "no proxy or unparsable CONSUL_* booleans in the environment",
        ));
    }

    let conn = target.map(|target| Connection { display: display_target(&target), target, token, token_origin, tls });
    // Keep the stage's results in CHECKS order.
    results.sort_by_key(|r| CONFIG_CHECKS.iter().position(|c| *c == r.id).unwrap_or(usize::MAX));
    (conn, results)
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

pub fn display_target(t: &Target) -> String {
    match t {
        Target::Tcp { scheme, host, port, path_prefix } => {
            format!("{}://{}:{}{}", scheme.as_str(), bracket(host), port, path_prefix)
        }
        Target::Unix { path } => format!("unix://{}", path.display()),
    }
}

/// Go's `strconv.ParseBool`; an unparsable value is ignored with CFG-011, as the Go client does.
fn parse_go_bool(name: &'static str, value: Option<&str>, results: &mut Vec<CheckResult>) -> Option<bool> {
    let v = value?;
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        "" => None,
        other => {
            results.push(
                CheckResult::finding(
                    codes::CFG_BAD_BOOL,
                    "config.environment",
                    format!("{name}={other:?} is not a boolean Go understands; Consul ignores it (\"could not parse {name}\")"),
                    format!("set {name} to true or false (Go also accepts 1/0, t/f, TRUE/FALSE), or unset it"),
                )
                .with("variable", name),
            );
            None
        }
    }
}

pub struct ParsedAddress {
    pub target: Target,
    pub default_port: bool,
}

/// Parses an address the way the Go client does (`api.NewClient`).
pub fn parse_address(raw: &str, ssl_true: bool) -> Result<ParsedAddress, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("the address is empty".into());
    }
    let mut scheme = if ssl_true { Scheme::Https } else { Scheme::Http };
    let mut rest = raw;
    if let Some((s, r)) = raw.split_once("://") {
        match s {
            "http" => {}
            "https" => scheme = Scheme::Https,
            "unix" => {
                if r.is_empty() {
                    return Err("unix:// needs a socket path, for example unix:///var/run/consul/http.sock".into());
                }
                return Ok(ParsedAddress { target: Target::Unix { path: PathBuf::from(r) }, default_port: false });
            }
            other => return Err(format!("Unknown protocol scheme: {other}")),
        }
        rest = r;
    }
    let (hostport, prefix) = match rest.split_once('/') {
        Some((hp, p)) => (hp, format!("/{}", p.trim_end_matches('/'))),
        None => (rest, String::new()),
    };
    let prefix = if prefix == "/" { String::new() } else { prefix };
    if hostport.is_empty() {
        return Err("no host in the address".into());
    }
    if hostport.contains('@') {
        return Err("user information (user@host) is not supported in a Consul address".into());
    }
    let default = if scheme == Scheme::Https { 443 } else { 80 };
    let (host, port, default_port) = if let Some(after) = hostport.strip_prefix('[') {
        let (h, tail) = after.split_once(']').ok_or("unclosed '[' in an IPv6 address")?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{h:?} is not an IPv6 address"));
        }
        match tail {
            "" => (h.to_string(), default, true),
            t => match t.strip_prefix(':') {
                Some(p) => (h.to_string(), parse_port(p)?, false),
                None => return Err(format!("unexpected {t:?} after the IPv6 address")),
            },
        }
    } else {
        match hostport.matches(':').count() {
            0 => (hostport.to_string(), default, true),
            1 => {
                let (h, p) = hostport.split_once(':').expect("one colon");
                if h.is_empty() {
                    return Err("no host in the address".into());
                }
                (h.to_string(), parse_port(p)?, false)
            }
            _ => return Err("an IPv6 address needs brackets, for example [::1]:8500".into()),
        }
    };
    if host.parse::<std::net::IpAddr>().is_err() && !valid_hostname(&host) {
        return Err(format!("{host:?} is not a valid host name"));
    }
    Ok(ParsedAddress { target: Target::Tcp { scheme, host, port, path_prefix: prefix }, default_port })
}

fn parse_port(p: &str) -> Result<u16, String> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {p:?} is not a number"));
    }
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is out of range 1-65535")),
        Err(_) => Err(format!("port {p:?} is not a number")),
    }
}

fn valid_hostname(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn resolve_token(inputs: &Inputs) -> (Option<Secret>, Option<String>, Vec<CheckResult>) {
    let mut results = Vec::new();
    let flag_token = inputs.consul.token.as_ref().map(|t| (t.value.clone(), t.source.describe()));
    let mut token = flag_token.clone();
    if let Some(Sourced { value: path, source }) = &inputs.consul.token_file {
        let shown = path.display();
        match crate::localfile::read_capped(path, crate::localfile::TOKEN_CAP) {
            Err(e) => {
                results.push(
                    CheckResult::finding(
                        codes::CFG_TOKEN_FILE_UNREADABLE,
                        "config.token",
                        format!("token file {shown} ({}) cannot be read: {e}", source.describe()),
                        match e {
                            crate::localfile::ReadError::Io(_) => format!("create the file or fix its path; the Consul CLI fails the same way (\"Error loading token file: open {shown}\")"),
                            _ => format!("point --token-file / CONSUL_HTTP_TOKEN_FILE at a regular file holding only the token's SecretID (at most {} bytes are read)", crate::localfile::TOKEN_CAP),
                        },
                    )
                    .with("path", shown.to_string()),
                );
                return (None, None, results);
            }
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).trim().to_string();
                if let Some(mode) = file_mode(path) {
                    if mode & 0o044 != 0 {
                        results.push(
                            CheckResult::finding(
                                codes::CFG_TOKEN_FILE_PERMISSIONS,
                                "config.token",
                                format!(
                                    "token file {shown} has mode {:04o}: other users on this host can read the token",
                                    mode & 0o7777
                                ),
                                format!("chmod 600 {shown}, owned by the user that runs the service"),
                            )
                            .with("mode", format!("{:04o}", mode & 0o7777)),
                        );
                    }
                }
                if text.is_empty() {
                    results.push(CheckResult::finding(
                        codes::CFG_TOKEN_FILE_EMPTY,
                        "config.token",
                        format!(
                            "token file {shown} is empty; Consul ignores it and uses {}",
                            flag_token
                                .as_ref()
                                .map(|(_, s)| format!("the token from {s}"))
                                .unwrap_or_else(|| "no token (the agent's default token or anonymous)".into())
                        ),
                        format!(
                            "write the token's SecretID into {shown}, or drop --token-file / CONSUL_HTTP_TOKEN_FILE"
                        ),
                    ));
                } else {
                    if let Some((_, flag_src)) = &flag_token {
                        results.push(CheckResult::finding(
                            codes::CFG_TOKEN_FILE_OVERRIDES,
                            "config.token",
                            format!("the token in {shown} ({}) overrides the token from {flag_src}, as in Consul", source.describe()),
                            "give only one of them: unset CONSUL_HTTP_TOKEN_FILE/--token-file to use the token, or drop the token",
                        ));
                    }
                    token = Some((Secret::new(text), format!("token file {shown}")));
                }
            }
        }
    }
    // Go's HTTP client refuses header values with control characters (a pasted newline), and a
    // space or tab makes a different token than the one in Consul.
    if let Some((secret, origin)) = &token {
        let raw = secret.expose();
        let bad = if raw.chars().any(|c| c.is_control() && c != '\t') {
            Some("a control character (a pasted newline?): the Go client refuses to send it (net/http: invalid header field value for X-Consul-Token)")
        } else if raw != raw.trim() || raw.contains(char::is_whitespace) {
            Some("spaces or tabs: Consul looks the token up verbatim and answers \"ACL not found\"")
        } else {
            None
        };
        if let Some(why) = bad {
            results.push(CheckResult::finding(
                codes::CFG_TOKEN_CHARACTERS,
                "config.token",
                format!("the ACL token from {origin} contains {why}"),
                format!("set the token again without surrounding whitespace, e.g. export CONSUL_HTTP_TOKEN=\"$(tr -d '[:space:]' < token.txt)\" (token files are trimmed by Consul; {origin} is not)"),
            ));
            return (None, None, results);
        }
    }
    if results.is_empty() {
        let msg = match &token {
            Some((_, origin)) => format!("ACL token from {origin}"),
            None => "no ACL token given: requests use the agent's default token, or anonymous".into(),
        };
        results.insert(0, CheckResult::pass("config.token", msg));
    }
    let (secret, origin) = match token {
        Some((s, o)) => (Some(s), Some(o)),
        None => (None, None),
    };
    (secret, origin, results)
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> Option<u32> {
    None
}

fn read_tls_file(label: &str, p: &Sourced<PathBuf>, results: &mut Vec<CheckResult>) -> Option<Vec<u8>> {
    match crate::localfile::read_capped(&p.value, crate::localfile::TLS_CAP) {
        Ok(b) => Some(b),
        Err(e) => {
            results.push(
                CheckResult::finding(
                    codes::CFG_TLS_FILE_UNREADABLE,
                    "config.tls",
                    format!("{label} {} ({}) cannot be read: {e}", p.value.display(), p.source.describe()),
                    format!("fix the path or permissions of the {label}; the Consul CLI refuses to start the same way"),
                )
                .with("path", p.value.display().to_string()),
            );
            None
        }
    }
}

fn pem_certs(bytes: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(bytes).filter_map(Result::ok).collect()
}

fn invalid_pem(label: &str, path: &Path, what: &str) -> CheckResult {
    CheckResult::finding(
        codes::CFG_TLS_FILE_INVALID,
        "config.tls",
        format!("{label} {} holds no {what}", path.display()),
        format!("point the {label} at a PEM file (-----BEGIN ...-----); convert DER with: openssl x509 -inform der -in FILE -out FILE.pem"),
    )
    .with("path", path.display().to_string())
}

fn resolve_tls(
    inputs: &Inputs,
    target: Option<&Target>,
    verify_env: Option<bool>,
) -> (Option<TlsSettings>, Vec<CheckResult>) {
    let mut results = Vec::new();
    let mut roots: Option<Vec<CertificateDer<'static>>> = None;
    // The Go client loads CA files even for http:// addresses, so errors count either way.
    if let Some(ca) = &inputs.consul.ca_file {
        if let Some(bytes) = read_tls_file("CA file", ca, &mut results) {
            let certs = pem_certs(&bytes);
            if certs.is_empty() {
                results.push(invalid_pem("CA file", &ca.value, "PEM certificate"));
            } else {
                roots = Some(certs);
            }
        }
    } else if let Some(dir) = &inputs.consul.ca_path {
        match std::fs::read_dir(&dir.value) {
            Err(e) => results.push(CheckResult::finding(
                codes::CFG_TLS_FILE_UNREADABLE,
                "config.tls",
                format!("CA path {} ({}) cannot be read: {e}", dir.value.display(), dir.source.describe()),
                "fix the directory path or its permissions",
            )),
            Ok(entries) => {
                let mut all = Vec::new();
                let mut files: Vec<PathBuf> =
                    entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect();
                files.sort();
                for f in files {
                    match crate::localfile::read_capped(&f, crate::localfile::TLS_CAP) {
                        Ok(b) => {
                            let certs = pem_certs(&b);
                            if certs.is_empty() {
                                results.push(invalid_pem(
                                    "CA path file",
                                    &f,
                                    "PEM certificate (Go's CA path loader rejects it)",
                                ));
                            }
                            all.extend(certs);
                        }
                        Err(e) => results.push(CheckResult::finding(
                            codes::CFG_TLS_FILE_UNREADABLE,
                            "config.tls",
                            format!("CA path file {} cannot be read: {e}", f.display()),
                            "fix the file's permissions or remove it from the CA directory",
                        )),
                    }
                }
                if all.is_empty() && results.is_empty() {
                    results.push(invalid_pem("CA path", &dir.value, "PEM certificate in any file"));
                } else if !all.is_empty() {
                    roots = Some(all);
                }
            }
        }
    }
    let mut identity: Option<ClientIdentity> = None;
    match (&inputs.consul.client_cert, &inputs.consul.client_key) {
        (Some(cert), Some(key)) => {
            let c = read_tls_file("client certificate", cert, &mut results);
            let k = read_tls_file("client key", key, &mut results);
            if let (Some(c), Some(k)) = (c, k) {
                let chain = pem_certs(&c);
                let pk = PrivateKeyDer::from_pem_slice(&k).ok();
                if chain.is_empty() {
                    results.push(invalid_pem("client certificate", &cert.value, "PEM certificate"));
                }
                match pk {
                    None => {
                        results.push(invalid_pem("client key", &key.value, "PEM private key (PKCS#8, PKCS#1 or SEC1)"))
                    }
                    Some(pk) if !chain.is_empty() => identity = Some((chain, pk)),
                    Some(_) => {}
                }
            }
        }
        (Some(one), None) | (None, Some(one)) => {
            results.push(
                CheckResult::finding(
                    codes::CFG_CLIENT_CERT_PAIR,
                    "config.tls",
                    format!("only one of client certificate and key is set ({}); Consul refuses this (\"both client cert and client key must be provided\")", one.source.describe()),
                    "set both --client-cert/CONSUL_CLIENT_CERT and --client-key/CONSUL_CLIENT_KEY, or neither",
                ),
            );
        }
        (None, None) => {}
    }

    let https_target = match target {
        Some(Target::Tcp { scheme: Scheme::Https, host, .. }) => Some(host.clone()),
        _ => None,
    };
    let tls_inputs_given = inputs.consul.ca_file.is_some()
        || inputs.consul.ca_path.is_some()
        || inputs.consul.client_cert.is_some()
        || inputs.consul.client_key.is_some()
        || inputs.consul.tls_server_name.is_some();
    if https_target.is_none() && tls_inputs_given && target.is_some() {
        let why = match target {
            Some(Target::Unix { .. }) => "the address is a unix socket",
            _ => "the address is plain http:// and CONSUL_HTTP_SSL is not true",
        };
        results.push(CheckResult::finding(
            codes::CFG_TLS_IGNORED,
            "config.tls",
            format!("TLS settings are given but {why}, so they are not used"),
            "use https://HOST:8501 (the agent's ports.https) in --http-addr / CONSUL_HTTP_ADDR, or set CONSUL_HTTP_SSL=true; otherwise drop the TLS settings",
        ));
    }
    let verify = verify_env != Some(false);
    if https_target.is_some() && !verify {
        results.push(CheckResult::finding(
            codes::CFG_TLS_VERIFY_OFF,
            "config.tls",
            "CONSUL_HTTP_SSL_VERIFY=false: the agent's certificate and host name are not verified, so anyone on the path can impersonate the agent",
            "give the agent's CA with --ca-file / CONSUL_CACERT and unset CONSUL_HTTP_SSL_VERIFY",
        ));
    }
    let failed = results.iter().any(|r| r.status == crate::report::Status::Fail);
    let mut settings = None;
    if let (Some(host), false) = (https_target, failed) {
        let (sni_host, custom) = match &inputs.consul.tls_server_name {
            Some(n) => (strip_port(&n.value), true),
            None => (host.clone(), false),
        };
        let server_name = match ServerName::try_from(sni_host.clone()) {
            Ok(n) => Some(n),
            Err(_) => {
                results.push(CheckResult::finding(
                    codes::CFG_ADDRESS,
                    "config.tls",
                    format!("{sni_host:?} cannot be used as a TLS server name"),
                    "set --tls-server-name / CONSUL_TLS_SERVER_NAME to a DNS name or IP in the agent's certificate",
                ));
                None
            }
        };
        let has_client_cert = identity.is_some();
        match (server_name, client_config(roots.as_deref(), identity, verify)) {
            (Some(server_name), Ok(config)) => {
                settings = Some(TlsSettings {
                    config: Arc::new(config),
                    server_name,
                    server_name_host: sni_host,
                    custom_server_name: custom,
                    verify,
                    has_client_cert,
                    custom_ca: roots.is_some(),
                })
            }
            (_, Err(e)) => results.push(CheckResult::finding(
                codes::CFG_TLS_FILE_INVALID,
                "config.tls",
                format!("the TLS files cannot be used: {e}"),
                "check that the client key belongs to the client certificate and that the CA file holds CA certificates",
            )),
            (None, Ok(_)) => {}
        }
    }
    if results.is_empty() {
        let msg = match (&settings, target) {
            (Some(s), _) => format!(
                "TLS: {}, {}{}{}",
                if s.custom_ca { "CA from the given file" } else { "system trust store" },
                if s.has_client_cert { "client certificate given" } else { "no client certificate" },
                if s.custom_server_name { format!(", server name {}", s.server_name_host) } else { String::new() },
                if s.verify { "" } else { ", verification OFF" }
            ),
            (None, Some(Target::Unix { .. })) => "unix socket: no TLS".into(),
            _ => "plain HTTP: no TLS settings needed".into(),
        };
        results.insert(0, CheckResult::pass("config.tls", msg));
    }
    (settings, results)
}

fn strip_port(name: &str) -> String {
    let last_colon = name.rfind(':');
    let last_bracket = name.rfind(']');
    match (last_colon, last_bracket) {
        (Some(c), Some(b)) if c > b => name[..c].trim_matches(|ch| ch == '[' || ch == ']').to_string(),
        (Some(c), None) if name.matches(':').count() == 1 => name[..c].to_string(),
        _ => name.trim_matches(|ch| ch == '[' || ch == ']').to_string(),
    }
}

fn check_proxy(inputs: &Inputs, target: Option<&Target>) -> Vec<CheckResult> {
    let Some(Target::Tcp { scheme, host, .. }) = target else {
        return Vec::new();
    };
    if is_loopback_host(host) {
        return Vec::new(); // Go's ProxyFromEnvironment never proxies loopback
    }
    let get = |upper: &str| {
        inputs
            .consul
            .proxy_env
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(upper))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let var = if *scheme == Scheme::Https { "HTTPS_PROXY" } else { "HTTP_PROXY" };
    let Some(proxy) = get(var) else {
        return Vec::new();
    };
    let no_proxy = get("NO_PROXY").unwrap_or_default();
    let excluded = no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|e| {
        e == "*" || {
            let e = e.trim_start_matches('.').split(':').next().unwrap_or("");
            host.eq_ignore_ascii_case(e) || host.to_ascii_lowercase().ends_with(&format!(".{}", e.to_ascii_lowercase()))
        }
    });
    if excluded {
        return Vec::new();
    }
    let proxy_shown = redact_userinfo(&proxy);
    vec![CheckResult::finding(
        codes::CFG_PROXY,
        "config.environment",
        format!("{var}={proxy_shown} applies to {host}: Consul's Go client sends its requests through that proxy, the doctor connects directly"),
        format!("add {host} to NO_PROXY if the agent should be reached directly, or check that the proxy can reach it"),
    )]
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            format!("{}://<credentials>@{}", &url[..s], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(raw: &str) -> (Scheme, String, u16, String, bool) {
        let p = parse_address(raw, false).unwrap();
        match p.target {
            Target::Tcp { scheme, host, port, path_prefix } => (scheme, host, port, path_prefix, p.default_port),
            _ => panic!("not tcp"),
        }
    }

    #[test]
    fn parses_addresses_like_the_go_client() {
        assert_eq!(tcp("127.0.0.1:8500"), (Scheme::Http, "127.0.0.1".into(), 8500, String::new(), false));
        assert_eq!(
            tcp("https://consul.example:8501"),
            (Scheme::Https, "consul.example".into(), 8501, String::new(), false)
        );
        assert_eq!(tcp("http://[::1]:8500"), (Scheme::Http, "::1".into(), 8500, String::new(), false));
        assert_eq!(tcp("http://proxy:80/consul/"), (Scheme::Http, "proxy".into(), 80, "/consul".into(), false));
        assert_eq!(tcp("consul.example"), (Scheme::Http, "consul.example".into(), 80, String::new(), true));
        assert_eq!(tcp("https://consul.example"), (Scheme::Https, "consul.example".into(), 443, String::new(), true));
        assert!(matches!(parse_address("unix:///tmp/c.sock", false).unwrap().target, Target::Unix { .. }));
        let ssl = parse_address("http://h:8501", true).unwrap();
        assert!(matches!(ssl.target, Target::Tcp { scheme: Scheme::Https, .. }), "SSL=true upgrades http://");
    }

    #[test]
    fn rejects_what_the_go_client_rejects() {
        assert_eq!(parse_address("tcp://h:1", false).err().unwrap(), "Unknown protocol scheme: tcp");
        assert!(parse_address("h:99999", false).is_err());
        assert!(parse_address("h:abc", false).is_err());
        assert!(parse_address("h:+80", false).is_err());
        assert!(parse_address("::1:8500", false).is_err());
        assert!(parse_address("", false).is_err());
        assert!(parse_address("unix://", false).is_err());
        assert!(parse_address("http://:8500", false).is_err());
        assert!(parse_address("bad host:8500", false).is_err());
    }

    #[test]
    fn strips_ports_from_server_names() {
        assert_eq!(strip_port("server.dc1.consul:8501"), "server.dc1.consul");
        assert_eq!(strip_port("server.dc1.consul"), "server.dc1.consul");
        assert_eq!(strip_port("[::1]:8501"), "::1");
    }
}
