//! health stage: probes each check target of the services from the doctor's host, judging the
//! answer exactly as Consul does (2xx passing, 429 warning, anything else critical; redirects
//! followed). It depends only on the definition, so it still runs when the agent is down. A
//! loopback target while the agent runs elsewhere is flagged: the agent probes its own loopback.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::codes;
use crate::connection::Target;
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::diagnosis::stages::dns::{self, Lookup};
use crate::join::join_all;
use crate::report::CheckResult;
use crate::service::{split_host_port, CheckDef, CheckKind, Dur, ServiceDef};
use crate::transport::{self, ConnectFailure};

pub const CHECKS: &[&str] = &["health.probe"];

/// Consul's default HTTP/TCP check timeout.
const CONSUL_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Consul keeps at most this much of a check's output.
const OUTPUT_CAP: usize = 4096;

/// What probing one check target produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Http { status: u16, reason: String, body: String, final_url: String },
    TcpOk,
    Refused(String),
    Timeout,
    Tls(String),
    Closed(String),
    NoDns(String),
    Skipped(String),
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let services = ctx.facts().services.clone();
        if services.is_empty() {
            return vec![super::no_service("health.probe")];
        }
        let agent_host = ctx.conn().and_then(|c| match &c.target {
            Target::Tcp { host, .. } => Some(host.clone()),
            Target::Unix { .. } => None,
        });
        let mut results = Vec::new();
        for svc in &services {
            if let Some(skip) = super::service_gate(svc, "health.probe") {
                results.push(skip);
                continue;
            }
            let def = &svc.def;
            if def.checks.is_empty() {
                results.push(CheckResult::skipped(
                    "health.probe",
                    format!(
                        "{}: no health check defined, so Consul reports the instance passing even when it is down",
                        def.label
                    ),
                ));
                continue;
            }
            let probes = join_all(def.checks.iter().map(|c| Box::pin(probe_check(ctx, def, c))).collect()).await;
            for (c, (probe, took)) in def.checks.iter().zip(probes) {
                if let Some(w) = loopback_warning(def, c, agent_host.as_deref()) {
                    results.push(w);
                }
                let mut r = judge(def, c, &probe, ctx.inputs.timeout);
                if ctx.inputs.pre_start {
                    r = before_start(r);
                }
                r.elapsed_ms = super::ms(took);
                if !matches!(probe, Probe::Skipped(_)) {
                    let failing = (r.status == crate::report::Status::Fail).then_some(r.code).flatten();
                    ctx.facts().probes.push((def.effective_id().unwrap_or("").to_string(), c.label.clone(), failing));
                }
                results.push(r);
            }
        }
        results
    })
}

fn check_timeout(c: &CheckDef, doctor: Duration) -> (Duration, bool) {
    let own = c
        .timeout
        .as_ref()
        .and_then(Dur::nanos)
        .filter(|n| *n > 0)
        .map(|n| Duration::from_nanos(n as u64))
        .unwrap_or(CONSUL_DEFAULT_TIMEOUT);
    if own > doctor {
        (doctor, true)
    } else {
        (own, false)
    }
}

async fn probe_check(ctx: &Ctx<'_>, _def: &ServiceDef, c: &CheckDef) -> (Probe, Duration) {
    let start = Instant::now();
    let (timeout, _) = check_timeout(c, ctx.inputs.timeout);
    let probe = match &c.kind {
        CheckKind::Http { url, method, headers, tls_skip_verify } => probe_http(ctx, url, method, headers, *tls_skip_verify, timeout).await,
        CheckKind::Tcp { address } => probe_tcp(ctx, address, timeout).await,
        CheckKind::Grpc { target } => {
            let hostport = target.split('/').next().unwrap_or(target);
            probe_tcp(ctx, hostport, timeout).await
        }
        CheckKind::Ttl => Probe::Skipped(format!(
            "TTL check: nothing to probe; the service itself must call PUT /v1/agent/check/pass/<check id> at least every {}",
            c.ttl.as_ref().map(Dur::shown).unwrap_or_default()
        )),
        CheckKind::Script => Probe::Skipped("script check: runs on the agent's host, not probed".into()),
        CheckKind::Alias => Probe::Skipped("alias check: mirrors another service's health, not probed".into()),
        CheckKind::Other(kind) => Probe::Skipped(format!("{kind} check: not probed by the doctor")),
        CheckKind::None => Probe::Skipped("no check type: see the config stage".into()),
    };
    (probe, start.elapsed())
}

/// Resolves a check target host like the agent would (IP literal, localhost, or DNS).
async fn resolve(ctx: &Ctx<'_>, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if bare.eq_ignore_ascii_case("localhost") {
        return Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    }
    match dns::resolve(bare, ctx.inputs.dns_server, ctx.inputs.timeout).await {
        Lookup::Addresses(ips) => Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()),
        Lookup::NxDomain => Err(format!("{bare} does not exist (NXDOMAIN)")),
        Lookup::NoRecords => Err(format!("{bare} has no A/AAAA record")),
        Lookup::Timeout => Err(format!("no DNS answer for {bare}")),
        Lookup::ServerError(e) => Err(format!("DNS lookup of {bare} failed: {e}")),
    }
}

async fn probe_tcp(ctx: &Ctx<'_>, address: &str, timeout: Duration) -> Probe {
    let Some((host, port)) = split_host_port(address) else {
        return Probe::Skipped(format!("{address:?} is not host:port: see the config stage"));
    };
    let addrs = match resolve(ctx, &host, port).await {
        Ok(a) => a,
        Err(e) => return Probe::NoDns(e),
    };
    let mut last = Probe::Refused("no address".into());
    for a in addrs {
        match transport::connect_tcp(a, timeout).await {
            Ok(_) => return Probe::TcpOk,
            Err(ConnectFailure::Timeout) => last = Probe::Timeout,
            Err(e) => last = Probe::Refused(format!("dial tcp {a}: {}", e.describe())),
        }
    }
    last
}

async fn probe_http(
    ctx: &Ctx<'_>,
    url: &str,
    method: &str,
    headers: &[(String, String)],
    skip_verify: bool,
    timeout: Duration,
) -> Probe {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Probe::Skipped(format!("{url:?} is not an http(s) URL: see the config stage"));
    }
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Probe::Skipped(format!("{url:?} cannot be parsed: {e}")),
    };
    let host = parsed.host_str().unwrap_or("").to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs = match resolve(ctx, &host, port).await {
        Ok(a) => a,
        Err(e) => return Probe::NoDns(e),
    };
    let tls = if parsed.scheme() == "http" {
        transport::plaintext_only_config()
    } else {
        match transport::client_config(None, None, !skip_verify) {
            Ok(c) => c,
            Err(e) => return Probe::Tls(e),
        }
    };
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .http1_only()
        .retry(reqwest::retry::never())
        .redirect(reqwest::redirect::Policy::limited(10))
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent("Consul Health Check");
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    if bare.parse::<IpAddr>().is_err() {
        b = b.resolve_to_addrs(bare, &addrs);
    }
    let client = match b.build() {
        Ok(c) => c,
        Err(e) => return Probe::Skipped(format!("cannot build the HTTP client: {e}")),
    };
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = client.request(m, parsed).header("Accept", "text/plain, text/*, */*");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    match req.send().await {
        Err(e) => classify(&e),
        Ok(mut resp) => {
            let status = resp.status();
            let final_url = resp.url().to_string();
            let mut body = Vec::new();
            while body.len() < OUTPUT_CAP {
                match resp.chunk().await {
                    Ok(Some(c)) => body.extend_from_slice(&c),
                    _ => break,
                }
            }
            body.truncate(OUTPUT_CAP);
            Probe::Http {
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_string(),
                body: String::from_utf8_lossy(&body).trim().to_string(),
                final_url,
            }
        }
    }
}

fn classify(e: &reqwest::Error) -> Probe {
    let mut chain = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        cur = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    if e.is_timeout() {
        Probe::Timeout
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("corrupt message")
        || lower.contains("invalidcontenttype")
    {
        Probe::Tls(chain)
    } else if lower.contains("refused") || (e.is_connect() && !lower.contains("reset")) {
        Probe::Refused(chain)
    } else {
        Probe::Closed(chain)
    }
}

/// Turns a probe into the check result.
pub fn judge(def: &ServiceDef, c: &CheckDef, probe: &Probe, doctor_timeout: Duration) -> CheckResult {
    let l = format!("{} {}", def.label, c.label);
    let (timeout, capped) = check_timeout(c, doctor_timeout);
    let target = match &c.kind {
        CheckKind::Http { url, method, .. } => format!("HTTP {method} {url}"),
        CheckKind::Tcp { address } => format!("TCP {address}"),
        CheckKind::Grpc { target } => format!("gRPC {target} (TCP reachability only)"),
        _ => String::new(),
    };
    match probe {
        Probe::Skipped(why) => CheckResult::skipped("health.probe", format!("{l}: {why}")),
        Probe::TcpOk => CheckResult::pass("health.probe", format!("{l}: {target}: connected")),
        Probe::Http { status, reason, body, final_url } => {
            let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut snippet: String = flat.chars().take(160).collect();
            if flat.chars().count() > 160 {
                snippet.push('…');
            }
            let output = if snippet.is_empty() { String::new() } else { format!(" Output: {snippet}") };
            let redirected = match &c.kind {
                CheckKind::Http { url, .. } if url != final_url && url.trim_end_matches('/') != final_url.trim_end_matches('/') => format!(" (after redirects, {final_url})"),
                _ => String::new(),
            };
            let seen = format!("{target}: {status} {reason}{redirected}{output}");
            match status {
                // A passing line carries no response body (an HTML page); it stays in the evidence.
                200..=299 => CheckResult::pass("health.probe", format!("{l}: {target}: {status} {reason}{redirected}"))
                    .with("output", snippet.clone()),
                429 => CheckResult::finding(
                    codes::HLT_TOO_MANY,
                    "health.probe",
                    format!("{l}: {seen}; Consul marks this check warning"),
                    "rate-limit the health endpoint less, or give Consul's User-Agent (Consul Health Check) its own budget",
                )
                .with("http_status", status.to_string()),
                _ => CheckResult::finding(
                    codes::HLT_STATUS,
                    "health.probe",
                    format!("{l}: {seen}; Consul marks this check critical (only 2xx passes, 429 warns)"),
                    "make the health endpoint answer 2xx when the service can serve (check its dependencies and logs), or point the check at the right path",
                )
                .with("http_status", status.to_string()),
            }
        }
        Probe::Refused(e) => CheckResult::finding(
            codes::HLT_REFUSED,
            "health.probe",
            format!("{l}: {target}: connection refused: nothing listens there"),
            "start the service, or make it listen on the address the check uses (an app bound to 127.0.0.1 refuses connections to the host's other addresses); in a CI preflight that runs before the app starts, pass --pre-start",
        )
        .with("error", e.clone()),
        Probe::Timeout => CheckResult::finding(
            codes::HLT_TIMEOUT,
            "health.probe",
            format!(
                "{l}: {target}: no answer within {}{}",
                super::fmt_timeout(timeout),
                if capped { " (the doctor's --timeout; the check's own timeout is longer)" } else { "" }
            ),
            "make the health endpoint answer quickly (it should not call slow dependencies), check firewalls between the agent and the service, or raise the check's timeout",
        ),
        Probe::Tls(e) => CheckResult::finding(
            codes::HLT_TLS,
            "health.probe",
            format!("{l}: {target}: TLS failed: {e}"),
            "use http:// for a plain-HTTP endpoint; for a self-signed certificate set tls_skip_verify = true in the check (Consul 1.10+ also has tls_server_name)",
        ),
        Probe::Closed(e) => CheckResult::finding(
            codes::HLT_CLOSED,
            "health.probe",
            format!("{l}: {target}: the connection closed without an HTTP answer ({e})"),
            "check that the port serves HTTP (not TLS, gRPC or another protocol) and that the service does not crash on the request",
        ),
        Probe::NoDns(e) => CheckResult::finding(
            codes::HLT_DNS,
            "health.probe",
            format!("{l}: {target}: {e}"),
            "use an address the agent can resolve and reach (an IP, or a name in DNS or /etc/hosts on the agent's host)",
        ),
    }
}

/// `--pre-start`: the application is not running yet, so nothing answering its health endpoint
/// is expected. Said as a note with what will happen; an endpoint that answers wrongly, or a
/// name that does not resolve, stays a finding.
pub fn before_start(r: CheckResult) -> CheckResult {
    let expected = [codes::HLT_REFUSED.code, codes::HLT_TIMEOUT.code, codes::HLT_CLOSED.code];
    let Some(code) = r.code.filter(|c| expected.contains(c)) else {
        return r;
    };
    let mut note = CheckResult::finding(
        codes::HLT_NOT_STARTED,
        "health.probe",
        format!("{} (--pre-start: expected before the application starts); once registered, the check is critical until the application answers, and DNS and ?passing queries leave the instance out until then", r.message),
        "start the application before (or right after) registering, and gate traffic on it: consul-doctor wait --service NAME returns once the instance passes",
    );
    note.evidence = r.evidence;
    note.elapsed_ms = r.elapsed_ms;
    note.with("probe_code", code)
}

/// A check on loopback only works when the agent shares the service's host and network namespace.
pub fn loopback_warning(def: &ServiceDef, c: &CheckDef, agent_host: Option<&str>) -> Option<CheckResult> {
    let host = match &c.kind {
        CheckKind::Http { url, .. } => reqwest::Url::parse(url).ok()?.host_str()?.to_string(),
        CheckKind::Tcp { address } | CheckKind::Grpc { target: address } => {
            split_host_port(address.split('/').next()?)?.0
        }
        _ => return None,
    };
    if !super::is_loopback_host(&host) {
        return None;
    }
    let service_remote = def.address.as_deref().filter(|a| !a.is_empty()).is_some_and(|a| !super::is_loopback_host(a));
    let agent_remote = agent_host.is_some_and(|h| !super::is_loopback_host(h));
    if !service_remote && !agent_remote {
        return None;
    }
    let why = if agent_remote {
        format!("the agent at {} runs the check on its own host", agent_host.unwrap_or(""))
    } else {
        format!(
            "the service advertises {}, so it is reached from other hosts, yet the agent checks its own loopback",
            def.address.as_deref().unwrap_or("")
        )
    };
    Some(CheckResult::finding(
        codes::HLT_LOOPBACK,
        "health.probe",
        format!("{} {}: the check targets {host}, but {why}: a probe that works here can fail for the agent (and the reverse)", def.label, c.label),
        "point the check at the service's routable address, run the agent in the service's network namespace (sidecar), or use a TTL check",
    ))
}
