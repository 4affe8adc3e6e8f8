//! dns stage: does the agent's host name resolve, through the system configuration or through
//! `--dns-server`? IP literals and unix sockets need no lookup. NXDOMAIN, "no address records",
//! timeouts and server failures are different findings.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::Resolver;

use crate::codes;
use crate::connection::Target;
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::CheckResult;

pub const CHECKS: &[&str] = &["dns.resolve"];

/// What a lookup produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Addresses(Vec<IpAddr>),
    NxDomain,
    NoRecords,
    Timeout,
    ServerError(String),
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let Some(conn) = ctx.conn() else {
            return vec![CheckResult::skipped("dns.resolve", "no usable address")];
        };
        let (host, port) = match &conn.target {
            Target::Unix { path } => {
                return vec![CheckResult::pass("dns.resolve", format!("not needed: unix socket {}", path.display()))];
            }
            Target::Tcp { host, port, .. } => (host.clone(), *port),
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            ctx.facts().addrs = vec![SocketAddr::new(ip, port)];
            return vec![CheckResult::pass("dns.resolve", format!("not needed: {host} is an IP address"))];
        }
        let server = ctx.inputs.dns_server;
        let via = match server {
            Some(s) => format!("DNS server {s}"),
            None => "the system resolver configuration".to_string(),
        };
        let start = Instant::now();
        let lookup = resolve(&host, server, ctx.inputs.timeout).await;
        let took = start.elapsed();
        let result = judge(&host, &via, &lookup, ctx.inputs.timeout);
        if let Lookup::Addresses(ips) = &lookup {
            ctx.facts().addrs = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        }
        let mut r = result.with("resolver", via);
        r.elapsed_ms = super::ms(took);
        vec![r]
    })
}

/// Looks `host` up, bounded by `timeout` overall.
pub async fn resolve(host: &str, server: Option<SocketAddr>, timeout: Duration) -> Lookup {
    let resolver = match build_resolver(server, false, timeout) {
        Ok(r) => r,
        Err(e) => return Lookup::ServerError(e),
    };
    let name = if host.ends_with('.') || !host.contains('.') { host.to_string() } else { format!("{host}.") };
    // A+AAAA may take two round trips; bound the whole lookup.
    match tokio::time::timeout(timeout + timeout / 2, resolver.lookup_ip(name.as_str())).await {
        Err(_) => Lookup::Timeout,
        Ok(Ok(ips)) => {
            let list: Vec<IpAddr> = ips.iter().collect();
            if list.is_empty() {
                Lookup::NoRecords
            } else {
                Lookup::Addresses(list)
            }
        }
        Ok(Err(e)) => classify(&e),
    }
}

/// A resolver without cache or retries: through `server` (UDP then TCP, or TCP only), or
/// through the system configuration (and the hosts file) when no server is given.
pub fn build_resolver(
    server: Option<SocketAddr>,
    tcp_only: bool,
    timeout: Duration,
) -> Result<Resolver<TokioRuntimeProvider>, String> {
    let mut builder = match server {
        Some(sa) => {
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = sa.port();
            let connections = if tcp_only {
                vec![tcp]
            } else {
                let mut udp = ConnectionConfig::udp();
                udp.port = sa.port();
                vec![udp, tcp]
            };
            let ns = NameServerConfig::new(sa.ip(), true, connections);
            Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), TokioRuntimeProvider::default())
        }
        None => Resolver::builder_tokio().map_err(|e| format!("cannot read the system resolver configuration: {e}"))?,
    };
    {
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.cache_size = 0;
        opts.use_hosts_file = if server.is_some() { ResolveHosts::Never } else { ResolveHosts::Always };
    }
    builder.build().map_err(|e| e.to_string())
}

pub(crate) fn classify(e: &NetError) -> Lookup {
    match e {
        NetError::Timeout => Lookup::Timeout,
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain => Lookup::NxDomain,
            ResponseCode::NoError => Lookup::NoRecords,
            code => Lookup::ServerError(format!("{code}")),
        },
        NetError::Dns(DnsError::ResponseCode(code)) => Lookup::ServerError(format!("{code}")),
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Lookup::Timeout,
        other => {
            let text = other.to_string();
            if text.contains("timed out") {
                Lookup::Timeout
            } else {
                Lookup::ServerError(text)
            }
        }
    }
}

/// Turns a lookup into the check result.
pub fn judge(host: &str, via: &str, lookup: &Lookup, timeout: Duration) -> CheckResult {
    let consul_name = host.trim_end_matches('.').ends_with(".consul");
    let consul_hint = if consul_name {
        "; a *.consul name resolves only where .consul is forwarded to Consul's DNS interface (port 8600): use --dns-server 127.0.0.1:8600 to test that, or address the agent by IP"
    } else {
        ""
    };
    match lookup {
        Lookup::Addresses(ips) => CheckResult::pass(
            "dns.resolve",
            format!("{host} resolves to {} (via {via})", ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
        )
        .with("addresses", ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
        Lookup::NxDomain => CheckResult::finding(
            codes::DNS_NXDOMAIN,
            "dns.resolve",
            format!("{host} does not exist: NXDOMAIN from {via}"),
            format!("correct the host in --http-addr / CONSUL_HTTP_ADDR (typo?), add the record to DNS or /etc/hosts, or use the agent's IP{consul_hint}"),
        ),
        Lookup::NoRecords => CheckResult::finding(
            codes::DNS_NO_ADDRESS,
            "dns.resolve",
            format!("{host} exists but has no A or AAAA record (via {via})"),
            format!("add an A/AAAA record for {host}, or use the agent's IP address{consul_hint}"),
        ),
        Lookup::Timeout => CheckResult::finding(
            codes::DNS_TIMEOUT,
            "dns.resolve",
            format!("no DNS answer for {host} within {} from {via}", super::fmt_timeout(timeout)),
            "check that the resolver in /etc/resolv.conf (or --dns-server) is running and reachable on port 53/udp and 53/tcp, or use the agent's IP address",
        ),
        Lookup::ServerError(e) => CheckResult::finding(
            codes::DNS_SERVER_ERROR,
            "dns.resolve",
            format!("{via} failed to resolve {host}: {e}"),
            format!("check the DNS server's logs and forwarding for this zone; Consul's DNS refuses names outside .consul unless `recursors` is set{consul_hint}"),
        ),
    }
}
