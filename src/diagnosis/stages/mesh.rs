//! mesh stage: a service in the Connect service mesh is reachable only through its sidecar
//! proxy (or its own mTLS, when Connect-native). The commonest "registered but unreachable"
//! failure of a meshed service is a sidecar that is registered while nothing listens on its
//! port: the service passes, and every consumer in the mesh fails. This stage asks what a proxy
//! and a mesh consumer need, read-only:
//!
//! - Connect on the agent (`/v1/agent/self` `DebugConfig.ConnectEnabled`) and on the servers
//!   (`/v1/connect/ca/roots`);
//! - the sidecar: registered on this agent, pointing at the service's port, in the catalog; its
//!   checks with the agent's output;
//! - the gRPC (xDS) port Envoy needs (`DebugConfig.GRPCPort`; `xDS.Ports` on 1.14+);
//! - upstreams (exist, have passing connect-capable instances, distinct bind ports) and
//!   intentions (each upstream, and `--from NAME`);
//! - what consumers see: `/v1/health/connect/NAME?passing` and `NAME.connect` DNS.
//!
//! Envoy's bootstrap is judged from the HTTP API rather than by running `consul connect envoy
//! -bootstrap`: that command reads exactly the sidecar registration (`/v1/agent/services`,
//! `/v1/agent/service/<id>`) and the agent's gRPC port (`/v1/agent/self`), never dials the gRPC
//! port in bootstrap mode (source: command/connect/envoy/envoy.go `templateArgs`), and writes
//! the ACL token into its output; the doctor reads the same endpoints, dials the port itself,
//! and needs neither a `consul` binary nor the token in a child process.
//!
//! [`gather`] helpers do the I/O; every `judge_*` function is pure.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::rr::RecordType;
use serde_json::{Map, Value};

use crate::codes;
use crate::consul::{urlencode, SharedClient};
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::CheckResult;

pub const CHECKS: &[&str] = &[
    "mesh.connect",
    "mesh.sidecar",
    "mesh.proxy",
    "mesh.xds",
    "mesh.upstreams",
    "mesh.intentions",
    "mesh.consumers",
    "mesh.dns",
];

// ---------------------------------------------------------------------------------------------
// The model

/// Keys compared the way Consul's decoder does: case, `_` and `-` do not matter.
fn norm(key: &str) -> String {
    key.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let n = norm(name);
    m.iter().find(|(k, _)| norm(k) == n).map(|(_, v)| v)
}

/// An HCL block is an object, or a list of objects when repeated.
fn objects(v: Option<&Value>) -> Vec<&Map<String, Value>> {
    match v {
        Some(Value::Object(o)) => vec![o],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    }
}

fn first_object(v: Option<&Value>) -> Option<&Map<String, Value>> {
    objects(v).into_iter().next()
}

fn get_str(m: &Map<String, Value>, name: &str) -> Option<String> {
    field(m, name).and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty())
}

fn get_i64(m: &Map<String, Value>, name: &str) -> Option<i64> {
    field(m, name).and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
}

/// One upstream of a sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    pub datacenter: Option<String>,
    /// `LocalBindAddress`, 127.0.0.1 when unset (as the proxies bind it).
    pub bind_address: String,
    pub bind_port: i64,
}

impl Upstream {
    pub fn bind(&self) -> String {
        format!("{}:{}", self.bind_address, self.bind_port)
    }
}

/// A sidecar's proxy settings, from a definition's `sidecar_service` or a registration's `Proxy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySpec {
    pub local_service_address: Option<String>,
    pub local_service_port: Option<i64>,
    pub upstreams: Vec<Upstream>,
    /// Why the proxy is meant to be Envoy (`envoy_*` config keys, an L7 protocol, expose paths).
    pub envoy_hints: Vec<String>,
}

fn proxy_spec(proxy: Option<&Map<String, Value>>) -> ProxySpec {
    let Some(p) = proxy else { return ProxySpec::default() };
    let upstreams = objects(field(p, "upstreams"))
        .into_iter()
        .filter(|u| get_str(u, "destination_type").is_none_or(|t| t == "service"))
        .filter_map(|u| {
            Some(Upstream {
                name: get_str(u, "destination_name")?,
                datacenter: get_str(u, "datacenter"),
                bind_address: get_str(u, "local_bind_address").unwrap_or_else(|| "127.0.0.1".into()),
                bind_port: get_i64(u, "local_bind_port").unwrap_or(0),
            })
        })
        .collect();
    let mut envoy_hints = Vec::new();
    if let Some(cfg) = first_object(field(p, "config")) {
        for (k, v) in cfg {
            if norm(k).starts_with("envoy") {
                envoy_hints.push(format!("config {k}"));
            }
            if norm(k) == "protocol" && v.as_str().is_some_and(|p| matches!(p, "http" | "http2" | "grpc")) {
                envoy_hints.push(format!("config protocol = {:?} (L7: Envoy only)", v.as_str().unwrap_or("")));
            }
        }
    }
    if let Some(expose) = first_object(field(p, "expose")) {
        let paths = objects(field(expose, "paths")).len();
        if paths > 0 || field(expose, "checks").and_then(Value::as_bool) == Some(true) {
            envoy_hints.push("expose (Envoy only)".into());
        }
    }
    ProxySpec {
        local_service_address: get_str(p, "local_service_address"),
        local_service_port: get_i64(p, "local_service_port"),
        upstreams,
        envoy_hints,
    }
}

/// What a definition's `connect` block asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshDef {
    pub native: bool,
    /// `sidecar_service { ... }` was given.
    pub sidecar: Option<SidecarDef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidecarDef {
    /// The sidecar's own ID when the definition sets one (default `<service ID>-sidecar-proxy`).
    pub id: Option<String>,
    pub port: Option<i64>,
    pub proxy: ProxySpec,
}

pub fn mesh_def(connect: &Value) -> MeshDef {
    let Some(c) = first_object(Some(connect)) else { return MeshDef::default() };
    let sidecar = field(c, "sidecar_service").map(|s| {
        let s = first_object(Some(s));
        SidecarDef {
            id: s.and_then(|s| get_str(s, "id")),
            port: s.and_then(|s| get_i64(s, "port")),
            proxy: proxy_spec(s.and_then(|s| first_object(field(s, "proxy")))),
        }
    });
    MeshDef { native: field(c, "native").and_then(Value::as_bool).unwrap_or(false), sidecar }
}

/// A `connect-proxy` registration (from `/v1/agent/services` or a catalog entry's `Service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    pub id: String,
    pub name: String,
    pub port: i64,
    pub address: String,
    pub destination_id: String,
    pub destination_name: String,
    pub proxy: ProxySpec,
}

pub fn sidecar_of(v: &Value) -> Option<Sidecar> {
    let m = v.as_object()?;
    if get_str(m, "Kind").as_deref() != Some("connect-proxy") {
        return None;
    }
    let proxy = first_object(field(m, "Proxy"));
    Some(Sidecar {
        id: get_str(m, "ID")?,
        name: get_str(m, "Service").unwrap_or_default(),
        port: get_i64(m, "Port").unwrap_or(0),
        address: get_str(m, "Address").unwrap_or_default(),
        destination_id: proxy.and_then(|p| get_str(p, "DestinationServiceID")).unwrap_or_default(),
        destination_name: proxy.and_then(|p| get_str(p, "DestinationServiceName")).unwrap_or_default(),
        proxy: proxy_spec(proxy),
    })
}

/// The sidecar on this agent for service `id`: the proxy whose destination is the service, or
/// the one with the sidecar ID the definition names.
pub fn find_sidecar(local: &Map<String, Value>, id: &str, wanted_id: Option<&str>) -> Option<Sidecar> {
    let all: Vec<Sidecar> = local.values().filter_map(sidecar_of).collect();
    all.iter()
        .find(|s| s.destination_id == id)
        .or_else(|| all.iter().find(|s| wanted_id.is_some_and(|w| s.id == w)))
        .cloned()
}

/// What `/v1/agent/self` says about Connect and gRPC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentMesh {
    pub node: String,
    pub version: String,
    /// `DebugConfig.ConnectEnabled` (None: not shown, e.g. no agent:read).
    pub connect_enabled: Option<bool>,
    /// `DebugConfig.GRPCPort` (-1 when disabled).
    pub grpc_port: Option<i64>,
    /// `DebugConfig.GRPCTLSPort` (1.14+).
    pub grpc_tls_port: Option<i64>,
    /// `xDS.Ports` (1.14+): (Plaintext, TLS).
    pub xds_ports: Option<(i64, i64)>,
    /// `DebugConfig.GRPCAddrs` (`tcp://IP:PORT`).
    pub grpc_addrs: Vec<String>,
    pub acls_enabled: bool,
    pub acl_default_deny: bool,
}

pub fn agent_mesh(v: &Value) -> AgentMesh {
    let d = v.get("DebugConfig").and_then(Value::as_object);
    let di = |k: &str| d.and_then(|d| d.get(k)).and_then(Value::as_i64);
    // 1.8 `ACLDefaultPolicy`; later versions moved it under `ACLResolverSettings`
    // (source: agent/config/runtime.go).
    let default_policy = d
        .and_then(|d| d.get("ACLDefaultPolicy"))
        .or_else(|| v.pointer("/DebugConfig/ACLResolverSettings/ACLDefaultPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let acls = d
        .and_then(|d| d.get("ACLsEnabled"))
        .or_else(|| v.pointer("/DebugConfig/ACLResolverSettings/ACLsEnabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    AgentMesh {
        node: v.pointer("/Config/NodeName").and_then(Value::as_str).unwrap_or("").to_string(),
        version: v.pointer("/Config/Version").and_then(Value::as_str).unwrap_or("").to_string(),
        connect_enabled: d.and_then(|d| d.get("ConnectEnabled")).and_then(Value::as_bool),
        grpc_port: di("GRPCPort"),
        grpc_tls_port: di("GRPCTLSPort"),
        xds_ports: v
            .pointer("/xDS/Ports")
            .and_then(|p| Some((p.get("Plaintext")?.as_i64().unwrap_or(0), p.get("TLS")?.as_i64().unwrap_or(0)))),
        grpc_addrs: d
            .and_then(|d| d.get("GRPCAddrs"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        acls_enabled: acls,
        acl_default_deny: acls && default_policy == "deny",
    }
}

/// The gRPC port a proxy would be given: (port, TLS).
pub fn grpc_port(a: &AgentMesh) -> Option<(i64, bool)> {
    if let Some((plain, tls)) = a.xds_ports {
        // The same preference as `consul connect envoy` (command/connect/envoy/envoy.go
        // lookupXDSPort): TLS first, then plaintext.
        if tls > 0 {
            return Some((tls, true));
        }
        if plain > 0 {
            return Some((plain, false));
        }
        return None;
    }
    if let Some(t) = a.grpc_tls_port.filter(|p| *p > 0) {
        return Some((t, true));
    }
    a.grpc_port.filter(|p| *p > 0).map(|p| (p, false))
}

/// One entry of `/v1/health/connect/NAME`: a sidecar (or native instance) and its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshEntry {
    pub node: String,
    pub node_address: String,
    pub service_id: String,
    pub kind: String,
    /// The service a sidecar stands for (its own ID for a native instance).
    pub destination_id: String,
    pub port: i64,
    pub passing: bool,
}

pub fn mesh_entries(list: &[Value]) -> Vec<MeshEntry> {
    list.iter()
        .filter_map(|e| {
            let node = e.pointer("/Node/Node")?.as_str()?.to_string();
            let svc = e.get("Service")?.as_object()?;
            let id = get_str(svc, "ID")?;
            let kind = get_str(svc, "Kind").unwrap_or_default();
            let destination_id = first_object(field(svc, "Proxy"))
                .and_then(|p| get_str(p, "DestinationServiceID"))
                .filter(|_| kind == "connect-proxy")
                .unwrap_or_else(|| id.clone());
            let passing = e
                .get("Checks")
                .and_then(Value::as_array)
                .is_none_or(|cs| cs.iter().all(|c| c.get("Status").and_then(Value::as_str) == Some("passing")));
            Some(MeshEntry {
                node,
                node_address: e.pointer("/Node/Address").and_then(Value::as_str).unwrap_or("").to_string(),
                service_id: id,
                kind,
                destination_id,
                port: get_i64(svc, "Port").unwrap_or(0),
                passing,
            })
        })
        .collect()
}

/// A check of the sidecar as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyCheck {
    pub name: String,
    pub kind: String,
    pub status: String,
    pub output: String,
}

pub fn proxy_checks(agent_checks: &Map<String, Value>, sidecar_id: &str) -> Vec<ProxyCheck> {
    let mut out: Vec<(String, ProxyCheck)> = agent_checks
        .values()
        .filter(|c| c.get("ServiceID").and_then(Value::as_str) == Some(sidecar_id))
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (
                s("CheckID"),
                ProxyCheck {
                    name: s("Name"),
                    kind: s("Type"),
                    status: s("Status"),
                    output: crate::clip::clip_to(s("Output").trim(), 300).into_owned(),
                },
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, c)| c).collect()
}

// ---------------------------------------------------------------------------------------------
// The commands in fixes

/// The Consul CLI flags the doctor was given for the agent (never the token: only where it
/// comes from).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliFlags {
    pub flags: Vec<String>,
    /// How the proxy gets its token, when the doctor was given one.
    pub token_hint: Option<String>,
}

fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@=,+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn cli_flags(inputs: &crate::inputs::Inputs) -> CliFlags {
    let c = &inputs.consul;
    let mut flags = vec![format!("-http-addr={}", shell_word(&c.http_addr.value))];
    let path = |name: &str, p: &Option<crate::inputs::Sourced<std::path::PathBuf>>| {
        p.as_ref().map(|p| format!("-{name}={}", shell_word(&p.value.display().to_string())))
    };
    flags.extend(path("ca-file", &c.ca_file));
    flags.extend(path("ca-path", &c.ca_path));
    flags.extend(path("client-cert", &c.client_cert));
    flags.extend(path("client-key", &c.client_key));
    if let Some(n) = &c.tls_server_name {
        flags.push(format!("-tls-server-name={}", shell_word(&n.value)));
    }
    let token_hint = match (&c.token_file, &c.token) {
        (Some(f), _) => {
            flags.push(format!("-token-file={}", shell_word(&f.value.display().to_string())));
            None
        }
        (None, Some(t)) => Some(match t.source {
            crate::inputs::Source::Env(var) => format!("with {var} set as for the doctor"),
            _ => "with CONSUL_HTTP_TOKEN set to the token given with --token".to_string(),
        }),
        (None, None) => None,
    };
    CliFlags { flags, token_hint }
}

/// Which proxy the fix starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Envoy,
    BuiltIn,
}

/// The command that starts the proxy for this sidecar.
pub fn proxy_command(kind: ProxyKind, service_id: &str, cli: &CliFlags, grpc: Option<&str>) -> String {
    let mut words = vec!["consul".to_string(), "connect".into()];
    words.push(match kind {
        ProxyKind::Envoy => "envoy".into(),
        ProxyKind::BuiltIn => "proxy".into(),
    });
    words.push(format!("-sidecar-for={}", shell_word(service_id)));
    words.extend(cli.flags.iter().cloned());
    if let (ProxyKind::Envoy, Some(g)) = (kind, grpc) {
        words.push(format!("-grpc-addr={}", shell_word(g)));
    }
    let mut cmd = words.join(" ");
    if let Some(hint) = &cli.token_hint {
        cmd.push_str(&format!(" ({hint}; it needs service:write on the service)"));
    }
    cmd
}

// ---------------------------------------------------------------------------------------------
// Judging (pure)

/// Connect on the agent and on the servers.
pub fn judge_connect(l: &str, a: &AgentMesh, roots: &Result<usize, String>) -> CheckResult {
    if a.connect_enabled == Some(false) {
        return CheckResult::finding(
            codes::MSH_AGENT_DISABLED,
            "mesh.connect",
            format!("{l}: Connect is disabled on agent {} (DebugConfig.ConnectEnabled false): the sidecar can register but never gets a certificate or its configuration", a.node),
            "add connect { enabled = true } (and ports { grpc = 8502 } for Envoy) to the agent configuration and restart the agent",
        )
        .with("agent", a.node.clone());
    }
    match roots {
        Err(why) if why.contains("Connect must be enabled") => CheckResult::finding(
            codes::MSH_SERVERS_DISABLED,
            "mesh.connect",
            format!("{l}: {why}: the servers do not run Connect (the agent {} does), so no certificate can be signed", a.node),
            "add connect { enabled = true } to every server's configuration and restart the servers one at a time; then curl /v1/connect/ca/roots lists a root",
        ),
        Err(why) => CheckResult::finding(
            codes::MSH_UNREADABLE,
            "mesh.connect",
            format!("{l}: {why}"),
            "query it by hand (curl -sv <agent>/v1/connect/ca/roots) and read the servers' logs",
        ),
        Ok(0) => CheckResult::finding(
            codes::MSH_SERVERS_DISABLED,
            "mesh.connect",
            format!("{l}: GET /v1/connect/ca/roots lists no root: the servers' Connect CA is not initialised"),
            "check connect { enabled = true } and the ca_provider settings on the servers, then their logs for the CA initialisation",
        ),
        Ok(n) => CheckResult::pass(
            "mesh.connect",
            format!(
                "{l}: Connect is enabled on agent {}{} and the servers' CA has {n} root(s)",
                a.node,
                if a.connect_enabled.is_none() { " (as far as /v1/agent/self shows)" } else { "" }
            ),
        ),
    }
}

/// What is registered for the service, as the mesh stage sees it.
pub struct Registration<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The service's own registration on this agent (`/v1/agent/services` entry).
    pub service: Option<&'a Map<String, Value>>,
    pub sidecar: Option<&'a Sidecar>,
    /// `/v1/health/connect/NAME`, every state.
    pub mesh: &'a [MeshEntry],
    pub node: &'a str,
}

/// The sidecar (or, Connect-native, the service itself): registered, where, forwarding where.
pub fn judge_sidecar(l: &str, def: &MeshDef, r: &Registration<'_>) -> CheckResult {
    let Some(service) = r.service else {
        let mut nodes: Vec<&str> = r.mesh.iter().map(|e| e.node.as_str()).collect();
        nodes.dedup();
        let msg = if nodes.is_empty() {
            format!("{l}: {:?} is not registered on this agent yet; the sidecar is created with it", r.id)
        } else {
            format!(
                "{l}: {:?} is not registered on this agent; the mesh has it on {}: run the doctor on that agent to judge its sidecar",
                r.id,
                nodes.join(", ")
            )
        };
        return CheckResult::pass("mesh.sidecar", msg);
    };
    let registered_native =
        first_object(field(service, "Connect")).and_then(|c| field(c, "Native")).and_then(Value::as_bool) == Some(true);
    if def.native && def.sidecar.is_none() {
        if !registered_native {
            return CheckResult::finding(
                codes::MSH_NATIVE_NOT_REGISTERED,
                "mesh.sidecar",
                format!("{l}: the definition is Connect-native, but the registration of {:?} on {} has no Connect.Native: the mesh does not see it", r.id, r.node),
                "re-register the service with its connect { native = true } block (consul services register <file>, or consul reload for a configuration file)",
            );
        }
        return CheckResult::pass(
            "mesh.sidecar",
            format!("{l}: Connect-native: {:?} speaks mTLS itself, no sidecar needed", r.id),
        );
    }
    if registered_native && r.sidecar.is_none() {
        return CheckResult::pass(
            "mesh.sidecar",
            format!("{l}: {:?} is registered Connect-native: no sidecar needed", r.id),
        );
    }
    let expected_id =
        def.sidecar.as_ref().and_then(|s| s.id.clone()).unwrap_or_else(|| format!("{}-sidecar-proxy", r.id));
    let Some(sc) = r.sidecar else {
        if let Some(e) = r.mesh.iter().find(|e| e.destination_id == r.id && e.node != r.node) {
            return CheckResult::finding(
                codes::MSH_SIDECAR_ELSEWHERE,
                "mesh.sidecar",
                format!("{l}: the sidecar {} is registered on {}, not on {} where {:?} runs: it forwards to a port on the wrong host", e.service_id, e.node, r.node, r.id),
                format!("register the sidecar through the service's own connect {{ sidecar_service {{}} }} on {}, and run consul services deregister -id {} on {}", r.node, e.service_id, e.node),
            )
            .with("sidecar_node", e.node.clone());
        }
        return CheckResult::finding(
            codes::MSH_NO_SIDECAR,
            "mesh.sidecar",
            format!("{l}: no sidecar proxy for service ID {:?} is registered on {} (looked for {expected_id}); consul connect envoy -sidecar-for {} would answer \"No sidecar proxy registered for {}\"", r.id, r.node, r.id, r.id),
            "re-register the service with its connect { sidecar_service {} } block (consul services register <file>, or consul reload for a configuration file), then start its proxy",
        );
    };
    let port = get_i64(service, "Port").unwrap_or(0);
    let local_port = sc.proxy.local_service_port.unwrap_or(port);
    let local_addr = sc.proxy.local_service_address.clone().unwrap_or_else(|| "127.0.0.1".into());
    let svc_addr = get_str(service, "Address").unwrap_or_default();
    if local_port != port {
        return CheckResult::finding(
            codes::MSH_WRONG_LOCAL,
            "mesh.sidecar",
            format!("{l}: the sidecar {} forwards to {local_addr}:{local_port}, but {:?} listens on port {port}: every mesh request ends in a refused connection at the proxy", sc.id, r.id),
            format!("set local_service_port = {port} in the sidecar_service proxy block (or remove it: it defaults to the service's port) and re-register"),
        )
        .with("local_service", format!("{local_addr}:{local_port}"))
        .with("service_port", port.to_string());
    }
    if !r.mesh.iter().any(|e| e.service_id == sc.id && e.node == r.node) {
        let dup = bind_collisions(&sc.proxy.upstreams);
        let why = match dup.first() {
            Some((bind, a, b)) => format!(
                "the servers reject it: upstreams {a:?} and {b:?} share the local bind {bind} (the agent logs \"upstreams cannot contain duplicates by local bind address and port\")"
            ),
            None => "the agent's anti-entropy sync fails for it (the agent log says why: consul monitor | grep 'Syncing service failed')".into(),
        };
        return CheckResult::finding(
            codes::MSH_SIDECAR_NOT_SYNCED,
            "mesh.sidecar",
            format!("{l}: the sidecar {} is registered on {} but the catalog does not have it: {why}; no consumer can find it", sc.id, r.node),
            if dup.is_empty() { "fix the registration the agent log names and re-register".to_string() } else { "give each upstream its own local_bind_port and re-register the service".to_string() },
        );
    }
    let loopback = |a: &str| a.is_empty() || a == "localhost" || a.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback(&local_addr) && !svc_addr.is_empty() && local_addr != svc_addr {
        return CheckResult::finding(
            codes::MSH_WRONG_LOCAL,
            "mesh.sidecar",
            format!("{l}: the sidecar {} forwards to {local_addr}:{local_port}, but {:?} is registered at {svc_addr}: the proxy sends mesh traffic to another host or interface", sc.id, r.id),
            format!("set local_service_address = {svc_addr:?} in the sidecar_service proxy block (or remove it: the proxy then uses 127.0.0.1) and re-register"),
        )
        .with("local_service", format!("{local_addr}:{local_port}"))
        .with("service_address", svc_addr);
    }
    // The proxy forwards to 127.0.0.1 by default; an application bound only to the address it
    // advertises never sees the traffic. Not provable from here: said, not failed.
    let bound = if !loopback(&svc_addr) && loopback(&local_addr) {
        format!("; {:?} advertises {svc_addr}, so the application must listen on loopback too (or set local_service_address = {svc_addr:?})", r.id)
    } else {
        String::new()
    };
    CheckResult::pass(
        "mesh.sidecar",
        format!(
            "{l}: sidecar {} is registered on {} (port {}) and forwards to {local_addr}:{local_port}{bound}",
            sc.id, r.node, sc.port
        ),
    )
}

/// Is `output` the agent's TCP check failing to connect (or not run yet)?
fn not_listening(c: &ProxyCheck) -> bool {
    let o = c.output.to_ascii_lowercase();
    o.is_empty() || o.contains("connection refused") || o.contains("connect: ") || o.contains("i/o timeout")
}

/// The sidecar's checks: "nothing listens on the proxy port" is named as the root cause, with
/// the command that starts the proxy for this sidecar.
pub fn judge_proxy(l: &str, sc: &Sidecar, checks: &[ProxyCheck], start: &str) -> CheckResult {
    let failing: Vec<&ProxyCheck> = checks.iter().filter(|c| c.status != "passing").collect();
    if checks.is_empty() {
        return CheckResult::pass("mesh.proxy", format!("{l}: the sidecar {} has no checks on this agent", sc.id));
    }
    if let Some(c) = failing.iter().find(|c| c.kind == "tcp" && not_listening(c)) {
        let output = if c.output.is_empty() { "(not run yet)".to_string() } else { c.output.clone() };
        return CheckResult::finding(
            codes::MSH_PROXY_NOT_RUNNING,
            "mesh.proxy",
            format!("{l}: nothing listens on the sidecar {}'s port {}: {:?} is {}: {output}; the proxy process is not running, so mesh consumers cannot reach the service although it passes", sc.id, sc.port, c.name, c.status),
            format!("start the proxy for this sidecar on the service's host: {start}"),
        )
        .with("sidecar", sc.id.clone())
        .with("proxy_port", sc.port.to_string())
        .with("check_output", output);
    }
    if let Some(c) = failing.first() {
        let output = if c.output.is_empty() { "(no output)".to_string() } else { c.output.clone() };
        let alias = c.kind == "alias";
        return CheckResult::finding(
            codes::MSH_SIDECAR_CHECK,
            "mesh.proxy",
            format!(
                "{l}: the sidecar {}'s check {:?} is {}: {output}{}",
                sc.id,
                c.name,
                c.status,
                if alias { " (it follows the service's own checks: the service itself is failing)" } else { "" }
            ),
            if alias {
                "fix the service's own failing check (the health and sync stages name it); the sidecar follows it"
                    .to_string()
            } else {
                format!("fix what the check reports; the proxy was started with: {start}")
            },
        )
        .with("check_output", output);
    }
    CheckResult::pass(
        "mesh.proxy",
        format!("{l}: the sidecar {}'s {} check(s) pass: a proxy listens on port {}", sc.id, checks.len(), sc.port),
    )
}

/// The result of dialling the gRPC port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    Open,
    Failed(String),
    NotTried(String),
}

/// The gRPC (xDS) port Envoy gets its configuration on.
pub fn judge_xds(
    l: &str,
    a: &AgentMesh,
    envoy_hints: &[String],
    target: Option<SocketAddr>,
    dial: &Dial,
) -> CheckResult {
    let expects = if envoy_hints.is_empty() { None } else { Some(envoy_hints.join(", ")) };
    let shown = match (a.xds_ports, a.grpc_port) {
        (Some((p, t)), _) => format!("xDS.Ports Plaintext {p}, TLS {t}"),
        (None, Some(p)) => format!("DebugConfig.GRPCPort {p}"),
        (None, None) => String::new(),
    };
    if a.xds_ports.is_none() && a.grpc_port.is_none() {
        return CheckResult::not_judged(
            "mesh.xds",
            format!("{l}: /v1/agent/self shows no gRPC port (the token needs agent:read on {}); Envoy's xDS port cannot be judged", a.node),
        );
    }
    let Some((port, tls)) = grpc_port(a) else {
        return match expects {
            Some(why) => CheckResult::finding(
                codes::MSH_NO_GRPC,
                "mesh.xds",
                format!("{l}: the sidecar is set up for Envoy ({why}), but agent {} offers no gRPC port ({shown}): consul connect envoy -bootstrap still succeeds and points Envoy at 127.0.0.1:8502, where this agent does not listen, so Envoy never gets a listener", a.node),
                "add ports { grpc = 8502 } to the agent configuration and restart the agent, or run the built-in proxy (consul connect proxy -sidecar-for <ID>) instead of Envoy",
            ),
            None => CheckResult::pass(
                "mesh.xds",
                format!("{l}: agent {} offers no gRPC port ({shown}): only the built-in proxy (consul connect proxy) can serve this sidecar; Envoy would need ports {{ grpc = 8502 }}", a.node),
            ),
        };
    };
    if tls && a.xds_ports.is_some_and(|(p, _)| p <= 0) {
        let host = target.map(|t| t.ip().to_string()).unwrap_or_else(|| "127.0.0.1".into());
        return CheckResult::finding(
            codes::MSH_GRPC_TLS_ONLY,
            "mesh.xds",
            format!("{l}: agent {} ({}) offers only the TLS gRPC port {port} ({shown}): Envoy needs -grpc-addr https://{host}:{port} and the agent's CA (-grpc-ca-file); a bootstrap made for the plaintext 8502 gets nothing", a.node, a.version),
            format!("start Envoy with -grpc-addr https://{host}:{port} -grpc-ca-file <the agent's CA>, or also open ports {{ grpc = 8502 }} on the agent"),
        );
    }
    match dial {
        Dial::Failed(why) => CheckResult::finding(
            codes::MSH_GRPC_CLOSED,
            "mesh.xds",
            format!(
                "{l}: the agent's gRPC port {} {why} (configured: {shown}; GRPCAddrs {:?})",
                target.map(|t| t.to_string()).unwrap_or_else(|| port.to_string()),
                a.grpc_addrs
            ),
            "make addresses { grpc = ... } an address the proxy host reaches and open the port in the firewall; pass that address to Envoy with -grpc-addr",
        ),
        Dial::Open => CheckResult::pass(
            "mesh.xds",
            format!(
                "{l}: the agent's gRPC (xDS) port {} accepts connections{}; consul connect envoy -bootstrap points Envoy at {}localhost:{port} on the agent host",
                target.map(|t| t.to_string()).unwrap_or_else(|| port.to_string()),
                if tls { " (TLS)" } else { "" },
                if tls { "https://" } else { "" }
            ),
        ),
        Dial::NotTried(why) => CheckResult::pass(
            "mesh.xds",
            format!("{l}: the agent offers gRPC port {port} ({shown}); not dialled: {why}"),
        ),
    }
}

/// Why the gRPC port is not dialled from here, if it is not: a sidecar's Envoy runs on the agent
/// host and dials `localhost:<port>` there (the bootstrap's default), so from another host only a
/// port that listens beyond loopback can be tried.
pub fn dial_from_here(a: &AgentMesh, agent_ip: Option<IpAddr>) -> Option<String> {
    let remote = agent_ip.is_some_and(|ip| !ip.is_loopback());
    let loopback_only = !a.grpc_addrs.is_empty()
        && a.grpc_addrs.iter().all(|x| {
            let hostport = x.trim_start_matches("tcp://");
            hostport.parse::<SocketAddr>().is_ok_and(|sa| sa.ip().is_loopback()) || x.starts_with("unix://")
        });
    (remote && loopback_only).then(|| {
        format!(
            "it listens on the agent host's loopback only ({}), which is where a sidecar's Envoy dials it; run the doctor on that host to try it",
            a.grpc_addrs.join(", ")
        )
    })
}

/// Upstreams that share a local bind address and port: (bind, first name, second name).
pub fn bind_collisions(ups: &[Upstream]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (i, a) in ups.iter().enumerate() {
        if a.bind_port <= 0 {
            continue;
        }
        if let Some(b) = ups[..i].iter().find(|b| b.bind_port == a.bind_port && b.bind_address == a.bind_address) {
            out.push((a.bind(), b.name.clone(), a.name.clone()));
        }
    }
    out
}

/// What the catalog holds for one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSeen {
    /// Instances in the catalog, and passing connect-capable ones.
    Seen {
        instances: usize,
        mesh_passing: usize,
    },
    NotJudged(String),
    Unusable(String),
}

pub fn judge_upstreams(l: &str, ups: &[Upstream], seen: &[UpstreamSeen]) -> Vec<CheckResult> {
    if ups.is_empty() {
        return vec![CheckResult::pass("mesh.upstreams", format!("{l}: the sidecar has no upstreams"))];
    }
    let mut out = Vec::new();
    for (bind, a, b) in bind_collisions(ups) {
        out.push(
            CheckResult::finding(
                codes::MSH_BIND_COLLISION,
                "mesh.upstreams",
                format!("{l}: upstreams {a:?} and {b:?} both bind {bind}: the agent accepts this, but the servers reject the sidecar (\"upstreams cannot contain duplicates by local bind address and port\"), so it never reaches the catalog"),
                format!("give {b:?} its own local_bind_port and re-register the service"),
            )
            .with("bind", bind),
        );
    }
    let mut fine = Vec::new();
    for (u, s) in ups.iter().zip(seen) {
        let dc = u.datacenter.as_ref().map(|d| format!(" in datacenter {d}")).unwrap_or_default();
        match s {
            UpstreamSeen::Seen { instances: 0, .. } => out.push(
                CheckResult::finding(
                    codes::MSH_UPSTREAM_MISSING,
                    "mesh.upstreams",
                    format!("{l}: upstream {:?}{dc} (local {}) does not exist in the catalog: the proxy accepts on {} and closes every connection", u.name, u.bind(), u.bind()),
                    format!("correct destination_name {:?}, deploy that service, or set datacenter on the upstream", u.name),
                )
                .with("upstream", u.name.clone()),
            ),
            UpstreamSeen::Seen { instances, mesh_passing: 0 } => out.push(
                CheckResult::finding(
                    codes::MSH_UPSTREAM_NOT_PASSING,
                    "mesh.upstreams",
                    format!("{l}: upstream {:?}{dc} has {instances} instance(s) but no passing connect-capable one (GET /v1/health/connect/{}?passing answers []): calls through {} fail", u.name, u.name, u.bind()),
                    format!("give {:?} a sidecar (connect {{ sidecar_service {{}} }}) and start its proxy, or fix its failing sidecar checks (consul-doctor check --service {})", u.name, u.name),
                )
                .with("upstream", u.name.clone()),
            ),
            UpstreamSeen::Seen { mesh_passing, .. } => {
                fine.push(format!("{} ({} passing in the mesh, local {})", u.name, mesh_passing, u.bind()))
            }
            UpstreamSeen::NotJudged(why) => {
                out.push(CheckResult::not_judged("mesh.upstreams", format!("{l}: upstream {:?}: {why}", u.name)))
            }
            UpstreamSeen::Unusable(what) => out.push(super::unusable(
                codes::MSH_UNREADABLE,
                "mesh.upstreams",
                format!("{l}: upstream {:?}: {what}", u.name),
            )),
        }
    }
    if out.is_empty() {
        out.push(CheckResult::pass(
            "mesh.upstreams",
            format!("{l}: upstream(s) reachable in the mesh: {}", fine.join(", ")),
        ));
    }
    out
}

/// One intention question and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentionSeen {
    pub source: String,
    pub destination: String,
    pub answer: Result<bool, String>,
    /// The intention that matched (`SourceName → DestinationName (Action)`), when one did.
    pub matched: Option<String>,
    /// A 403: what would let the doctor see.
    pub not_judged: Option<String>,
}

pub fn judge_intentions(l: &str, a: &AgentMesh, seen: &[IntentionSeen]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let mut allowed = Vec::new();
    for s in seen {
        let pair = format!("{} → {}", s.source, s.destination);
        if let Some(why) = &s.not_judged {
            out.push(CheckResult::not_judged("mesh.intentions", format!("{l}: {pair}: {why}")));
            continue;
        }
        match (&s.answer, &s.matched) {
            (Ok(true), m) => allowed.push(match m {
                Some(i) => format!("{pair} (intention {i})"),
                None => format!("{pair} (default allow)"),
            }),
            (Ok(false), Some(i)) => out.push(
                CheckResult::finding(
                    codes::MSH_INTENTION_DENY,
                    "mesh.intentions",
                    format!("{l}: {pair} is denied by the intention {i}: the destination's proxy refuses the connection right after the TLS handshake"),
                    format!("consul intention delete {} {} && consul intention create -allow {} {}", s.source, s.destination, s.source, s.destination),
                )
                .with("intention", i.clone()),
            ),
            (Ok(false), None) => {
                let why = if a.acl_default_deny {
                    "no intention matches, and ACLs are enabled with default_policy \"deny\", so Connect denies it by default"
                } else {
                    "no intention matches, and the default is deny"
                };
                out.push(CheckResult::finding(
                    codes::MSH_DEFAULT_DENY,
                    "mesh.intentions",
                    format!("{l}: {pair} is denied: {why}"),
                    format!("consul intention create -allow {} {}", s.source, s.destination),
                ))
            }
            (Err(what), _) => out.push(super::unusable(codes::MSH_UNREADABLE, "mesh.intentions", format!("{l}: {what}"))),
        }
    }
    if out.is_empty() {
        out.push(CheckResult::pass("mesh.intentions", format!("{l}: allowed: {}", allowed.join(", "))));
    }
    out
}

/// What consumers' proxies route to: `/v1/health/connect/NAME?passing`.
pub fn judge_consumers(
    l: &str,
    name: &str,
    all: &[MeshEntry],
    passing: usize,
    registered: bool,
    earlier: Option<&'static str>,
) -> CheckResult {
    if passing == 0 && all.is_empty() && !registered {
        return CheckResult::pass(
            "mesh.consumers",
            format!("{l}: {name:?} is not registered yet; mesh consumers will find it in /v1/health/connect/{name}?passing once its sidecar passes"),
        );
    }
    if passing > 0 {
        return CheckResult::pass(
            "mesh.consumers",
            format!("{l}: GET /v1/health/connect/{name}?passing lists {passing} instance(s): mesh consumers can reach {name:?}"),
        );
    }
    let summary = format!(
        "GET /v1/health/connect/{name}?passing answers [] ({} connect-capable instance(s), none passing): mesh consumers find nothing",
        all.len()
    );
    if let Some(code) = earlier {
        let mut r = CheckResult::blocked("mesh.consumers", code);
        r.message = format!("{l}: {summary}; the cause is reported as {code}");
        return r;
    }
    CheckResult::finding(
        codes::MSH_CONSUMERS_NONE,
        "mesh.consumers",
        format!("{l}: {summary}"),
        format!("register {name:?} with connect {{ sidecar_service {{}} }} (or native = true) and start its proxy; then curl /v1/health/connect/{name}?passing lists it"),
    )
    .with("instances", all.len().to_string())
}

/// `NAME.connect` DNS against the mesh health API.
pub fn judge_dns(
    l: &str,
    qname: &str,
    ep: &super::discovery::Endpoint,
    srv: Option<&super::discovery::Answer>,
    passing: usize,
) -> CheckResult {
    use super::discovery::{Answer, Endpoint};
    let (sa, how) = match ep {
        Endpoint::Disabled => {
            return CheckResult::skipped(
                "mesh.dns",
                format!("{l}: the agent's DNS interface is disabled (see DSC-001)"),
            )
        }
        Endpoint::NotHere(why) => return CheckResult::skipped("mesh.dns", format!("{l}: not asked: {why}")),
        Endpoint::At(sa, how) => (sa, how),
    };
    let Some(srv) = srv else {
        return CheckResult::skipped("mesh.dns", format!("{l}: no resolver for {sa}"));
    };
    if let Answer::Unaskable(why) = srv {
        // A name no DNS question can carry: not asked, never blamed on the network.
        return CheckResult::skipped("mesh.dns", format!("{l}: {qname} was not asked: {why}"));
    }
    let records = match srv {
        Answer::Records { srv, .. } => srv.len(),
        _ => 0,
    };
    let shown = match srv {
        Answer::Records { srv, .. } => format!("{} SRV", srv.len()),
        Answer::NxDomain => "NXDOMAIN".into(),
        Answer::Empty => "no records".into(),
        Answer::Timeout => "no answer (timeout)".into(),
        Answer::Failed(e) => e.clone(),
        Answer::Unaskable(why) => why.clone(),
    };
    let broken = matches!(srv, Answer::Timeout | Answer::Failed(_));
    if broken || (passing > 0 && records == 0) {
        return CheckResult::finding(
            codes::MSH_DNS_WRONG,
            "mesh.dns",
            format!("{l}: Consul DNS at {sa} ({how}) answers {shown} for {qname} while {passing} connect-capable instance(s) pass"),
            format!("compare dig @{} -p {} {qname} SRV with curl /v1/health/connect/<name>?passing; the agent's default token (acl.tokens.default) needs service:read on the service", sa.ip(), sa.port()),
        )
        .with("dns_server", sa.to_string());
    }
    CheckResult::pass(
        "mesh.dns",
        format!("{l}: Consul DNS at {sa} answers {shown} for {qname}, like the mesh health API ({passing} passing)"),
    )
    .with("dns_server", sa.to_string())
}

// ---------------------------------------------------------------------------------------------
// The stage (I/O)

/// Whether the service belongs in the mesh, and why not when it does not.
fn applies(
    def: &MeshDef,
    has_block: bool,
    service: Option<&Map<String, Value>>,
    sidecar: bool,
    catalog_mesh: bool,
) -> Option<&'static str> {
    let native = service
        .and_then(|s| first_object(field(s, "Connect")))
        .and_then(|c| field(c, "Native"))
        .and_then(Value::as_bool)
        == Some(true);
    if has_block && (def.native || def.sidecar.is_some()) || native || sidecar || catalog_mesh {
        None
    } else if has_block {
        Some("its connect block asks for neither sidecar_service nor native")
    } else {
        Some("no connect block in the definition, and neither this agent nor the catalog holds a sidecar or Connect-native instance for it")
    }
}

async fn get_value(client: &SharedClient, path: &str) -> super::Answer<Value> {
    super::decode::<Value>(&format!("GET {path}"), &client.get(path).await, client.timeout, false)
}

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let (services, client) = match super::service_stage_start(ctx, CHECKS) {
            Ok(started) => started,
            // Nothing to look at: one line says so, not one per mesh check.
            Err(mut results) => {
                results.truncate(1);
                return results;
            }
        };
        let timeout = ctx.inputs.timeout;
        let dcq = crate::consul::dc_query(ctx.datacenter());
        let (local, agent_ip, agent_dns, agent_dc, node) = {
            let f = ctx.facts();
            let ip = f.reachable.first().or(f.addrs.first()).map(|sa| sa.ip()).or_else(|| {
                f.conn.as_ref().and_then(|c| match &c.target {
                    crate::connection::Target::Unix { .. } => Some(IpAddr::from([127, 0, 0, 1])),
                    crate::connection::Target::Tcp { host, .. } => host.parse().ok(),
                })
            });
            (
                f.agent_services.clone(),
                ip,
                f.agent.as_ref().and_then(|a| a.dns.clone()),
                f.agent.as_ref().map(|a| a.datacenter.clone()),
                f.agent.as_ref().map(|a| a.node.clone()).unwrap_or_default(),
            )
        };
        let local = local.unwrap_or_default();
        let cli = cli_flags(ctx.inputs);
        let mut out = Vec::new();
        // Read once, when the first meshed service needs them.
        let mut agent: Option<AgentMesh> = None;
        let mut roots: Option<Result<usize, String>> = None;
        let mut agent_checks: Option<Map<String, Value>> = None;
        for svc in &services {
            if let Some(skip) = super::service_gate(svc, "mesh.connect") {
                out.push(skip);
                continue;
            }
            let def = &svc.def;
            let l = def.label.clone();
            let name = def.display_name().to_string();
            let id = def.effective_id().unwrap_or(&name).to_string();
            let mdef = def.connect.as_ref().map(mesh_def).unwrap_or_default();
            let service = local.get(&id).and_then(Value::as_object);
            let sidecar = find_sidecar(&local, &id, mdef.sidecar.as_ref().and_then(|s| s.id.as_deref()));
            let mesh_path = format!("/v1/health/connect/{}{dcq}", urlencode(&name));
            // Meant for the mesh by the definition or this agent, before the catalog is asked.
            let meant = def.connect.is_some() || sidecar.is_some();
            if !meant && matches!(def.origin, crate::service::Origin::File { .. }) {
                // A definition file without a connect block, and no sidecar for it on this agent:
                // the catalog is asked only for a `--service NAME` (whose sidecar may live anywhere).
                out.push(CheckResult::skipped(
                    "mesh.connect",
                    format!("{l}: not in the mesh: the definition has no connect block and this agent holds no sidecar for it"),
                ));
                continue;
            }
            let mesh_all = match get_value(&client, &mesh_path).await {
                super::Answer::Ok(v) => mesh_entries(&list(&v)),
                super::Answer::NotJudged(why) if meant => {
                    out.push(CheckResult::not_judged("mesh.connect", format!("{l}: {why}")));
                    continue;
                }
                super::Answer::Unusable(what) if meant => {
                    out.push(super::unusable(codes::MSH_UNREADABLE, "mesh.connect", format!("{l}: {what}")));
                    continue;
                }
                super::Answer::NotJudged(what) | super::Answer::Unusable(what) => {
                    // Nothing says the service is meshed: an unreadable catalog is no finding.
                    out.push(CheckResult::skipped(
                        "mesh.connect",
                        format!("{l}: no connect block and no sidecar on this agent; whether the catalog holds one cannot be told: {what}"),
                    ));
                    continue;
                }
            };
            let mesh_mine: Vec<MeshEntry> =
                mesh_all.iter().filter(|e| e.destination_id == id || e.service_id == id).cloned().collect();
            if let Some(why) = applies(&mdef, def.connect.is_some(), service, sidecar.is_some(), !mesh_mine.is_empty())
            {
                // One line says it: the other mesh checks have nothing to look at.
                out.push(CheckResult::skipped("mesh.connect", format!("{l}: not in the mesh: {why}")));
                continue;
            }

            // Connect on the agent and the servers.
            if agent.is_none() {
                agent = Some(match get_value(&client, "/v1/agent/self").await {
                    super::Answer::Ok(v) => agent_mesh(&v),
                    _ => AgentMesh { node: node.clone(), ..AgentMesh::default() },
                });
                let reply = client.get("/v1/connect/ca/roots").await;
                roots = Some(match &reply {
                    Ok(r) if r.status == 200 => Ok(r
                        .json::<Value>()
                        .ok()
                        .and_then(|v| v.get("Roots").and_then(Value::as_array).map(Vec::len))
                        .unwrap_or(0)),
                    Ok(r) => Err(format!("GET /v1/connect/ca/roots answered {} \"{}\"", r.status, r.snippet())),
                    Err(f) => Err(format!("GET /v1/connect/ca/roots: {}", f.describe(timeout))),
                });
                agent_checks = match super::decode::<Map<String, Value>>(
                    "GET /v1/agent/checks",
                    &client.get("/v1/agent/checks").await,
                    timeout,
                    false,
                ) {
                    super::Answer::Ok(m) => Some(m),
                    _ => None,
                };
            }
            let a = agent.clone().unwrap_or_default();
            let connect = judge_connect(&l, &a, roots.as_ref().unwrap_or(&Ok(1)));
            let blocked = connect.code.filter(|_| connect.status == crate::report::Status::Fail);
            out.push(connect);
            if let Some(code) = blocked {
                for c in &CHECKS[1..] {
                    let mut r = CheckResult::blocked(c, code);
                    r.message = format!("{l}: skipped: blocked by {code}");
                    out.push(r);
                }
                continue;
            }

            // The sidecar and its proxy.
            let reg = Registration {
                id: &id,
                name: &name,
                service,
                sidecar: sidecar.as_ref(),
                mesh: &mesh_mine,
                node: if a.node.is_empty() { &node } else { &a.node },
            };
            let sidecar_result = judge_sidecar(&l, &mdef, &reg);
            let sidecar_code = sidecar_result.code.filter(|_| sidecar_result.status == crate::report::Status::Fail);
            out.push(sidecar_result);
            let spec = sidecar
                .as_ref()
                .map(|s| s.proxy.clone())
                .or_else(|| mdef.sidecar.as_ref().map(|s| s.proxy.clone()))
                .unwrap_or_default();
            let grpc = grpc_port(&a);
            let kind =
                if !spec.envoy_hints.is_empty() || grpc.is_some() { ProxyKind::Envoy } else { ProxyKind::BuiltIn };
            let grpc_flag = match (grpc, agent_ip) {
                (Some((p, true)), Some(ip)) => Some(format!("https://{}", SocketAddr::new(ip, p as u16))),
                _ => None,
            };
            let mut start = proxy_command(kind, &id, &cli, grpc_flag.as_deref());
            if kind == ProxyKind::Envoy && spec.envoy_hints.is_empty() {
                start.push_str(&format!(
                    ", or the built-in proxy: {}",
                    proxy_command(ProxyKind::BuiltIn, &id, &cli, None)
                ));
            }
            let mut proxy_code = None;
            match (&sidecar, &agent_checks) {
                (Some(sc), Some(checks)) => {
                    let r = judge_proxy(&l, sc, &proxy_checks(checks, &sc.id), &start);
                    proxy_code = r.code.filter(|_| r.status == crate::report::Status::Fail);
                    out.push(r.with("start", start.clone()));
                }
                (Some(_), None) => out.push(CheckResult::not_judged(
                    "mesh.proxy",
                    format!("{l}: /v1/agent/checks cannot be read (the token needs node:read and service:read)"),
                )),
                (None, _) => out.push(match sidecar_code {
                    Some(code) => {
                        let mut r = CheckResult::blocked("mesh.proxy", code);
                        r.message = format!("{l}: no sidecar on this agent to check (see {code})");
                        r
                    }
                    None => CheckResult::skipped("mesh.proxy", format!("{l}: no sidecar proxy on this agent")),
                }),
            }

            // Envoy's xDS port.
            if sidecar.is_none() && mdef.sidecar.is_none() {
                out.push(CheckResult::skipped("mesh.xds", format!("{l}: no sidecar: no proxy needs the gRPC port")));
            } else {
                let target = grpc.and_then(|(p, _)| agent_ip.map(|ip| SocketAddr::new(ip, p as u16)));
                let dial = match (target, dial_from_here(&a, agent_ip)) {
                    (Some(t), None) => match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(t)).await {
                        Ok(Ok(_)) => Dial::Open,
                        Ok(Err(e)) => Dial::Failed(format!("refused the connection ({e})")),
                        Err(_) => Dial::Failed(format!("did not answer within {}", super::fmt_timeout(timeout))),
                    },
                    (Some(_), Some(why)) => Dial::NotTried(why),
                    (None, _) => Dial::NotTried("the agent's address is unknown".into()),
                };
                out.push(judge_xds(&l, &a, &spec.envoy_hints, target, &dial));
            }

            // Upstreams.
            let mut seen = Vec::new();
            for u in &spec.upstreams {
                let dc = match &u.datacenter {
                    Some(d) => format!("?dc={}", urlencode(d)),
                    None => dcq.clone(),
                };
                let cat = format!("/v1/catalog/service/{}{dc}", urlencode(&u.name));
                let s = match get_value(&client, &cat).await {
                    super::Answer::Ok(v) => {
                        let instances = list(&v).len();
                        let sep = if dc.is_empty() { "?" } else { "&" };
                        let path = format!("/v1/health/connect/{}{dc}{sep}passing", urlencode(&u.name));
                        match get_value(&client, &path).await {
                            super::Answer::Ok(v) => UpstreamSeen::Seen { instances, mesh_passing: list(&v).len() },
                            super::Answer::NotJudged(w) => UpstreamSeen::NotJudged(w),
                            super::Answer::Unusable(w) => UpstreamSeen::Unusable(w),
                        }
                    }
                    super::Answer::NotJudged(w) => {
                        UpstreamSeen::NotJudged(format!("{w} (the token needs service:read on {:?})", u.name))
                    }
                    super::Answer::Unusable(w) => UpstreamSeen::Unusable(w),
                };
                seen.push(s);
            }
            out.extend(judge_upstreams(&l, &spec.upstreams, &seen));

            // Intentions: this service calling each upstream, and --from calling this service.
            let mut pairs: Vec<(String, String)> =
                spec.upstreams.iter().map(|u| (name.clone(), u.name.clone())).collect();
            if let Some(from) = &ctx.inputs.mesh_from {
                pairs.push((from.clone(), name.clone()));
            }
            if pairs.is_empty() {
                out.push(CheckResult::skipped(
                    "mesh.intentions",
                    format!("{l}: no upstreams and no --from NAME: no call to judge"),
                ));
            } else {
                let mut seen = Vec::new();
                for (src, dst) in pairs {
                    seen.push(intention(&client, &src, &dst, timeout).await);
                }
                out.extend(judge_intentions(&l, &a, &seen));
            }

            // What consumers see.
            let passing_path = format!(
                "/v1/health/connect/{}{dcq}{}passing",
                urlencode(&name),
                if dcq.is_empty() { "?" } else { "&" }
            );
            let passing = match get_value(&client, &passing_path).await {
                super::Answer::Ok(v) => Ok(mesh_entries(&list(&v)).iter().filter(|e| e.passing).count()),
                super::Answer::NotJudged(w) => Err(CheckResult::not_judged("mesh.consumers", format!("{l}: {w}"))),
                super::Answer::Unusable(w) => {
                    Err(super::unusable(codes::MSH_UNREADABLE, "mesh.consumers", format!("{l}: {w}")))
                }
            };
            let passing = match passing {
                Ok(n) => n,
                Err(r) => {
                    out.push(r);
                    out.push(CheckResult::skipped("mesh.dns", format!("{l}: the mesh health list is unreadable")));
                    continue;
                }
            };
            let earlier = proxy_code.or(sidecar_code);
            out.push(
                judge_consumers(&l, &name, &mesh_all, passing, service.is_some(), earlier)
                    .with("request", format!("GET {}", client.url(&passing_path))),
            );
            let ep = super::discovery::endpoint(ctx.inputs.consul_dns, agent_dns.as_ref(), agent_ip);
            let domain = agent_dns.as_ref().map(|d| d.domain.clone()).unwrap_or_else(|| "consul.".into());
            let dc = ctx
                .datacenter()
                .filter(|d| agent_dc.as_deref() != Some(*d))
                .map(|d| format!("{d}."))
                .unwrap_or_default();
            let qname = format!("{name}.connect.{dc}{domain}");
            let srv = match &ep {
                super::discovery::Endpoint::At(sa, _) => match super::dns::build_resolver(Some(*sa), true, timeout) {
                    Ok(r) => Some(super::discovery::ask(&r, &qname, RecordType::SRV, timeout).await),
                    Err(e) => Some(super::discovery::Answer::Failed(e)),
                },
                _ => None,
            };
            out.push(judge_dns(&l, &qname, &ep, srv.as_ref(), passing));
        }
        out
    })
}

/// Asks whether `src` may call `dst`, and which intention decided.
async fn intention(client: &SharedClient, src: &str, dst: &str, timeout: Duration) -> IntentionSeen {
    let mut seen = IntentionSeen {
        source: src.to_string(),
        destination: dst.to_string(),
        answer: Ok(true),
        matched: None,
        not_judged: None,
    };
    let path = format!("/v1/connect/intentions/check?source={}&destination={}", urlencode(src), urlencode(dst));
    let reply = client.get(&path).await;
    match super::decode::<Value>(&format!("GET {path}"), &reply, timeout, false) {
        super::Answer::Ok(v) => match v.get("Allowed").and_then(Value::as_bool) {
            Some(b) => seen.answer = Ok(b),
            None => seen.answer = Err(format!("GET {path} answered without \"Allowed\"")),
        },
        super::Answer::NotJudged(why) => {
            seen.not_judged = Some(format!(
                "{why}: the token needs intention:read on {dst:?} (service \"{dst}\" {{ intentions = \"read\" }})"
            ));
            return seen;
        }
        super::Answer::Unusable(what) => {
            seen.answer = Err(what);
            return seen;
        }
    }
    // The intentions on the destination, highest precedence first: the first whose source
    // matches decided.
    let path = format!("/v1/connect/intentions/match?by=destination&name={}", urlencode(dst));
    if let super::Answer::Ok(v) =
        super::decode::<Value>(&format!("GET {path}"), &client.get(&path).await, timeout, false)
    {
        seen.matched = v.get(dst).and_then(Value::as_array).and_then(|list| {
            list.iter()
                .find(|i| matches!(i.get("SourceName").and_then(Value::as_str), Some(s) if s == src || s == "*"))
                .map(|i| {
                    let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    format!("{} → {} ({})", s("SourceName"), s("DestinationName"), s("Action"))
                })
        });
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc_entry(id: &str, port: i64) -> Map<String, Value> {
        json!({"ID": id, "Service": id, "Port": port, "Address": ""}).as_object().unwrap().clone()
    }

    // Shapes below are those a real 1.8.7 agent answered in the lab: /v1/agent/services
    // (agent/agent_endpoint.go `buildAgentService`: Kind, Proxy) and /v1/health/connect/NAME
    // (agent/health_endpoint.go `HealthConnectServiceNodes`).
    fn sidecar_json(local_port: i64) -> Value {
        json!({"Kind": "connect-proxy", "ID": "web-sidecar-proxy", "Service": "web-sidecar-proxy", "Port": 21000,
               "Address": "", "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "web",
               "LocalServiceAddress": "127.0.0.1", "LocalServicePort": local_port,
               "Upstreams": [{"DestinationType": "service", "DestinationName": "api", "LocalBindPort": 9191},
                             {"DestinationType": "service", "DestinationName": "db", "LocalBindPort": 9191}],
               "MeshGateway": {}, "Expose": {}}})
    }

    fn entry(node: &str, id: &str, dest: &str) -> MeshEntry {
        MeshEntry {
            node: node.into(),
            node_address: "127.0.0.1".into(),
            service_id: id.into(),
            kind: "connect-proxy".into(),
            destination_id: dest.into(),
            port: 21000,
            passing: false,
        }
    }

    #[test]
    fn reads_definitions_in_hcl_and_api_spellings() {
        let hcl = crate::hcl::parse(
            r#"connect { sidecar_service { proxy {
                 local_service_port = 9091
                 config { envoy_prometheus_bind_addr = "0.0.0.0:9102" }
                 upstreams { destination_name = "api"
                   local_bind_port = 9191 }
                 upstreams { destination_name = "db"
                   local_bind_port = 9192 }
               } } }"#,
        )
        .unwrap();
        let d = mesh_def(&hcl["connect"]);
        let sc = d.sidecar.unwrap();
        assert_eq!(sc.proxy.local_service_port, Some(9091));
        assert_eq!(sc.proxy.upstreams.len(), 2);
        assert_eq!(sc.proxy.upstreams[1].bind(), "127.0.0.1:9192");
        assert_eq!(sc.proxy.envoy_hints, vec!["config envoy_prometheus_bind_addr".to_string()]);
        let api = mesh_def(&json!({"Native": true}));
        assert!(api.native && api.sidecar.is_none());
        let empty = mesh_def(&json!({"SidecarService": {}}));
        assert_eq!(empty.sidecar.unwrap().proxy, ProxySpec::default());
    }

    #[test]
    fn sidecar_forwarding_to_another_port_is_named() {
        let sc = sidecar_of(&sidecar_json(9091)).unwrap();
        let service = svc_entry("web", 9090);
        let mesh = vec![entry("n1", "web-sidecar-proxy", "web")];
        let r = Registration {
            id: "web",
            name: "web",
            service: Some(&service),
            sidecar: Some(&sc),
            mesh: &mesh,
            node: "n1",
        };
        let res = judge_sidecar("s", &MeshDef::default(), &r);
        assert_eq!(res.code, Some("MSH-005"));
        assert!(res.message.contains("127.0.0.1:9091") && res.message.contains("port 9090"), "{}", res.message);
        let sc = sidecar_of(&sidecar_json(9090)).unwrap();
        let r = Registration { sidecar: Some(&sc), ..r };
        assert_eq!(judge_sidecar("s", &MeshDef::default(), &r).code, None);
        // The service on 10.0.0.5: the default 127.0.0.1 is said, another address is wrong.
        let at = json!({"ID": "web", "Port": 9090, "Address": "10.0.0.5"}).as_object().unwrap().clone();
        let r = Registration { service: Some(&at), ..r };
        let res = judge_sidecar("s", &MeshDef::default(), &r);
        assert_eq!(res.code, None);
        assert!(res.message.contains("must listen on loopback too"), "{}", res.message);
        let mut other = sidecar_of(&sidecar_json(9090)).unwrap();
        other.proxy.local_service_address = Some("10.0.0.9".into());
        let r = Registration { sidecar: Some(&other), ..r };
        let res = judge_sidecar("s", &MeshDef::default(), &r);
        assert_eq!(res.code, Some("MSH-005"));
        assert!(res.message.contains("10.0.0.9:9090") && res.message.contains("10.0.0.5"), "{}", res.message);
    }

    #[test]
    fn missing_elsewhere_and_unsynced_sidecars() {
        let service = svc_entry("web", 9090);
        let def = mesh_def(&json!({"SidecarService": {}}));
        let r = Registration { id: "web", name: "web", service: Some(&service), sidecar: None, mesh: &[], node: "n1" };
        let res = judge_sidecar("s", &def, &r);
        assert_eq!(res.code, Some("MSH-003"));
        assert!(res.message.contains("web-sidecar-proxy"));
        let elsewhere = vec![entry("n2", "web-sidecar-proxy", "web")];
        let r = Registration { mesh: &elsewhere, ..r };
        assert_eq!(judge_sidecar("s", &def, &r).code, Some("MSH-004"));
        // On the agent, not in the catalog, with colliding binds: the servers rejected it.
        let sc = sidecar_of(&sidecar_json(9090)).unwrap();
        let r = Registration { sidecar: Some(&sc), mesh: &[], ..r };
        let res = judge_sidecar("s", &def, &r);
        assert_eq!(res.code, Some("MSH-008"));
        assert!(res.message.contains("127.0.0.1:9191"), "{}", res.message);
    }

    #[test]
    fn native_services_are_judged_as_such() {
        let def = mesh_def(&json!({"native": true}));
        let plain = svc_entry("web", 9090);
        let r = Registration { id: "web", name: "web", service: Some(&plain), sidecar: None, mesh: &[], node: "n1" };
        assert_eq!(judge_sidecar("s", &def, &r).code, Some("MSH-017"));
        let native = json!({"ID": "web", "Port": 9090, "Connect": {"Native": true}}).as_object().unwrap().clone();
        let r = Registration { service: Some(&native), ..r };
        let res = judge_sidecar("s", &def, &r);
        assert_eq!(res.code, None);
        assert!(res.message.contains("Connect-native"));
    }

    #[test]
    fn a_refused_listener_is_the_root_cause_with_the_start_command() {
        let sc = sidecar_of(&sidecar_json(9090)).unwrap();
        let checks = vec![
            ProxyCheck {
                name: "Connect Sidecar Listening".into(),
                kind: "tcp".into(),
                status: "critical".into(),
                output: "dial tcp 127.0.0.1:21000: connect: connection refused".into(),
            },
            ProxyCheck {
                name: "Connect Sidecar Aliasing web".into(),
                kind: "alias".into(),
                status: "passing".into(),
                output: String::new(),
            },
        ];
        let cli = CliFlags {
            flags: vec!["-http-addr=127.0.0.1:8500".into()],
            token_hint: Some("with CONSUL_HTTP_TOKEN set as for the doctor".into()),
        };
        let start = proxy_command(ProxyKind::BuiltIn, "web", &cli, None);
        assert_eq!(
            start,
            "consul connect proxy -sidecar-for=web -http-addr=127.0.0.1:8500 (with CONSUL_HTTP_TOKEN set as for the doctor; it needs service:write on the service)"
        );
        let r = judge_proxy("s", &sc, &checks, &start);
        assert_eq!(r.code, Some("MSH-006"));
        assert!(r.message.contains("connection refused") && r.fix.as_deref().unwrap().contains(&start));
        let mut alias = checks.clone();
        alias[0].status = "passing".into();
        alias[1].status = "critical".into();
        assert_eq!(judge_proxy("s", &sc, &alias, &start).code, Some("MSH-007"));
        alias[1].status = "passing".into();
        assert_eq!(judge_proxy("s", &sc, &alias, &start).code, None);
    }

    #[test]
    fn envoy_commands_carry_flags_but_never_a_token() {
        let cli = CliFlags {
            flags: vec!["-http-addr=https://10.0.0.5:8501".into(), "-ca-file='/etc/consul d/ca.pem'".into()],
            token_hint: None,
        };
        let c = proxy_command(ProxyKind::Envoy, "web 1", &cli, Some("https://10.0.0.5:8503"));
        assert_eq!(
            c,
            "consul connect envoy -sidecar-for='web 1' -http-addr=https://10.0.0.5:8501 -ca-file='/etc/consul d/ca.pem' -grpc-addr=https://10.0.0.5:8503"
        );
    }

    fn agent(grpc: i64) -> AgentMesh {
        AgentMesh { node: "n1".into(), connect_enabled: Some(true), grpc_port: Some(grpc), ..AgentMesh::default() }
    }

    #[test]
    fn connect_on_agent_and_servers() {
        let off = AgentMesh { connect_enabled: Some(false), ..agent(-1) };
        assert_eq!(judge_connect("s", &off, &Ok(1)).code, Some("MSH-001"));
        let servers =
            Err("GET /v1/connect/ca/roots answered 500 \"Connect must be enabled in order to use this endpoint\""
                .to_string());
        assert_eq!(judge_connect("s", &agent(8502), &servers).code, Some("MSH-002"));
        assert_eq!(judge_connect("s", &agent(8502), &Ok(0)).code, Some("MSH-002"));
        assert_eq!(judge_connect("s", &agent(8502), &Ok(1)).code, None);
    }

    #[test]
    fn grpc_port_for_envoy() {
        let hints = vec!["config envoy_stats_bind_addr".to_string()];
        assert_eq!(judge_xds("s", &agent(-1), &hints, None, &Dial::NotTried(String::new())).code, Some("MSH-009"));
        let builtin = judge_xds("s", &agent(-1), &[], None, &Dial::NotTried(String::new()));
        assert_eq!(builtin.code, None);
        assert!(builtin.message.contains("built-in proxy"));
        let t = Some("127.0.0.1:8502".parse().unwrap());
        assert_eq!(judge_xds("s", &agent(8502), &hints, t, &Dial::Failed("refused".into())).code, Some("MSH-010"));
        assert_eq!(judge_xds("s", &agent(8502), &hints, t, &Dial::Open).code, None);
        let unknown = AgentMesh { grpc_port: None, ..agent(0) };
        assert!(judge_xds("s", &unknown, &hints, None, &Dial::Open).not_judged);
    }

    // Fake /v1/agent/self of Consul 1.14+, shaped from agent/agent_endpoint.go (`Self`,
    // `XDSSelf` with `Ports: GRPCPorts{Plaintext, TLS}`) and agent/config/runtime.go
    // (`GRPCPort`, `GRPCTLSPort`): `ports { grpc = -1, grpc_tls = 8503 }`.
    #[test]
    fn the_1_14_grpc_tls_split_is_read_from_xds_ports() {
        let self_1_14 = json!({
            "Config": {"NodeName": "n1", "Version": "1.14.3"},
            "DebugConfig": {"ConnectEnabled": true, "GRPCPort": -1, "GRPCTLSPort": 8503, "GRPCAddrs": [], "GRPCTLSAddrs": ["tcp://127.0.0.1:8503"]},
            "xDS": {"SupportedProxies": {"envoy": ["1.24.0"]}, "Port": 8503, "Ports": {"Plaintext": -1, "TLS": 8503}}
        });
        let a = agent_mesh(&self_1_14);
        assert_eq!(a.xds_ports, Some((-1, 8503)));
        assert_eq!(grpc_port(&a), Some((8503, true)));
        let t = Some("127.0.0.1:8503".parse().unwrap());
        let r = judge_xds("s", &a, &[], t, &Dial::Open);
        assert_eq!(r.code, Some("MSH-011"));
        assert!(r.message.contains("https://127.0.0.1:8503"), "{}", r.message);
        // Both ports: plaintext for Envoy with no TLS, as consul connect envoy picks TLS first.
        let both = json!({"Config": {}, "DebugConfig": {"GRPCPort": 8502, "GRPCTLSPort": 8503},
                          "xDS": {"Ports": {"Plaintext": 8502, "TLS": 8503}}});
        assert_eq!(grpc_port(&agent_mesh(&both)), Some((8503, true)));
        assert_eq!(judge_xds("s", &agent_mesh(&both), &[], t, &Dial::Open).code, None);
        // 1.8.7: no xDS.Ports, DebugConfig.GRPCPort only.
        let old = json!({"Config": {}, "DebugConfig": {"GRPCPort": 8502, "ConnectEnabled": true, "ACLsEnabled": true, "ACLDefaultPolicy": "deny"}, "xDS": {"SupportedProxies": {}}});
        let a = agent_mesh(&old);
        assert_eq!((grpc_port(&a), a.acl_default_deny), (Some((8502, false)), true));
    }

    #[test]
    fn the_grpc_port_is_dialled_only_where_envoy_would_dial_it() {
        let a = AgentMesh { grpc_addrs: vec!["tcp://127.0.0.1:8502".into()], ..agent(8502) };
        assert_eq!(dial_from_here(&a, Some("127.0.0.1".parse().unwrap())), None);
        let why = dial_from_here(&a, Some("10.0.0.5".parse().unwrap())).unwrap();
        assert!(why.contains("loopback only"), "{why}");
        let wide = AgentMesh { grpc_addrs: vec!["tcp://0.0.0.0:8502".into()], ..agent(8502) };
        assert_eq!(dial_from_here(&wide, Some("10.0.0.5".parse().unwrap())), None);
    }

    #[test]
    fn upstreams_missing_failing_and_colliding() {
        let sc = sidecar_of(&sidecar_json(9090)).unwrap();
        let seen = vec![
            UpstreamSeen::Seen { instances: 0, mesh_passing: 0 },
            UpstreamSeen::Seen { instances: 2, mesh_passing: 0 },
        ];
        let codes: Vec<_> = judge_upstreams("s", &sc.proxy.upstreams, &seen).iter().map(|r| r.code).collect();
        assert_eq!(codes, vec![Some("MSH-014"), Some("MSH-012"), Some("MSH-013")]);
        let fine =
            vec![Upstream { name: "api".into(), datacenter: None, bind_address: "127.0.0.1".into(), bind_port: 1 }];
        let r = judge_upstreams("s", &fine, &[UpstreamSeen::Seen { instances: 1, mesh_passing: 1 }]);
        assert_eq!((r.len(), r[0].code), (1, None));
    }

    #[test]
    fn intentions_tell_an_explicit_deny_from_the_default() {
        let a = AgentMesh { acls_enabled: true, acl_default_deny: true, ..agent(8502) };
        let deny = IntentionSeen {
            source: "api".into(),
            destination: "web".into(),
            answer: Ok(false),
            matched: Some("api → web (deny)".into()),
            not_judged: None,
        };
        assert_eq!(judge_intentions("s", &a, std::slice::from_ref(&deny))[0].code, Some("MSH-015"));
        let default = IntentionSeen { matched: None, ..deny.clone() };
        let r = &judge_intentions("s", &a, &[default])[0];
        assert_eq!(r.code, Some("MSH-016"));
        assert!(r.message.contains("default_policy \"deny\""), "{}", r.message);
        let ok = IntentionSeen { answer: Ok(true), matched: None, ..deny.clone() };
        assert_eq!(judge_intentions("s", &a, &[ok])[0].code, None);
        let broken =
            IntentionSeen { answer: Err("GET /v1/connect/intentions/check answered 502".into()), ..deny.clone() };
        assert_eq!(judge_intentions("s", &a, &[broken])[0].code, Some("MSH-020"));
        let roots = Err("GET /v1/connect/ca/roots answered 500 \"rpc error: No cluster leader\"".to_string());
        assert_eq!(judge_connect("s", &a, &roots).code, Some("MSH-020"));
        let hidden = IntentionSeen { not_judged: Some("403".into()), ..deny };
        assert!(judge_intentions("s", &a, &[hidden])[0].not_judged);
    }

    #[test]
    fn consumers_and_dns() {
        let all = vec![entry("n1", "web-sidecar-proxy", "web")];
        assert_eq!(judge_consumers("s", "web", &all, 0, true, None).code, Some("MSH-018"));
        let b = judge_consumers("s", "web", &all, 0, true, Some("MSH-006"));
        assert_eq!((b.code, b.blocked_by), (None, Some("MSH-006")));
        assert_eq!(judge_consumers("s", "web", &all, 1, true, None).code, None);
        let before = judge_consumers("s", "web", &[], 0, false, None);
        assert_eq!(before.code, None);
        assert!(before.message.contains("not registered yet"), "{}", before.message);
        // Registered without anything in the mesh: consumers find nothing.
        assert_eq!(judge_consumers("s", "web", &[], 0, true, None).code, Some("MSH-018"));
        use super::super::discovery::{Answer, Endpoint};
        let ep = Endpoint::At("127.0.0.1:8600".parse().unwrap(), "test".into());
        assert_eq!(judge_dns("s", "web.connect.consul.", &ep, Some(&Answer::NxDomain), 1).code, Some("MSH-019"));
        assert_eq!(judge_dns("s", "web.connect.consul.", &ep, Some(&Answer::NxDomain), 0).code, None);
        let rec = Answer::Records { srv: vec![("a.".into(), 21000)], ips: vec![], ttl: None, soa_rname: None };
        assert_eq!(judge_dns("s", "web.connect.consul.", &ep, Some(&rec), 1).code, None);
    }

    #[test]
    fn health_connect_entries_name_the_service_they_stand_for() {
        // agent/health_endpoint.go `HealthConnectServiceNodes` (CheckServiceNodes), as 1.8.7 sends.
        let body = json!([
            {"Node": {"Node": "n1", "Address": "127.0.0.1"},
             "Service": {"Kind": "connect-proxy", "ID": "web-sidecar-proxy", "Port": 21000,
                         "Proxy": {"DestinationServiceID": "web"}},
             "Checks": [{"Status": "passing"}, {"Status": "critical"}]},
            {"Node": {"Node": "n1"}, "Service": {"ID": "nat", "Port": 9094, "Connect": {"Native": true}}, "Checks": []}
        ]);
        let e = mesh_entries(body.as_array().unwrap());
        assert_eq!((e[0].destination_id.as_str(), e[0].passing), ("web", false));
        assert_eq!((e[1].destination_id.as_str(), e[1].passing), ("nat", true));
    }
}
