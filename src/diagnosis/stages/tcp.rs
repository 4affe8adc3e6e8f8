//! tcp stage: can a connection be opened to every resolved address, and does the port answer at
//! all? Refused, timed out, unreachable and reset connections are different findings; so are a
//! port that accepts but never answers, one that closes without a word, and a gRPC port.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::codes;
use crate::connection::{Connection, Scheme, Target};
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::join::join_all;
use crate::report::CheckResult;
use crate::transport::{self, ConnectFailure, Sniff};

pub const CHECKS: &[&str] = &["tcp.connect", "tcp.answer"];

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let Some(conn) = ctx.conn() else {
            return vec![CheckResult::skipped("tcp.connect", "no usable address")];
        };
        let timeout = ctx.inputs.timeout;
        if let Target::Unix { path } = &conn.target {
            let start = Instant::now();
            return match transport::connect_unix(path, timeout).await {
                Err(f) => vec![
                    unix_failure(&path.display().to_string(), &f),
                    CheckResult::blocked("tcp.answer", codes::TCP_UNIX_SOCKET.code),
                ],
                Ok(stream) => {
                    let took = start.elapsed();
                    let mut first =
                        CheckResult::pass("tcp.connect", format!("connected to unix socket {}", path.display()));
                    first.elapsed_ms = super::ms(took);
                    let t1 = Instant::now();
                    let (sniff, answer) = transport::sniff_plain_answer(stream, "localhost", timeout).await;
                    ctx.facts().sniffed_leader = answer;
                    let mut answer = judge_answer(&sniff, &conn, &path.display().to_string(), timeout);
                    answer.elapsed_ms = super::ms(t1.elapsed());
                    ctx.facts().sniff = Some(sniff);
                    vec![first, answer]
                }
            };
        }
        let addrs = ctx.facts().addrs.clone();
        let attempts = join_all(
            addrs
                .iter()
                .map(|&a| {
                    Box::pin(async move {
                        let t0 = Instant::now();
                        let r = transport::connect_tcp(a, timeout).await;
                        (a, r, t0.elapsed())
                    })
                })
                .collect(),
        )
        .await;
        let outcomes: Vec<(SocketAddr, Result<(), ConnectFailure>, Duration)> =
            attempts.iter().map(|(a, r, d)| (*a, r.as_ref().map(|_| ()).map_err(Clone::clone), *d)).collect();
        let host = conn.host().unwrap_or("").to_string();
        let mut results = judge_connect(&host, &outcomes, timeout);
        let reachable: Vec<SocketAddr> = outcomes.iter().filter(|(_, r, _)| r.is_ok()).map(|(a, _, _)| *a).collect();
        ctx.facts().reachable = reachable.clone();
        let first_stream = attempts.into_iter().find_map(|(a, r, _)| r.ok().map(|s| (a, s)));
        let Some((addr, stream)) = first_stream else {
            let code = results.iter().find_map(|r| r.code).unwrap_or(codes::TCP_REFUSED.code);
            if code == codes::TCP_REFUSED.code {
                loopback_only_hint(&mut results, &outcomes, timeout).await;
                other_port_hint(&mut results, &outcomes, &conn, timeout).await;
            }
            results.push(CheckResult::blocked("tcp.answer", code));
            return results;
        };
        if let Ok(local) = stream.local_addr() {
            ctx.facts().local_ip = Some(local.ip());
        }
        let t1 = Instant::now();
        let sniff = match conn.scheme() {
            Scheme::Http => {
                let (sniff, answer) = transport::sniff_plain_answer(stream, &host_header(&conn), timeout).await;
                // The probe asked what the leader stage asks (without a token, which the status
                // endpoints do not read): its answer stands for that read when the client's
                // URL is the same path on the same address.
                if matches!(&conn.target, Target::Tcp { path_prefix, .. } if path_prefix.is_empty()) {
                    ctx.facts().sniffed_leader = answer;
                }
                sniff
            }
            Scheme::Https => {
                let name = conn
                    .tls
                    .as_ref()
                    .map(|t| t.server_name.clone())
                    .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(addr.ip().into()));
                transport::sniff_tls(stream, name, timeout).await
            }
        };
        let mut answer = judge_answer(&sniff, &conn, &addr.to_string(), timeout);
        answer.elapsed_ms = super::ms(t1.elapsed());
        ctx.facts().sniff = Some(sniff);
        results.push(answer);
        results
    })
}

fn host_header(conn: &Connection) -> String {
    match &conn.target {
        Target::Tcp { host, port, .. } if host.contains(':') => format!("[{host}]:{port}"),
        Target::Tcp { host, port, .. } => format!("{host}:{port}"),
        Target::Unix { .. } => "localhost".into(),
    }
}

/// A refused connection to a non-loopback address of this host, while 127.0.0.1 on the same
/// port answers, means the agent listens on loopback only (`client_addr` defaults to 127.0.0.1).
async fn loopback_only_hint(
    results: &mut [CheckResult],
    outcomes: &[(SocketAddr, Result<(), ConnectFailure>, Duration)],
    timeout: Duration,
) {
    let Some((addr, _, _)) = outcomes.iter().find(|(a, r, _)| {
        matches!(r, Err(ConnectFailure::Refused)) && a.ip() != std::net::IpAddr::from([127, 0, 0, 1])
    }) else {
        return;
    };
    let local = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    if transport::connect_tcp(local, timeout.min(Duration::from_millis(500))).await.is_err() {
        return;
    }
    if let Some(r) = results.iter_mut().find(|r| r.code == Some(codes::TCP_REFUSED.code)) {
        r.message.push_str(&format!("; yet {local} answers on this host: the agent listens on loopback only"));
        r.fix = Some(format!(
            "the agent binds its HTTP API to 127.0.0.1 (client_addr's default): set client_addr = \"0.0.0.0\" or addresses {{ http = \"{}\" }} in the agent configuration and restart it, or use --http-addr {local} from this host",
            addr.ip()
        ));
        r.evidence.insert("loopback_answers".into(), local.to_string());
    }
}

/// Refused on Consul's HTTP port while its HTTPS port answers (or the reverse): the agent serves
/// only the other listener (`ports { http = -1 }` is a common way to get here).
async fn other_port_hint(
    results: &mut [CheckResult],
    outcomes: &[(SocketAddr, Result<(), ConnectFailure>, Duration)],
    conn: &Connection,
    timeout: Duration,
) {
    let Some((addr, _, _)) = outcomes.iter().find(|(_, r, _)| matches!(r, Err(ConnectFailure::Refused))) else {
        return;
    };
    let (other, scheme) = match addr.port() {
        8500 => (8501, "https"),
        8501 => (8500, "http"),
        _ => return,
    };
    let probe = SocketAddr::new(addr.ip(), other);
    if transport::connect_tcp(probe, timeout.min(Duration::from_millis(500))).await.is_err() {
        return;
    }
    let host = match &conn.target {
        Target::Tcp { host, .. } if host.contains(':') => format!("[{host}]"),
        Target::Tcp { host, .. } => host.clone(),
        Target::Unix { .. } => return,
    };
    if let Some(r) = results.iter_mut().find(|r| r.code == Some(codes::TCP_REFUSED.code)) {
        r.message.push_str(&format!("; port {other} on the same host accepts connections"));
        r.fix = Some(format!(
            "the agent seems to serve only its {} listener: use --http-addr {scheme}://{host}:{other} (CONSUL_HTTP_ADDR){}, or enable ports.{} on the agent",
            if scheme == "https" { "HTTPS" } else { "plain HTTP" },
            if scheme == "https" { " with --ca-file / CONSUL_CACERT" } else { "" },
            if scheme == "https" { "http" } else { "https" }
        ));
        r.evidence.insert("other_port_answers".into(), probe.to_string());
    }
}

fn unix_failure(path: &str, f: &ConnectFailure) -> CheckResult {
    let detail = match f {
        ConnectFailure::NotFound => "does not exist: the agent is not running or addresses.http is not this socket",
        ConnectFailure::PermissionDenied => "is not accessible to this user (unix_sockets user/group/mode)",
        ConnectFailure::Refused => "exists but nothing accepts on it (stale socket left by a stopped agent)",
        _ => "cannot be connected to",
    };
    CheckResult::finding(
        codes::TCP_UNIX_SOCKET,
        "tcp.connect",
        format!("unix socket {path} {detail} ({})", f.describe()),
        "start the agent with addresses { http = \"unix:///path/to/consul.sock\" } and check unix_sockets { user, group, mode }, or use the TCP address",
    )
}

/// Judges the connection attempts to every resolved address.
pub fn judge_connect(
    host: &str,
    outcomes: &[(SocketAddr, Result<(), ConnectFailure>, Duration)],
    timeout: Duration,
) -> Vec<CheckResult> {
    let ok: Vec<&SocketAddr> = outcomes.iter().filter(|(_, r, _)| r.is_ok()).map(|(a, _, _)| a).collect();
    let failed: Vec<(&SocketAddr, &ConnectFailure)> =
        outcomes.iter().filter_map(|(a, r, _)| r.as_ref().err().map(|e| (a, e))).collect();
    if outcomes.is_empty() {
        return vec![CheckResult::skipped("tcp.connect", "no address to connect to")];
    }
    if failed.is_empty() {
        let mut r = CheckResult::pass(
            "tcp.connect",
            format!("connected to {}", ok.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
        );
        r.elapsed_ms = outcomes.iter().map(|(_, _, d)| super::ms(*d)).max().unwrap_or(0);
        return vec![r];
    }
    if !ok.is_empty() {
        let loopback = super::is_loopback_host(host);
        let any_timeout = failed.iter().any(|(_, f)| **f == ConnectFailure::Timeout);
        let list = failed.iter().map(|(a, f)| format!("{a} ({})", f.describe())).collect::<Vec<_>>().join(", ");
        if loopback && !any_timeout {
            return vec![CheckResult::pass(
                "tcp.connect",
                format!(
                    "connected to {}; {list} not listening (harmless on loopback)",
                    ok.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
            )];
        }
        return vec![CheckResult::finding(
            codes::TCP_PARTIAL,
            "tcp.connect",
            format!("{host} resolves to {} addresses; {} answered but {list} did not", outcomes.len(), ok.len()),
            "remove the dead addresses from DNS, or make the agent listen on every address the name resolves to (client_addr / addresses.http)",
        )];
    }
    let (addr, failure) = failed[0];
    let all = failed.iter().map(|(a, _)| a.to_string()).collect::<Vec<_>>().join(", ");
    let loopback_ip = addr.ip().is_loopback();
    let r = match failure {
        ConnectFailure::Refused => CheckResult::finding(
            codes::TCP_REFUSED,
            "tcp.connect",
            format!("connection refused by {all}: nothing listens on port {}", addr.port()),
            if loopback_ip {
                format!("start the Consul agent (systemctl start consul / consul agent ...), or point --http-addr / CONSUL_HTTP_ADDR at the port it listens on (ports.http, default 8500); check with: ss -ltnp 'sport = :{}'", addr.port())
            } else {
                format!("start the agent, and make it listen on {} (client_addr defaults to 127.0.0.1; set client_addr or addresses.http to a routable address, ports.http {}), then open the port in the firewall", addr.ip(), addr.port())
            },
        ),
        ConnectFailure::Timeout => CheckResult::finding(
            codes::TCP_TIMEOUT,
            "tcp.connect",
            format!("no answer to the connection attempt to {all} within {}: packets are dropped", super::fmt_timeout(timeout)),
            format!("open TCP port {} from this host to the agent in the firewall or security group; the Go client would hang 30 s per attempt here", addr.port()),
        ),
        ConnectFailure::Unreachable(e) => CheckResult::finding(
            codes::TCP_UNREACHABLE,
            "tcp.connect",
            format!("{all} is unreachable from this host: {e}"),
            "check routing, VPN and the address family (an IPv6 address without IPv6 connectivity); use an address on a network this host reaches",
        ),
        ConnectFailure::Reset => CheckResult::finding(
            codes::TCP_RESET,
            "tcp.connect",
            format!("the connection to {all} was reset while connecting"),
            "a firewall or load balancer resets connections to this port; check its rules and the agent's ports.http",
        ),
        other => CheckResult::finding(
            codes::TCP_UNREACHABLE,
            "tcp.connect",
            format!("cannot connect to {all}: {}", other.describe()),
            "check the address and the network path to the agent",
        ),
    };
    vec![r.with("address", addr.to_string()).with("error", failure.describe())]
}

/// Judges what the port answered. Scheme mismatches pass here; the tls stage reports them.
pub fn judge_answer(sniff: &Sniff, conn: &Connection, addr: &str, timeout: Duration) -> CheckResult {
    match sniff {
        Sniff::Http { status_line } => CheckResult::pass("tcp.answer", format!("{addr} answers HTTP ({status_line})")),
        Sniff::Tls { evidence } => CheckResult::pass("tcp.answer", format!("{addr} answers TLS ({evidence})")),
        Sniff::Grpc => CheckResult::finding(
            codes::TCP_GRPC_PORT,
            "tcp.answer",
            format!("{addr} is a gRPC (HTTP/2) port, not the HTTP API: it sent an HTTP/2 SETTINGS frame"),
            "ports.grpc (8502) and ports.grpc_tls (8503) serve Envoy; use ports.http (8500) or ports.https (8501) in --http-addr / CONSUL_HTTP_ADDR",
        ),
        Sniff::Closed { how } => CheckResult::finding(
            codes::TCP_RESET,
            "tcp.answer",
            format!("{addr} accepted the connection but {how} when sent {}", if conn.scheme() == Scheme::Https { "a TLS ClientHello" } else { "an HTTP request" }),
            "this port is not the HTTP API: 8300 is server RPC, 8301/8302 are Serf gossip, 8600 is DNS; use ports.http (8500) or ports.https (8501)",
        ),
        Sniff::Silent => CheckResult::finding(
            codes::TCP_SILENT,
            "tcp.answer",
            format!("{addr} accepted the connection but sent nothing within {}", super::fmt_timeout(timeout)),
            "something that is not a working Consul agent holds this port (a half-open load balancer or proxy, a hung agent); check what listens with ss -ltnp, restart a hung agent, and check the load balancer's backend health. Consul's Go client has no default timeout and would hang here",
        ),
        Sniff::Unknown { preview } => CheckResult::finding(
            codes::TCP_UNKNOWN_PROTOCOL,
            "tcp.answer",
            format!("{addr} answered with bytes that are neither HTTP nor TLS: {preview}"),
            "this port runs another service; use the agent's ports.http (8500) or ports.https (8501)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_connect_failure_has_its_code() {
        let t = Duration::from_secs(1);
        let case = |f: ConnectFailure| judge_connect("10.1.2.3", &[(addr("10.1.2.3:8500"), Err(f), t)], t)[0].code;
        assert_eq!(case(ConnectFailure::Refused), Some("TCP-001"));
        assert_eq!(case(ConnectFailure::Timeout), Some("TCP-002"));
        assert_eq!(case(ConnectFailure::Unreachable("No route to host (os error 113)".into())), Some("TCP-003"));
        assert_eq!(case(ConnectFailure::Reset), Some("TCP-004"));
    }

    #[test]
    fn remote_refusal_points_at_client_addr() {
        let t = Duration::from_secs(1);
        let r = &judge_connect("consul.internal", &[(addr("10.1.2.3:8500"), Err(ConnectFailure::Refused), t)], t)[0];
        assert!(r.fix.as_deref().unwrap().contains("client_addr"));
    }

    #[test]
    fn partly_dead_loopback_name_is_harmless_but_remote_is_not() {
        let t = Duration::from_secs(1);
        let outcomes = [(addr("127.0.0.1:8500"), Ok(()), t), (addr("[::1]:8500"), Err(ConnectFailure::Refused), t)];
        assert_eq!(judge_connect("localhost", &outcomes, t)[0].code, None);
        let remote = [(addr("10.0.0.1:8500"), Ok(()), t), (addr("10.0.0.2:8500"), Err(ConnectFailure::Timeout), t)];
        assert_eq!(judge_connect("consul.internal", &remote, t)[0].code, Some("TCP-007"));
    }
}
