//! tls stage: does the transport match what was configured? For https: a verifying handshake
//! with the configured CA, client certificate and server name, then one request, so that unknown
//! authorities, name mismatches, expired certificates and required client certificates are told
//! apart. For http: the port must not be a TLS port, and a token must not travel in clear text
//! to a remote host.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustls::{AlertDescription, CertificateError};
use tokio::io::AsyncWriteExt;

use crate::codes;
use crate::connection::{Connection, Scheme, Target, TlsSettings};
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::CheckResult;
use crate::transport::{self, read_some, rustls_error, ReadEnd, Sniff};

pub const CHECKS: &[&str] = &["tls.handshake", "tls.token_exposure"];

/// What the verifying handshake and the request after it produced.
#[derive(Debug, Clone)]
pub enum Handshake {
    Ok {
        version: String,
        cipher: String,
        status_line: String,
    },
    Cert(CertificateError),
    Alert(AlertDescription),
    /// The server closed or reset after the handshake, before answering.
    ClosedAfterHandshake(String),
    Timeout,
    Other(String),
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let Some(conn) = ctx.conn() else {
            return vec![CheckResult::skipped("tls.handshake", "no usable address")];
        };
        let sniff = ctx.facts().sniff.clone();
        let reachable = ctx.facts().reachable.clone();
        let timeout = ctx.inputs.timeout;
        let mut results = Vec::new();
        let where_ = reachable.first().map(ToString::to_string).unwrap_or_else(|| conn.display.clone());
        match (conn.scheme(), &sniff) {
            (Scheme::Http, Some(Sniff::Tls { evidence })) => results.push(http_to_https(&conn, &where_, evidence)),
            (Scheme::Http, _) => results.push(CheckResult::pass(
                "tls.handshake",
                format!("{where_} speaks plain HTTP, as the http address says"),
            )),
            (Scheme::Https, Some(Sniff::Http { status_line })) => {
                results.push(https_to_http(&conn, &where_, status_line))
            }
            (Scheme::Https, _) => {
                let (Some(tls), Some(addr)) = (&conn.tls, reachable.first()) else {
                    return vec![CheckResult::skipped("tls.handshake", "no TLS settings or address")];
                };
                let start = Instant::now();
                let outcome = handshake(*addr, tls, timeout).await;
                let mut r = judge_handshake(&outcome, tls, &where_, timeout);
                r.elapsed_ms = super::ms(start.elapsed());
                results.push(r);
            }
        }
        results.push(token_exposure(&conn));
        results
    })
}

fn http_to_https(conn: &Connection, at: &str, evidence: &str) -> CheckResult {
    let suggestion = match &conn.target {
        Target::Tcp { host, port, path_prefix, .. } => format!(
            "https://{}:{port}{path_prefix}",
            if host.contains(':') { format!("[{host}]") } else { host.clone() }
        ),
        Target::Unix { .. } => "https://HOST:8501".into(),
    };
    CheckResult::finding(
        codes::TLS_HTTP_TO_HTTPS,
        "tls.handshake",
        format!("{at} is an HTTPS port but the address says plain HTTP ({evidence})"),
        format!("use --http-addr {suggestion} (or CONSUL_HTTP_ADDR) with --ca-file / CONSUL_CACERT set to the agent's CA, or point the address at the agent's ports.http"),
    )
}

fn https_to_http(conn: &Connection, at: &str, status_line: &str) -> CheckResult {
    let suggestion = match &conn.target {
        Target::Tcp { host, port, path_prefix, .. } => format!(
            "http://{}:{port}{path_prefix}",
            if host.contains(':') { format!("[{host}]") } else { host.clone() }
        ),
        Target::Unix { .. } => "http://HOST:8500".into(),
    };
    CheckResult::finding(
        codes::TLS_HTTPS_TO_HTTP,
        "tls.handshake",
        format!("{at} speaks plain HTTP but the address asks for HTTPS; it answered the TLS handshake with \"{status_line}\" (Go: \"http: server gave HTTP response to HTTPS client\")"),
        format!("point the address at the agent's ports.https (8501 by convention), or use {suggestion} and unset CONSUL_HTTP_SSL"),
    )
}

fn token_exposure(conn: &Connection) -> CheckResult {
    match (&conn.target, &conn.token) {
        (Target::Tcp { scheme: Scheme::Http, host, .. }, Some(_)) if !super::is_loopback_host(host) => CheckResult::finding(
            codes::TLS_CLEARTEXT_TOKEN,
            "tls.token_exposure",
            format!("the ACL token (from {}) is sent unencrypted to {host}", conn.token_origin.as_deref().unwrap_or("the inputs")),
            "enable the agent's HTTPS listener (ports { https = 8501 } with tls certificates) and use https://HOST:8501, or talk to a local agent on 127.0.0.1",
        ),
        (Target::Tcp { scheme: Scheme::Https, .. }, _) => CheckResult::pass("tls.token_exposure", "requests are encrypted"),
        (Target::Unix { .. }, _) => CheckResult::pass("tls.token_exposure", "unix socket: the token stays on this host"),
        (_, None) => CheckResult::pass("tls.token_exposure", "no token to expose"),
        _ => CheckResult::pass("tls.token_exposure", "loopback: the token stays on this host"),
    }
}

/// A verifying handshake followed by one request without the token.
pub async fn handshake(addr: SocketAddr, tls: &TlsSettings, timeout: Duration) -> Handshake {
    let deadline = Instant::now() + timeout;
    let tcp = match transport::connect_tcp(addr, timeout).await {
        Ok(s) => s,
        Err(e) => return Handshake::Other(format!("reconnect failed: {}", e.describe())),
    };
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let mut stream = match tokio::time::timeout(timeout, connector.connect(tls.server_name.clone(), tcp)).await {
        Err(_) => return Handshake::Timeout,
        Ok(Err(e)) => return handshake_error(&e),
        Ok(Ok(s)) => s,
    };
    let (_, session) = stream.get_ref();
    let version = session.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
    let cipher = session.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default();
    let host = tls.server_name_host.clone();
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(e) = tokio::time::timeout(left, stream.write_all(transport::http_probe_request(&host).as_bytes()))
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    {
        return after_handshake_error(&e);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let (bytes, end) = read_some(&mut stream, 1024, left).await;
    if bytes.starts_with(b"HTTP/") {
        let status_line = String::from_utf8_lossy(&bytes).lines().next().unwrap_or("").trim().to_string();
        return Handshake::Ok { version, cipher, status_line };
    }
    match end {
        ReadEnd::Timeout if bytes.is_empty() => Handshake::Timeout,
        ReadEnd::Error(e) => {
            let err = io::Error::other(e.clone());
            if e.contains("alert") {
                return Handshake::ClosedAfterHandshake(e);
            }
            after_handshake_error(&err)
        }
        ReadEnd::Eof if bytes.is_empty() => {
            Handshake::ClosedAfterHandshake("the server closed the connection after the handshake".into())
        }
        _ => Handshake::Other(format!(
            "unexpected answer after the handshake: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        )),
    }
}

fn handshake_error(e: &io::Error) -> Handshake {
    match rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(c)) => Handshake::Cert(c.clone()),
        Some(rustls::Error::AlertReceived(a)) => Handshake::Alert(*a),
        Some(other) => Handshake::Other(other.to_string()),
        None => match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof => {
                Handshake::ClosedAfterHandshake(transport::io_text(e))
            }
            _ => Handshake::Other(e.to_string()),
        },
    }
}

fn after_handshake_error(e: &io::Error) -> Handshake {
    match rustls_error(e) {
        Some(rustls::Error::AlertReceived(a)) => Handshake::Alert(*a),
        Some(other) => Handshake::Other(other.to_string()),
        None => Handshake::ClosedAfterHandshake(transport::io_text(e)),
    }
}

/// Turns the handshake outcome into the check result.
pub fn judge_handshake(h: &Handshake, tls: &TlsSettings, at: &str, timeout: Duration) -> CheckResult {
    let name = &tls.server_name_host;
    let ca_hint = if tls.custom_ca {
        "the CA given with --ca-file / CONSUL_CACERT did not sign the agent's certificate: give the CA that did (consul-agent-ca.pem from `consul tls ca create`)"
    } else {
        "no CA was given, so the system trust store was used: set --ca-file / CONSUL_CACERT to the agent's CA (consul-agent-ca.pem from `consul tls ca create`)"
    };
    match h {
        Handshake::Ok { version, cipher, status_line } => CheckResult::pass(
            "tls.handshake",
            format!("{at}: {version} with {cipher}, certificate valid for {name}{}; {status_line}", if tls.verify { "" } else { " (NOT verified)" }),
        )
        .with("tls_version", version.clone())
        .with("cipher", cipher.clone()),
        Handshake::Cert(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => CheckResult::finding(
                codes::TLS_UNKNOWN_AUTHORITY,
                "tls.handshake",
                format!("the certificate of {at} is signed by an unknown authority (Go: \"x509: certificate signed by unknown authority\")"),
                ca_hint,
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let presented = match c {
                    CertificateError::NotValidForNameContext { presented, .. } => format!(": it is valid for {}", presented.join(", ")),
                    _ => String::new(),
                };
                CheckResult::finding(
                    codes::TLS_NAME_MISMATCH,
                    "tls.handshake",
                    format!("the certificate of {at} is not valid for {name}{presented}"),
                    if tls.custom_server_name {
                        format!("set --tls-server-name / CONSUL_TLS_SERVER_NAME to a name the certificate holds{presented}")
                    } else {
                        format!("set --tls-server-name / CONSUL_TLS_SERVER_NAME to a name the certificate holds{presented}, address the agent by such a name, or reissue the certificate with it: consul tls cert create -server -additional-dnsname={name}")
                    },
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } | CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                let when = match c {
                    CertificateError::ExpiredContext { time, not_after } => format!(" (expired {} s before now)", time.as_secs().saturating_sub(not_after.as_secs())),
                    CertificateError::NotValidYetContext { time, not_before } => format!(" (valid only in {} s)", not_before.as_secs().saturating_sub(time.as_secs())),
                    _ => String::new(),
                };
                let what = if matches!(c, CertificateError::Expired | CertificateError::ExpiredContext { .. }) { "has expired" } else { "is not valid yet" };
                CheckResult::finding(
                    codes::TLS_EXPIRED,
                    "tls.handshake",
                    format!("the certificate of {at} {what}{when}"),
                    "check the clocks (timedatectl, NTP) of this host and the agent; reissue the agent certificate (consul tls cert create -server) and run consul reload",
                )
            }
            other => CheckResult::finding(
                codes::TLS_HANDSHAKE,
                "tls.handshake",
                format!("the certificate of {at} was rejected: {other:?}"),
                "inspect it with: openssl s_client -connect HOST:PORT -showcerts, and reissue it if it is malformed",
            ),
        },
        Handshake::Alert(a) if client_cert_alert(*a) || matches!(a, AlertDescription::HandshakeFailure) => client_cert_problem(tls, at, &format!("TLS alert {a:?}")),
        Handshake::ClosedAfterHandshake(how) => client_cert_problem(tls, at, how),
        Handshake::Alert(a) => CheckResult::finding(
            codes::TLS_HANDSHAKE,
            "tls.handshake",
            format!("{at} ended the TLS handshake with alert {a:?}"),
            "compare the agent's tls_min_version and tls_cipher_suites with what this client offers (TLS 1.2/1.3), and check the agent log",
        ),
        Handshake::Timeout => CheckResult::finding(
            codes::TLS_HANDSHAKE,
            "tls.handshake",
            format!("the TLS handshake with {at} did not finish within {}", super::fmt_timeout(timeout)),
            "check for a middlebox holding the connection and for an overloaded agent",
        ),
        Handshake::Other(e) => CheckResult::finding(
            codes::TLS_HANDSHAKE,
            "tls.handshake",
            format!("the TLS handshake with {at} failed: {e}"),
            "compare the agent's TLS settings (tls_min_version, cipher suites, certificates) with the client's; test with: openssl s_client -connect HOST:PORT",
        ),
    }
}

fn client_cert_alert(a: AlertDescription) -> bool {
    matches!(
        a,
        AlertDescription::BadCertificate
            | AlertDescription::CertificateRequired
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError
    )
}

fn client_cert_problem(tls: &TlsSettings, at: &str, how: &str) -> CheckResult {
    if tls.has_client_cert {
        CheckResult::finding(
            codes::TLS_CLIENT_CERT_REJECTED,
            "tls.handshake",
            format!("{at} rejected the client certificate ({how})"),
            "issue the client certificate from the CA in the agent's ca_file (consul tls cert create -cli, or -client) and check that it has not expired",
        )
    } else {
        CheckResult::finding(
            codes::TLS_CLIENT_CERT_REQUIRED,
            "tls.handshake",
            format!("{at} requires a client certificate (verify_incoming) and none was given ({how})"),
            "set --client-cert/--client-key (CONSUL_CLIENT_CERT/CONSUL_CLIENT_KEY) to a certificate signed by the agent's CA (consul tls cert create -cli), or set verify_incoming_https = false on the agent",
        )
    }
}
