//! api stage: does `/v1/agent/self` answer as a Consul agent? Records version, datacenter, node
//! and server/client mode. A 403 there is an ACL matter (the token lacks `agent:read`), not an API
//! failure: the stage passes on what it can still learn and the acl stage judges the token.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::codes;
use crate::connection::{Scheme, Target};
use crate::consul::{ConsulClient, HttpFailure, Reply};
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::CheckResult;

pub const CHECKS: &[&str] = &["api.agent", "api.datacenter"];

/// What `/v1/agent/self` told about the agent.
#[derive(Debug, Clone, Default)]
pub struct AgentSelf {
    pub version: String,
    pub datacenter: String,
    pub node: String,
    /// `Config.NodeID`: the identity the agent registers its node with.
    pub node_id: String,
    pub server: bool,
    pub tags: BTreeMap<String, String>,
    pub acls_enabled: Option<bool>,
    pub acl_default_policy: Option<String>,
    pub known_servers: Option<u32>,
    pub bootstrap_expect: Option<u32>,
    /// The node's gossip address (`Member.Addr`), the default service address.
    pub addr: Option<String>,
    /// `http_config.allow_write_http_from` (CIDRs; empty: writes from anywhere).
    pub allow_write_from: Vec<String>,
    /// `http_config.block_endpoints` (path prefixes).
    pub block_endpoints: Vec<String>,
    /// The DNS interface and `dns_config` (for the discovery stage).
    pub dns: Option<super::discovery::AgentDns>,
    /// `enable_script_checks` (any registration) and `enable_local_script_checks`
    /// (configuration files only), when the agent shows them.
    pub script_checks: Option<ScriptChecks>,
}

/// Whether this agent runs script (and Docker) checks, and from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptChecks {
    pub remote: bool,
    pub local: bool,
}

impl AgentSelf {
    /// Reads the fields the doctor uses; `None` when the JSON is not Consul's.
    pub fn from_json(v: &Value) -> Option<AgentSelf> {
        let config = v.get("Config")?.as_object()?;
        let version = config.get("Version")?.as_str()?.trim().to_string();
        let s = |o: &serde_json::Map<String, Value>, k: &str| {
            o.get(k).and_then(Value::as_str).map(|x| x.trim().to_string())
        };
        let tags: BTreeMap<String, String> = v
            .pointer("/Member/Tags")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
            .unwrap_or_default();
        let debug = v.get("DebugConfig").and_then(Value::as_object);
        Some(AgentSelf {
            version,
            datacenter: s(config, "Datacenter").unwrap_or_default(),
            node: s(config, "NodeName").unwrap_or_default(),
            node_id: s(config, "NodeID").unwrap_or_default(),
            server: config.get("Server").and_then(Value::as_bool).unwrap_or(false),
            acls_enabled: debug.and_then(|d| d.get("ACLsEnabled")).and_then(Value::as_bool),
            // 1.8: DebugConfig.ACLDefaultPolicy; later under ACLResolverSettings (consul_facts).
            acl_default_policy: crate::consul_facts::DEBUG_ACL_DEFAULT_POLICY_PATHS
                .iter()
                .find_map(|p| v.pointer(p).and_then(Value::as_str))
                .map(|x| x.trim().to_string()),
            known_servers: v
                .pointer("/Stats/consul/known_servers")
                .and_then(Value::as_str)
                .and_then(|x| x.parse().ok()),
            bootstrap_expect: tags.get("expect").and_then(|x| x.parse().ok()),
            addr: v.pointer("/Member/Addr").and_then(Value::as_str).map(str::to_string),
            allow_write_from: strings(debug.and_then(|d| d.get("AllowWriteHTTPFrom"))),
            block_endpoints: strings(debug.and_then(|d| d.get("HTTPBlockEndpoints"))),
            script_checks: debug.and_then(|d| {
                Some(ScriptChecks {
                    remote: d.get("EnableRemoteScriptChecks")?.as_bool()?,
                    local: d.get("EnableLocalScriptChecks")?.as_bool()?,
                })
            }),
            dns: debug.and_then(super::discovery::AgentDns::from_debug),
            tags,
        })
    }

    pub fn mode(&self) -> &'static str {
        if self.server {
            "server"
        } else {
            "client"
        }
    }
}

/// The API client for the connection the tcp and tls stages judged: built once, by the api
/// stage or by the first stage asking ahead of it (`stages::early_get`); handed to the later
/// stages (`Facts::client`) only by the api stage.
pub fn client_for(ctx: &Ctx<'_>) -> Result<crate::consul::SharedClient, String> {
    let reachable = ctx.facts().reachable.clone();
    client_pinned_to(ctx, &reachable)
}

/// [`client_for`], pinned to `addrs` when it is built now.
fn client_pinned_to(ctx: &Ctx<'_>, addrs: &[std::net::SocketAddr]) -> Result<crate::consul::SharedClient, String> {
    if let Some(c) = ctx.facts().early_client.clone() {
        return Ok(c);
    }
    let conn = ctx.conn().ok_or_else(|| "no usable address".to_string())?;
    let client = Arc::new(ConsulClient::new(&conn, ctx.inputs.consul.http_auth.as_ref(), addrs, ctx.inputs.timeout)?);
    ctx.facts().early_client = Some(client.clone());
    Ok(client)
}

/// `/v1/agent/self`, asked as soon as the dns stage named the address (`pipeline::Early`):
/// beside the tcp stage's probe instead of after it, since it is the slowest read of the run and
/// everything after the api stage waits for it. Only where asking early changes nothing but the
/// time: plain HTTP to exactly one address (the one the tcp stage probes and the client would
/// be pinned to) on loopback, so whatever listens there (an HTTPS port, another program) the
/// token and credentials never leave this host. When the tcp or tls stage fails the answer is
/// dropped unread; a connection the agent refused is asked again by the stage.
pub fn ask_early(ctx: &Ctx<'_>) {
    let Some(conn) = ctx.conn() else { return };
    let addrs = ctx.facts().addrs.clone();
    if may_ask_before_tcp(&conn.target, &addrs) && client_pinned_to(ctx, &addrs).is_ok() {
        super::early_get(ctx, AGENT_SELF.to_string());
    }
}

/// See [`ask_early`]: plain HTTP, one address, loopback.
fn may_ask_before_tcp(target: &Target, addrs: &[std::net::SocketAddr]) -> bool {
    matches!(target, Target::Tcp { scheme: Scheme::Http, .. }) && matches!(addrs, [one] if one.ip().is_loopback())
}

const AGENT_SELF: &str = "/v1/agent/self";

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        if ctx.conn().is_none() {
            return vec![CheckResult::skipped("api.agent", "no usable address")];
        }
        let timeout = ctx.inputs.timeout;
        let client = match client_for(ctx) {
            Ok(c) => c,
            Err(e) => {
                return vec![
                    CheckResult::finding(
                        codes::API_TIMEOUT,
                        "api.agent",
                        format!("cannot build the HTTP client: {e}"),
                        "check the token and TLS inputs",
                    ),
                    CheckResult::blocked("api.datacenter", codes::API_TIMEOUT.code),
                ]
            }
        };
        ctx.facts().client = Some(client.clone());
        let url = client.url(AGENT_SELF);
        let reply = match super::get(ctx, &client, AGENT_SELF).await {
            // Asked ahead of the tcp stage: an agent that began listening in between (`wait`,
            // `--wait` right after a start) is asked again.
            Err(HttpFailure::Connect(_)) => client.get(AGENT_SELF).await,
            reply => reply,
        };
        if let Ok(r) = &reply {
            if let Some(p) = r.header(crate::consul_facts::DEFAULT_ACL_POLICY_HEADER) {
                ctx.facts().default_acl_policy = Some(p);
            }
        }
        let (mut result, agent) = judge_agent_self(&url, &reply, timeout);
        if let Ok(r) = &reply {
            result.elapsed_ms = super::ms(r.elapsed);
            result = result.with("http_status", r.status.to_string());
        }
        result = result.with("request", format!("GET {url}"));
        let failed = result.status == crate::report::Status::Fail;
        let code = result.code;
        let mut results = vec![result];
        if let Some(a) = &agent {
            let mut f = ctx.facts();
            f.summary.version = Some(a.version.clone());
            f.summary.datacenter = Some(a.datacenter.clone());
            f.summary.node = Some(a.node.clone());
            f.summary.mode = Some(a.mode().to_string());
            f.agent = Some(a.clone());
        }
        if failed {
            results.push(CheckResult::blocked("api.datacenter", code.unwrap_or("API-001")));
            return results;
        }
        let local_ip = ctx.facts().local_ip;
        if let (Some(a), Some(ip)) = (agent.as_ref(), local_ip) {
            if let Some(r) = judge_write_access(a, ip) {
                results.push(r);
            }
        }
        let (scope_results, scope) = {
            let c = &ctx.inputs.consul;
            fn given(s: &Option<crate::inputs::Sourced<String>>) -> Option<(&str, String)> {
                s.as_ref().map(|s| (s.value.as_str(), s.source.describe()))
            }
            // Without --namespace/--partition, the definitions' own (when they agree) scope the run.
            let services = ctx.facts().services.clone();
            let from_defs = |pick: fn(&crate::service::ServiceDef) -> Option<&String>| {
                let mut seen = services.iter().filter_map(|s| pick(&s.def).map(|v| (v.clone(), s.def.label.clone())));
                let first = seen.next()?;
                seen.all(|(v, _)| v == first.0).then_some(first)
            };
            let ns_def = from_defs(|d| d.namespace.as_ref());
            let part_def = from_defs(|d| d.partition.as_ref());
            judge_scope(
                given(&c.namespace).or(ns_def.as_ref().map(|(v, l)| (v.as_str(), format!("definition {l}")))),
                given(&c.partition).or(part_def.as_ref().map(|(v, l)| (v.as_str(), format!("definition {l}")))),
                given(&c.peer),
                agent.as_ref(),
            )
        };
        client.set_scope(scope);
        results.extend(scope_results);
        results.push(check_datacenter(ctx, &client, agent.as_ref()).await);
        results
    })
}

/// Judges the `/v1/agent/self` answer.
pub fn judge_agent_self(
    url: &str,
    reply: &Result<Reply, HttpFailure>,
    timeout: std::time::Duration,
) -> (CheckResult, Option<AgentSelf>) {
    let r = match reply {
        Err(f) => {
            return (
                CheckResult::finding(
                    codes::API_TIMEOUT,
                    "api.agent",
                    format!("GET {url}: {}", f.describe(timeout)),
                    "the agent accepted the connection but did not deliver a complete answer: check its load (consul monitor, agent log), a proxy in between, or raise --timeout",
                ),
                None,
            )
        }
        Ok(r) => r,
    };
    let body = r.snippet();
    match r.status {
        200..=299 => {
            let parsed: Result<Value, _> = crate::jsonclip::from_slice(&r.body);
            match parsed {
                Ok(v) => match AgentSelf::from_json(&v) {
                    Some(a) => {
                        let msg = format!("Consul {} {} agent, node {}, datacenter {}", a.version, a.mode(), a.node, a.datacenter);
                        (CheckResult::pass("api.agent", msg).with("version", a.version.clone()), Some(a))
                    }
                    None => (
                        CheckResult::finding(
                            codes::API_BAD_RESPONSE,
                            "api.agent",
                            format!("GET {url} returned JSON without Consul's Config.Version: {body}"),
                            "something other than a Consul agent (or a proxy rewriting answers) serves this address; point --http-addr at the agent's HTTP port",
                        ),
                        None,
                    ),
                },
                Err(e) if r.is_json() || body.starts_with('{') || body.starts_with('[') => (
                    CheckResult::finding(
                        codes::API_BAD_RESPONSE,
                        "api.agent",
                        format!("GET {url} returned invalid JSON ({e}): {body}"),
                        "a proxy or a broken agent mangles the answer: query the agent directly with curl and check the agent log",
                    ),
                    None,
                ),
                Err(_) => (not_consul(url, r, &body), None),
            }
        }
        // An unknown token: no grant would help it (the acl stage reports ACL-002).
        403 if body.contains("ACL not found") => (
            CheckResult::not_judged(
                "api.agent",
                format!("the agent answered 403 \"{body}\": the cluster does not know the token, so the agent's version, node and settings are unknown; the acl stage judges the token"),
            )
            .with("request", format!("GET {url}"))
            .with("status", "403"),
            None,
        ),
        403 if body.contains("Permission denied") => (
            CheckResult::not_judged(
                "api.agent",
                format!("the agent answered 403 \"{body}\": the token may not read agent:read, so the agent's version, node and settings are unknown; the acl stage judges the token"),
            )
            .with("request", format!("GET {url}"))
            .with("status", "403")
            .with(crate::report::READ_GRANT, "agent_prefix \"\" { policy = \"read\" }"),
            None,
        ),
        403 if body.contains("Endpoint is blocked by agent configuration") || body.contains("Access is restricted") => (
            CheckResult::finding(
                codes::API_BLOCKED,
                "api.agent",
                format!("GET {url}: 403 \"{body}\"; the agent's http_config blocks it, so version and node are unknown"),
                "remove /v1/agent/self from http_config.block_endpoints (or allow this host in allow_write_http_from) if the doctor should see the agent's identity",
            ),
            None,
        ),
        500..=599 => (
            CheckResult::finding(
                codes::API_SERVER_ERROR,
                "api.agent",
                format!("GET {url}: {} \"{body}\"", r.status),
                "read the agent log around this time (journalctl -u consul, or consul monitor -log-level=debug) and restart the agent if it is wedged",
            ),
            None,
        ),
        _ => (not_consul(url, r, &body), None),
    }
}

fn not_consul(url: &str, r: &Reply, body: &str) -> CheckResult {
    if r.status == 401 || r.status == 407 {
        let challenge = r.header("www-authenticate").or_else(|| r.header("proxy-authenticate")).unwrap_or_default();
        if challenge.to_ascii_lowercase().starts_with("basic") || r.status == 407 {
            return CheckResult::finding(
                codes::API_PROXY_AUTH,
                "api.agent",
                format!("GET {url} answered {} with the challenge {challenge:?}: something in front of the agent asks for HTTP Basic credentials (Consul itself never does)", r.status),
                "set CONSUL_HTTP_AUTH=user:password (the Consul CLI and Go clients send it as Basic auth), or reach the agent without the proxy",
            );
        }
    }
    let server = r.header("server").map(|s| format!(", Server: {s}")).unwrap_or_default();
    let location = r.header("location").map(|s| format!(", redirect to {s}")).unwrap_or_default();
    CheckResult::finding(
        codes::API_NOT_CONSUL,
        "api.agent",
        format!("GET {url} answered {}{server}{location}, not as a Consul agent: {body}", r.status),
        "another HTTP server holds this address: point --http-addr / CONSUL_HTTP_ADDR at the agent's ports.http (8500) or ports.https (8501); behind a reverse proxy, include its path prefix (http://proxy/consul)",
    )
}

async fn check_datacenter(ctx: &Ctx<'_>, client: &ConsulClient, agent: Option<&AgentSelf>) -> CheckResult {
    let Some(dc) = ctx.datacenter() else {
        return CheckResult::pass(
            "api.datacenter",
            match agent {
                Some(a) => format!("using the agent's datacenter {}", a.datacenter),
                None => "using the agent's own datacenter".to_string(),
            },
        );
    };
    if agent.is_some_and(|a| a.datacenter == dc) {
        return CheckResult::pass("api.datacenter", format!("{dc} is the agent's datacenter"));
    }
    match client.get("/v1/catalog/datacenters").await {
        Ok(r) if r.status == 200 => match r.json::<Vec<String>>() {
            Ok(list) if list.iter().any(|d| d == dc) => {
                CheckResult::pass("api.datacenter", format!("{dc} is a known datacenter ({})", list.join(", ")))
            }
            Ok(list) => CheckResult::finding(
                codes::API_UNKNOWN_DC,
                "api.datacenter",
                format!(
                    "datacenter {dc:?} is unknown; the cluster knows {}",
                    if list.is_empty() { "none".into() } else { list.join(", ") }
                ),
                format!(
                    "correct --datacenter (one of: {}), or WAN-join {dc}'s servers: consul join -wan <server-of-{dc}>",
                    list.join(", ")
                ),
            )
            .with("known", list.join(",")),
            Err(e) => CheckResult::skipped("api.datacenter", format!("cannot read /v1/catalog/datacenters: {e}")),
        },
        Ok(r) => CheckResult::not_judged(
            "api.datacenter",
            format!("cannot list datacenters ({} {}); the leader stage checks the path to {dc}", r.status, r.snippet()),
        ),
        Err(e) => {
            CheckResult::skipped("api.datacenter", format!("cannot list datacenters: {}", e.describe(client.timeout)))
        }
    }
}

/// A scope input and where it came from (`flag`, `env CONSUL_NAMESPACE`, `definition web.json`).
pub type ScopeInput<'a> = Option<(&'a str, String)>;

/// The run's namespace, partition and peer against what this agent can take (the facts
/// table): what the client will carry, and the findings for inputs it cannot. Namespaces and
/// partitions on an OSS agent are API-007 (the Consul CLI and Go clients would send them and fail
/// every request; the doctor does not send them); a peer on an agent without peering (before 1.13)
/// is API-010 (it ignores `?peer=` and answers with local instances: observed on 1.8.7).
pub fn judge_scope(
    namespace: ScopeInput<'_>,
    partition: ScopeInput<'_>,
    peer: ScopeInput<'_>,
    agent: Option<&AgentSelf>,
) -> (Vec<CheckResult>, crate::consul::Scope) {
    use crate::consul_facts::{scope_support, ConsulVersion, Support, NAMESPACE_PARAM, PARTITION_PARAM, PEER_PARAM};
    let wanted = crate::consul::Scope {
        namespace: namespace.as_ref().map(|(v, _)| v.to_string()),
        partition: partition.as_ref().map(|(v, _)| v.to_string()),
        peer: peer.as_ref().map(|(v, _)| v.to_string()),
    };
    let Some(a) = agent else {
        // Version unknown (agent:read denied): carry what the operator asked for.
        return (Vec::new(), wanted);
    };
    let Some(mut v) = ConsulVersion::parse(&a.version) else {
        return (Vec::new(), wanted);
    };
    v.enterprise = crate::consul_facts::edition_of(&a.version, a.tags.get("build").map(String::as_str))
        == crate::consul_facts::Edition::Enterprise;
    let mut out = Vec::new();
    let mut scope = wanted.clone();
    let mut set = Vec::new();
    if let Some((ns, origin)) = &namespace {
        if scope_support(NAMESPACE_PARAM, &v) == Support::No {
            let effect = match origin.starts_with("definition") {
                true => "Consul answers 400: Request decode failed: json: unknown field \"Namespace\"",
                false => "Consul answers 400: Bad request: Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature",
            };
            set.push(format!("namespace {ns:?} ({origin}; {effect})"));
            scope.namespace = None;
        }
    }
    if let Some((p, origin)) = &partition {
        if scope_support(PARTITION_PARAM, &v) == Support::No {
            let effect = if origin.starts_with("definition") {
                "Consul answers 400: Request decode failed: json: unknown field \"Partition\""
            } else if v.at_least((1, 11, 0)) {
                "Consul answers 400: Invalid query parameter: \"partition\" - Partitions are a Consul Enterprise feature"
            } else {
                "this version ignores ?partition= and answers for its own partition (observed on 1.8.7)"
            };
            set.push(format!("partition {p:?} ({origin}; {effect})"));
            scope.partition = None;
        }
    }
    if !set.is_empty() {
        out.push(CheckResult::finding(
            codes::API_ENTERPRISE_ONLY,
            "api.agent",
            format!(
                "this agent runs Consul OSS {}, but {} is set: the Consul CLI and Go clients add it to every request and every request fails; the doctor asked without it",
                a.version,
                set.join(" and ")
            ),
            match set.iter().any(|s| s.contains("(definition ")) {
                true => "remove the Namespace / Partition fields from the service definition for this cluster: namespaces and partitions only exist in Consul Enterprise",
                false => "unset CONSUL_NAMESPACE / CONSUL_PARTITION (and drop --namespace / --partition) for this cluster: namespaces and partitions only exist in Consul Enterprise",
            },
        ));
    }
    if let Some((p, origin)) = &peer {
        if scope_support(PEER_PARAM, &v) == Support::No {
            out.push(CheckResult::finding(
                codes::API_NO_PEERING,
                "api.agent",
                format!(
                    "this agent runs Consul {}, which has no cluster peering (1.13+), but peer {p:?} is given ({origin}): it ignores ?peer= and answers with this cluster's own instances, so nothing it says is about the peer",
                    a.version
                ),
                "peering needs Consul 1.13 or newer on the servers and this agent; until then, query the other cluster directly (its own agent) or use WAN federation (?dc=)",
            ));
            scope.peer = None;
        }
    }
    (out, scope)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Will the agent accept a registration (a PUT) from this host at all?
pub fn judge_write_access(a: &AgentSelf, local_ip: std::net::IpAddr) -> Option<CheckResult> {
    const REGISTER: &str = "/v1/agent/service/register";
    if let Some(block) = a.block_endpoints.iter().find(|b| !b.is_empty() && REGISTER.starts_with(b.as_str())) {
        return Some(CheckResult::finding(
            codes::API_WRITES_REFUSED,
            "api.agent",
            format!("the agent's http_config.block_endpoints contains {block:?}: every registration through this agent's HTTP API gets 403 \"Endpoint is blocked by agent configuration\""),
            format!("remove {block:?} from http_config.block_endpoints on this agent and reload it, or register through another agent"),
        ));
    }
    if a.allow_write_from.is_empty() {
        return None;
    }
    let allowed = a.allow_write_from.iter().any(|cidr| cidr_contains(cidr, local_ip));
    if allowed {
        return None;
    }
    Some(CheckResult::finding(
        codes::API_WRITES_REFUSED,
        "api.agent",
        format!(
            "the agent accepts writes only from {} (http_config.allow_write_http_from), and this host connects from {local_ip}: registrations get 403 \"Access is restricted\" while reads work",
            a.allow_write_from.join(", ")
        ),
        format!("add {local_ip}/32 (or the service hosts' network) to http_config.allow_write_http_from on the agent and reload it, or register from an allowed host"),
    ))
}

/// `10.0.0.0/8` or `fd00::/8` (a bare address counts as /32 or /128).
pub fn cidr_contains(cidr: &str, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        (IpAddr::V4(n), IpAddr::V6(i)) => {
            i.to_ipv4_mapped().is_some_and(|m| cidr_contains(&format!("{n}/{}", bits.unwrap_or(32)), IpAddr::V4(m)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_self_goes_out_before_the_tcp_stage_only_where_nothing_can_leave_the_host() {
        let tcp =
            |scheme, host: &str| Target::Tcp { scheme, host: host.into(), port: 8500, path_prefix: String::new() };
        let at = |a: &str| vec![a.parse::<std::net::SocketAddr>().unwrap()];
        assert!(may_ask_before_tcp(&tcp(Scheme::Http, "127.0.0.1"), &at("127.0.0.1:8500")));
        assert!(may_ask_before_tcp(&tcp(Scheme::Http, "localhost"), &at("[::1]:8500")));
        // Another host: the token would cross the network before the tls stage said whether
        // the port speaks HTTPS (TLS-006) or whatever else listens there.
        assert!(!may_ask_before_tcp(&tcp(Scheme::Http, "10.0.0.5"), &at("10.0.0.5:8500")));
        // HTTPS: nothing is sent before the tls stage verified the certificate.
        assert!(!may_ask_before_tcp(&tcp(Scheme::Https, "127.0.0.1"), &at("127.0.0.1:8501")));
        // Several addresses: the tcp stage picks the reachable ones the client is pinned to.
        let two = vec!["127.0.0.1:8500".parse().unwrap(), "[::1]:8500".parse().unwrap()];
        assert!(!may_ask_before_tcp(&tcp(Scheme::Http, "localhost"), &two));
        assert!(!may_ask_before_tcp(&tcp(Scheme::Http, "localhost"), &[]));
        let unix = Target::Unix { path: "/run/consul.sock".into() };
        assert!(!may_ask_before_tcp(&unix, &at("127.0.0.1:8500")));
    }

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(cidr_contains("10.0.0.0/8", ip("10.2.3.4")));
        assert!(!cidr_contains("10.0.0.0/8", ip("127.0.0.1")));
        assert!(cidr_contains("127.0.0.1", ip("127.0.0.1")));
        assert!(cidr_contains("0.0.0.0/0", ip("192.0.2.1")));
        assert!(cidr_contains("fd00::/8", ip("fd12::1")));
        assert!(!cidr_contains("garbage", ip("10.0.0.1")));
    }
}
