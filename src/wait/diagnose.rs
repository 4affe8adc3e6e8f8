//! Why the condition did not hold: the pure judgement of what `wait` saw at the deadline (the
//! catalog's instances, this agent's own services), each outcome a coded finding with a fix,
//! plus the read-permission check that makes `wait` fail fast instead of waiting on an empty
//! list that ACL filtering produced.

use serde_json::{json, Value};

use super::condition::{Condition, Goal, Health, Instance, Tally};
use crate::codes;
use crate::consul::{ConsulClient, HttpFailure, Reply};
use crate::report::CheckResult;

/// A service this agent holds locally (`/v1/agent/services`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalService {
    pub id: String,
    pub tags: Vec<String>,
}

/// The matching services of `/v1/agent/services` (the agent only knows its own node).
pub fn local_matches(
    cond: &Condition,
    agent_node: &str,
    services: &serde_json::Map<String, Value>,
) -> Vec<LocalService> {
    services
        .values()
        .filter(|s| s.get("Service").and_then(Value::as_str) == Some(cond.service.as_str()))
        .map(|s| LocalService {
            id: s.get("ID").and_then(Value::as_str).unwrap_or("").to_string(),
            tags: s
                .get("Tags")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        })
        .filter(|l| {
            cond.id.as_ref().is_none_or(|id| *id == l.id)
                && cond.node.as_ref().is_none_or(|n| n == agent_node)
                && cond.tags.iter().all(|t| l.tags.contains(t))
        })
        .collect()
}

/// Asks whether the token may read the service and the nodes its instances live on: Consul
/// filters health results by both, so without them the list is empty whatever is registered.
/// The node asked about is the agent's (`node`, from /v1/agent/self); a token without agent:read
/// does not learn it there, so it is read from the service's own checks on this agent
/// (`/v1/agent/checks` entries carry `Node` and need only service:read); failing that, the
/// question is about every node (`Segment: ""`, what `node_prefix ""` grants; verified on
/// 1.8.7). `None` when that cannot be asked (ACLs disabled: 401 "ACL support disabled"; an agent
/// without the endpoint).
pub async fn read_permission(client: &ConsulClient, service: &str, node: Option<&str>) -> Option<CheckResult> {
    let learned = match node {
        Some(n) => Some(n.to_string()),
        None => match client.get("/v1/agent/checks").await {
            Ok(r) if r.status == 200 => {
                r.json::<serde_json::Map<String, Value>>().ok().and_then(|m| node_of_service_checks(&m, service))
            }
            _ => None,
        },
    };
    let segment = learned.unwrap_or_default();
    let mut body = vec![
        json!({"Resource": "service", "Segment": service, "Access": "read"}),
        json!({"Resource": "node", "Segment": segment, "Access": "read"}),
    ];
    if !segment.is_empty() {
        // And every node: instances elsewhere are filtered out of the answer without it.
        body.push(json!({"Resource": "node", "Segment": "", "Access": "read"}));
    }
    let reply = client.post_json("/v1/internal/acl/authorize", &Value::Array(body)).await;
    judge_read(service, Some(&segment), &reply, &client.url("/v1/internal/acl/authorize"))
}

/// Puts this agent's current output on the checks of the instances it owns (`node`) where the
/// catalog has none: Consul 1.8 syncs a change of output alone to the catalog only every
/// 5 minutes, so the catalog can say nothing while the owning agent already knows why.
pub fn overlay_agent_view(instances: &mut [Instance], node: &str, agent_checks: &serde_json::Map<String, Value>) {
    for i in instances.iter_mut().filter(|i| i.node == node) {
        for c in i.checks.iter_mut().filter(|c| c.status != "passing" && c.output.is_empty()) {
            let own = agent_checks.values().find(|a| {
                a.get("ServiceID").and_then(Value::as_str) == Some(i.id.as_str())
                    && a.get("Name").and_then(Value::as_str) == Some(c.name.as_str())
            });
            if let Some(out) =
                own.and_then(|a| a.get("Output")).and_then(Value::as_str).filter(|o| !o.trim().is_empty())
            {
                c.output = super::condition::shorten(out);
            }
        }
    }
}

/// The node of the service's checks on this agent (`Node` of a `/v1/agent/checks` entry).
pub fn node_of_service_checks(checks: &serde_json::Map<String, Value>, service: &str) -> Option<String> {
    checks
        .values()
        .filter(|c| c.get("ServiceName").and_then(Value::as_str) == Some(service))
        .find_map(|c| c.get("Node").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_string))
}

pub fn judge_read(
    service: &str,
    node: Option<&str>,
    reply: &Result<Reply, HttpFailure>,
    url: &str,
) -> Option<CheckResult> {
    let r = reply.as_ref().ok().filter(|r| r.status == 200)?;
    let items: Vec<Value> = r.json().ok()?;
    let allow = |i: usize| items.get(i).and_then(|v| v.get("Allow")).and_then(Value::as_bool);
    let service_ok = allow(0)?;
    let node_ok = if node.is_some() { allow(1)? } else { true };
    let every_node = match node {
        Some("") => Some(node_ok),
        _ => allow(2),
    };
    let mut r = if service_ok && node_ok {
        let r = CheckResult::pass(
            "wait.acl",
            match (node, every_node) {
                (Some(""), _) => format!("the token may read service {service:?} and every node"),
                (Some(n), Some(false)) => format!("the token may read service {service:?} and node {n:?}, but not every node: instances registered on other nodes are filtered out of its answers"),
                (Some(n), _) => format!("the token may read service {service:?} and node {n:?}"),
                (None, _) => format!("the token may read service {service:?}"),
            },
        );
        match every_node {
            Some(false) => r.with("every_node_read", "false"),
            _ => r,
        }
    } else {
        let mut denied = Vec::new();
        if !service_ok {
            denied.push(format!("service:read on {service:?}"));
        }
        match node {
            Some("") if !node_ok => denied.push("node:read on the nodes the instances live on (asked for every node, node_prefix \"\": the token's own node is not known without agent:read)".to_string()),
            Some(n) if !node_ok => denied.push(format!("node:read on {n:?}")),
            _ => {}
        }
        CheckResult::finding(
            codes::WAIT_NO_READ,
            "wait.acl",
            format!(
                "the token may not read what the health endpoint returns ({} denied): Consul filters GET /v1/health/service/{service} to [] for it, which looks exactly like \"not registered\"; not waiting for the deadline",
                denied.join(", ")
            ),
            format!(
                "give the deploy token read access: consul acl policy create -name {service}-read -rules 'service \"{service}\" {{ policy = \"read\" }} node_prefix \"\" {{ policy = \"read\" }}', then consul acl token update -id <AccessorID> -policy-name {service}-read -merge-policies"
            ),
        )
    };
    r = r.with("request", format!("POST {url}"));
    r.elapsed_ms = r.elapsed_ms.max(reply.as_ref().map(|x| x.elapsed.as_millis() as u64).unwrap_or(0));
    Some(r)
}

/// At the deadline, a condition that found too few instances while the token may read this
/// agent's node but not every node: instances elsewhere are filtered out of the answer, so
/// "none registered" cannot be told from "hidden" (WAIT-004, with what was asked).
pub fn hidden_elsewhere(read: &CheckResult, condition: &CheckResult, service: &str) -> Option<CheckResult> {
    let partial = read.evidence.get("every_node_read").is_some_and(|v| v == "false");
    let too_few = matches!(
        condition.code,
        Some(c) if c == codes::WAIT_NOT_REGISTERED.code || c == codes::WAIT_TOO_FEW.code || c == codes::WAIT_AGENT_LOST_REGISTRATIONS.code || c == codes::WAIT_NOT_REGISTERED_BY_OWNER.code
    );
    if !partial || !too_few {
        return None;
    }
    let mut r = CheckResult::finding(
        codes::WAIT_NO_READ,
        "wait.condition",
        format!(
            "{}; but the token may not read every node (node_prefix \"\"), so Consul leaves instances registered on other nodes out of GET /v1/health/service/{service}: whether they exist cannot be told",
            condition.message
        ),
        format!(
            "give the deploy token read on every node: consul acl policy create -name {service}-read -rules 'service \"{service}\" {{ policy = \"read\" }} node_prefix \"\" {{ policy = \"read\" }}', then consul acl token update -id <AccessorID> -policy-name {service}-read -merge-policies"
        ),
    );
    r.evidence = condition.evidence.clone();
    Some(r)
}

/// The finding for a condition that did not hold at the deadline (a pass when it did).
pub fn judge_condition(
    cond: &Condition,
    tally: &Tally,
    instances: &[Instance],
    local: Option<&[LocalService]>,
    agent_node: &str,
    waited: &str,
) -> CheckResult {
    let what = cond.describe();
    if tally.met {
        return CheckResult::pass(
            "wait.condition",
            format!("{what}: holds ({} of {} passing)", tally.passing, tally.matching),
        );
    }
    let matching: Vec<&Instance> = instances.iter().filter(|i| cond.matches(i)).collect();
    let list = |v: &[&Instance]| {
        v.iter()
            .take(5)
            .map(|i| match i.worst_check() {
                Some(w) => format!("{} on node {} {}: {w}", i.id, i.node, i.health().as_str()),
                None => format!("{} on node {} {}", i.id, i.node, i.health().as_str()),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match cond.goal {
        Goal::Gone => CheckResult::finding(
            codes::WAIT_STILL_REGISTERED,
            "wait.condition",
            format!("{what}: {} instance(s) still registered after {waited}: {}", matching.len(), list(&matching)),
            "deregister in the shutdown hook (consul services deregister -id=<ID>, or PUT /v1/agent/service/deregister/<ID> on the instance's own agent); set DeregisterCriticalServiceAfter on its check so a crashed instance is removed; consul force-leave <node> for a node that is gone",
        ),
        _ if matching.is_empty() => not_in_catalog(cond, &what, instances, local, agent_node, waited),
        Goal::Registered => unreachable_registered(&what),
        Goal::Passing(n) => {
            let failing: Vec<&Instance> = matching.iter().copied().filter(|i| i.health() != Health::Passing).collect();
            // Owned instances (consul-k8s pods, a peer's): the owner's side, never agent advice.
            if let Some(owner) = failing.first().and_then(|i| i.owner.as_ref()) {
                return CheckResult::finding(
                    codes::WAIT_OWNED_NOT_READY,
                    "wait.condition",
                    format!(
                        "{what}: {} of {} instance(s) passing after {waited}; not passing, registered by {}: {}",
                        tally.passing,
                        matching.len(),
                        owner.describe(),
                        list(&failing)
                    ),
                    crate::agentless::owner_fix(owner),
                )
                .with("owner", owner.describe());
            }
            if tally.passing == 0 {
                CheckResult::finding(
                    codes::WAIT_NOT_PASSING,
                    "wait.condition",
                    format!("{what}: in the catalog but 0 of {} instance(s) passing after {waited}; {}", matching.len(), list(&failing)),
                    "read the check output above: the agent on the instance's node runs the check, so probe the same URL or port from there; run consul-doctor check --service-file <definition> for the health probe and the definition checks",
                )
            } else {
                CheckResult::finding(
                    codes::WAIT_TOO_FEW,
                    "wait.condition",
                    format!("{what}: {} of {} instance(s) passing after {waited}, {n} required; not passing: {}", tally.passing, matching.len(), if failing.is_empty() { "none (too few instances registered)".to_string() } else { list(&failing) }),
                    "start or fix the instances listed (their check output says why they fail); confirm how many run with consul catalog nodes -service=<name>; lower --min-passing only if fewer are intended",
                )
            }
        }
    }
}

/// At most how long ago the agent process started, from Go's runtime: the runtime forces a
/// garbage collection when none ran for 2 minutes (its sysmon looks at least once a minute), so
/// after `n >= 1` collections (`consul.runtime.total_gc_runs`, `/v1/agent/metrics`) the process
/// is younger than about `(n + 1) * 3` minutes. Consul 1.8 exposes no start time; this bound is
/// what its agent does expose.
///
/// The endpoint shows the last finished 10-second interval of go-metrics' in-memory sink
/// (intervals aligned on the clock), and the runtime gauges are emitted every second: an interval
/// with gauges but none of the runtime ones is the agent's first, cut short by the clock — seen on
/// a 1.8.7 agent restarted seconds before — so the agent is younger than about two intervals
/// (reported as a minute, with 0 collections). `None` without any gauge, or before the first
/// collection (Go forces none until one has run).
pub fn uptime_bound(metrics: &Value) -> Option<(u64, std::time::Duration)> {
    let gauges = metrics.get("Gauges")?.as_array()?;
    let named = |name: &str| gauges.iter().find(|g| g.get("Name").and_then(Value::as_str) == Some(name));
    let Some(gc) = named("consul.runtime.total_gc_runs") else {
        let runtime = gauges
            .iter()
            .any(|g| g.get("Name").and_then(Value::as_str).is_some_and(|n| n.starts_with("consul.runtime.")));
        return (!gauges.is_empty() && !runtime).then_some((0, std::time::Duration::from_secs(60)));
    };
    let n = gc.get("Value")?.as_f64()?;
    (n >= 1.0).then(|| (n as u64, std::time::Duration::from_secs((n as u64 + 1) * 180)))
}

/// Reads [`uptime_bound`] from the agent (needs agent:read; `None` otherwise).
pub async fn agent_uptime_bound(client: &ConsulClient) -> Option<(u64, std::time::Duration)> {
    let r = client.get("/v1/agent/metrics").await.ok().filter(|r| r.status == 200)?;
    let bound = uptime_bound(&r.json::<Value>().ok()?)?;
    if bound.0 > 0 {
        return Some(bound);
    }
    // No runtime gauges: a first interval only if telemetry filters could not have dropped them.
    let r = client.get("/v1/agent/self").await.ok().filter(|r| r.status == 200)?;
    unfiltered_telemetry(&r.json::<Value>().ok()?).then_some(bound)
}

/// The agent's telemetry keeps every metric (`DebugConfig.Telemetry` of 1.8.7: no allowed or
/// blocked prefixes, `FilterDefault` true, not disabled), so a missing runtime gauge is not a filter.
pub fn unfiltered_telemetry(agent_self: &Value) -> bool {
    let t = &agent_self["DebugConfig"]["Telemetry"];
    let empty = |k: &str| t.get(k).and_then(Value::as_array).is_some_and(Vec::is_empty);
    empty("AllowedPrefixes")
        && empty("BlockedPrefixes")
        && t.get("FilterDefault").and_then(Value::as_bool) == Some(true)
        && t.get("Disable").and_then(Value::as_bool) == Some(false)
}

/// The agent started recently: a young agent counts as one that may have lost registrations.
/// Collections the heap triggers (a busy start-up allocates a lot) make the bound loose, never
/// too small, so the limit is generous: an hour, about 19 collections.
pub const RECENT_START: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// No matching instance, and the agent restarted recently while the service is known (other
/// instances of it in the catalog, or the condition names this agent's node): registrations made
/// through the HTTP API live only in the agent's data directory, and an agent recreated without
/// it (a container without a volume, a data_dir on tmpfs) comes back without them.
pub fn judge_lost(
    cond: &Condition,
    instances: &[Instance],
    agent_node: &str,
    bound: Option<(u64, std::time::Duration)>,
    waited: &str,
) -> Option<CheckResult> {
    let (gcs, bound) = bound.filter(|(_, b)| *b <= RECENT_START)?;
    if agent_node.is_empty() || instances.iter().any(|i| cond.matches(i) && i.node == agent_node) {
        return None;
    }
    let siblings: Vec<String> = instances
        .iter()
        .filter(|i| i.node != agent_node)
        .take(5)
        .map(|i| format!("{} on node {}", i.id, i.node))
        .collect();
    let named = cond.node.as_deref() == Some(agent_node);
    if siblings.is_empty() && !named {
        return None;
    }
    let known = if siblings.is_empty() {
        format!("the condition expects it on node {agent_node}")
    } else {
        format!("the catalog still knows {:?} elsewhere ({})", cond.service, siblings.join("; "))
    };
    let minutes = bound.as_secs() / 60;
    let how = if gcs == 0 {
        "its metrics carry no runtime statistics yet, which only an agent in its first metrics interval shows"
            .to_string()
    } else {
        format!("{gcs} garbage collections; Go forces one at least every 2 minutes")
    };
    Some(
        CheckResult::finding(
            codes::WAIT_AGENT_LOST_REGISTRATIONS,
            "wait.condition",
            format!(
                "{}: nothing registered on agent {agent_node} after {waited}, and that agent started less than {minutes} minute(s) ago ({how}), while {known}: a service registered through the HTTP API lives only in the agent's data directory, so an agent restarted or recreated without it comes back without the service, and nothing registers it again",
                cond.describe()
            ),
            format!(
                "make the registration durable: put the definition in the agent's configuration directory (service {{ name = \"{}\" ... }} in a file under -config-dir, read again at every start), or keep data_dir on a persistent volume; or have the application re-register when its agent restarts (consul services register <file> in the agent's start-up hook)",
                cond.service
            ),
        )
        .with("agent_node", agent_node)
        .with("agent_started_within", format!("{minutes}m")),
    )
}

/// How `wait` learned that instances here are registered by an owner other than an agent,
/// when none matches the condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerEvidence {
    /// Instances of the service that do not match are the owner's.
    Siblings(crate::agentless::Owner),
    /// The catalog holds consul-k8s's synthetic nodes (names of the first few, and how many):
    /// consul-dataplane, where no client agent registers anything.
    SyntheticNodes { names: Vec<String>, count: usize },
}

/// The synthetic nodes consul-k8s's endpoints controller registers pods on, from
/// `GET /v1/catalog/nodes?node-meta=synthetic-node:true` (`agent/http.go` parseMetaFilter; the
/// meta key from consul-k8s `endpoints_controller.go`, `metaKeySyntheticNode`). Empty when
/// there are none, when the token may not read them, or when the list cannot be read.
pub async fn synthetic_nodes(client: &ConsulClient, dc: Option<&str>) -> (Vec<String>, usize) {
    let mut path = format!("/v1/catalog/nodes?node-meta={}:true", crate::agentless::META_SYNTHETIC_NODE);
    if let Some(dc) = dc {
        path.push_str(&format!("&dc={}", crate::consul::urlencode(dc)));
    }
    match client.get_json_streamed::<Vec<NodeName>>(&path).await {
        Ok(Ok(nodes)) => (nodes.iter().take(3).map(|n| n.node.clone()).collect(), nodes.len()),
        _ => (Vec::new(), 0),
    }
}

/// A `/v1/catalog/nodes` entry, only its name.
#[derive(serde::Deserialize)]
pub struct NodeName {
    #[serde(rename = "Node")]
    node: String,
}

/// What the service's non-matching instances say about their owner (no request needed).
pub fn siblings_owner(instances: &[Instance]) -> Option<OwnerEvidence> {
    instances
        .iter()
        .find_map(|i| i.owner.clone())
        .filter(|o| !matches!(o, crate::agentless::Owner::Peer(_)))
        .map(OwnerEvidence::Siblings)
}

/// "; N instance(s) of "svc" do not match: …" (the first five), or nothing.
fn unmatched(svc: &str, instances: &[Instance]) -> String {
    if instances.is_empty() {
        return String::new();
    }
    let shown: Vec<String> =
        instances.iter().take(5).map(|i| format!("{} on node {} tags [{}]", i.id, i.node, i.tags.join(", "))).collect();
    format!("; {} instance(s) of {svc:?} do not match: {}", instances.len(), shown.join("; "))
}

/// WAIT-017: no matching instance where an owner other than an agent registers them. For
/// consul-k8s (consul-dataplane) the endpoints controller registers a pod only when a Kubernetes
/// Service selects it, the pod was injected and its namespace is allowed (consul-k8s
/// `control-plane/connect-inject/controllers/endpoints/endpoints_controller.go`: Reconcile,
/// `common.ShouldIgnore`, `isLabeledIgnore`, `hasBeenInjected`, `serviceName`; annotation and
/// label names from `control-plane/connect-inject/constants/annotations_and_labels.go`), so that
/// is where to look, never at an agent.
pub fn not_registered_by_owner(
    cond: &Condition,
    instances: &[Instance],
    evidence: &OwnerEvidence,
    waited: &str,
) -> CheckResult {
    let what = cond.describe();
    let svc = &cond.service;
    let others = unmatched(svc, instances);
    let (how, k8s, k8s_ns) = match evidence {
        OwnerEvidence::Siblings(owner) => {
            let ns = match owner {
                crate::agentless::Owner::ConsulK8s { k8s_namespace, .. } => k8s_namespace.clone(),
                _ => None,
            };
            (
                format!("its instances are registered by {}", owner.describe()),
                matches!(owner, crate::agentless::Owner::ConsulK8s { .. }),
                ns,
            )
        }
        OwnerEvidence::SyntheticNodes { names, count } => (
            format!(
                "the catalog holds {count} synthetic node(s) of consul-k8s's endpoints controller ({}{}): Kubernetes pods are registered there by the controller, not by an agent, and none was registered as {svc:?}",
                names.join(", "),
                if *count > names.len() { ", …" } else { "" }
            ),
            true,
            None,
        ),
    };
    let fix = match (evidence, k8s) {
        (OwnerEvidence::Siblings(owner), false) => crate::agentless::owner_fix(owner),
        _ => {
            let ns = k8s_ns.as_deref().map(|n| format!("-n {n}")).unwrap_or_else(|| "-A".to_string());
            let tags = if cond.tags.is_empty() {
                String::new()
            } else {
                " The tags come from the pod's consul.hashicorp.com/service-tags annotation.".to_string()
            };
            format!(
                "the endpoints controller registers a pod only when a Kubernetes Service selects it (the Consul name is the Service's name, or the pod's consul.hashicorp.com/connect-service annotation): kubectl get endpoints {ns} --field-selector metadata.name={svc}; the pod must be injected (annotation consul.hashicorp.com/connect-inject-status: injected; set consul.hashicorp.com/connect-inject: \"true\" or connectInject.default), its namespace allowed by connectInject.k8sAllowNamespaces / k8sDenyNamespaces, and the Endpoints not labelled consul.hashicorp.com/service-ignore=true; on Enterprise the pod's consul.hashicorp.com/consul-namespace annotation names the Consul namespace it went to.{tags} The controller's log says what it did: kubectl logs -n <consul namespace> deploy/<release>-connect-injector | grep {svc} (\"registering service with Consul\" or \"failed to register service\")"
            )
        }
    };
    let owner = match evidence {
        OwnerEvidence::Siblings(o) => o.describe(),
        OwnerEvidence::SyntheticNodes { .. } => "consul-k8s's endpoints controller".to_string(),
    };
    CheckResult::finding(
        codes::WAIT_NOT_REGISTERED_BY_OWNER,
        "wait.condition",
        format!("{what}: no matching instance registered within {waited}: {how}{others}"),
        fix,
    )
    .with("owner", owner)
}

fn unreachable_registered(what: &str) -> CheckResult {
    // Registered with a matching instance always holds; kept total for any input.
    CheckResult::pass("wait.condition", format!("{what}: holds"))
}

fn not_in_catalog(
    cond: &Condition,
    what: &str,
    instances: &[Instance],
    local: Option<&[LocalService]>,
    agent_node: &str,
    waited: &str,
) -> CheckResult {
    // Imported services: nothing registers them here; the peer exports them (or not).
    if let Some(peer) = &cond.peer {
        return CheckResult::finding(
            codes::WAIT_PEER_NOT_EXPORTED,
            "wait.condition",
            format!(
                "{what}: a consumer in this cluster sees no matching instance imported from peer {peer:?} within {waited} (GET /v1/health/service/{}?peer={peer} answered {} instance(s))",
                cond.service,
                instances.len()
            ),
            crate::agentless::owner_fix(&crate::agentless::Owner::Peer(peer.clone())),
        );
    }
    if let Some(on_agent) = local.filter(|l| !l.is_empty()) {
        let ids = on_agent.iter().map(|l| l.id.as_str()).collect::<Vec<_>>().join(", ");
        return CheckResult::finding(
            codes::SYN_MISSING,
            "wait.condition",
            format!(
                "{what}: registered on agent {agent_node} (ID {ids}) but not in the catalog after {waited}: the agent cannot sync it (anti-entropy), so nobody else can find it"
            ),
            "check the agent log for \"blocked by ACLs\" or \"failed to sync remote state\" (consul monitor -log-level=warn); re-register with a token that has service:write and give the agent a token with node:write (consul acl set-agent-token agent <token>)",
        )
        .with("agent_node", agent_node);
    }
    let others = unmatched(&cond.service, instances);
    let local_note = match local {
        Some(_) => format!(" (and none on agent {agent_node})"),
        None => String::new(),
    };
    CheckResult::finding(
        codes::WAIT_NOT_REGISTERED,
        "wait.condition",
        format!("{what}: no matching instance registered on any agent within {waited}{local_note}{others}"),
        "check that the application registers itself (its log, the agent address it uses) under this name, ID and tags: consul catalog services -tags (it lists what is registered); register by hand to confirm: consul services register <definition>",
    )
}

/// `--connect` at the deadline, when the service itself passes: its sidecar does not pass
/// (WAIT-015, with the worst sidecar check, a refused listener named as the proxy not running)
/// or there is none in the mesh at all (WAIT-016). `start` is the command that starts a proxy
/// for a service ID.
pub fn judge_mesh_condition(
    cond: &Condition,
    instances: &[Instance],
    mesh: &[Instance],
    waited: &str,
    start: &dyn Fn(&str) -> String,
) -> Option<CheckResult> {
    let healthy: Vec<&Instance> =
        instances.iter().filter(|i| cond.matches(i) && i.health() == Health::Passing).collect();
    if healthy.is_empty() || super::condition::judge_mesh(cond, instances, mesh).met {
        return None;
    }
    let what = cond.describe();
    let with_entry: Vec<(&Instance, &Instance)> =
        healthy.iter().filter_map(|i| super::condition::mesh_entry(i, mesh).map(|m| (*i, m))).collect();
    let failing: Vec<&(&Instance, &Instance)> =
        with_entry.iter().filter(|(_, m)| m.health() != Health::Passing).collect();
    if let Some((i, m)) = failing.first() {
        let worst = m.worst_check().unwrap_or_else(|| format!("{} is {}", m.id, m.health().as_str()));
        let refused = worst.contains("connection refused");
        let cause = if refused { ": nothing listens on the proxy port, the proxy is not running" } else { "" };
        return Some(
            CheckResult::finding(
                codes::WAIT_SIDECAR_NOT_PASSING,
                "wait.condition",
                format!(
                    "{what}: \"{}\" passes on {} instance(s), but after {waited} its sidecar {} on node {} does not: {worst}{cause}",
                    cond.service,
                    healthy.len(),
                    m.id,
                    m.node
                ),
                if refused {
                    format!("start the proxy on node {} before the gate: {}", m.node, start(&i.id))
                } else {
                    format!("fix the sidecar's failing check (consul-doctor check --service {}), then wait again", cond.service)
                },
            )
            .with("sidecar", m.id.clone()),
        );
    }
    let i = healthy[0];
    Some(CheckResult::finding(
        codes::WAIT_NOT_IN_MESH,
        "wait.condition",
        format!(
            "{what}: \"{}\" passes on {} instance(s), but nothing in /v1/health/connect/{} stands for {} on node {}: it has no sidecar proxy and is not Connect-native, so no mesh consumer will ever find it",
            cond.service,
            healthy.len(),
            cond.service,
            i.id,
            i.node
        ),
        format!("register {:?} with connect {{ sidecar_service {{}} }} (or native = true) and start its proxy: {}", cond.service, start(&i.id)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::condition::{judge, CheckState};

    fn cond(goal: Goal) -> Condition {
        Condition { service: "web".into(), id: None, tags: vec![], node: None, goal, connect: false, peer: None }
    }

    fn inst(id: &str, status: &str) -> Instance {
        Instance {
            proxy_for: None,
            node: "n1".into(),
            id: id.into(),
            tags: vec![],
            checks: vec![CheckState { name: "http".into(), status: status.into(), output: "HTTP GET /: 503".into() }],
            owner: None,
        }
    }

    fn code(c: &Condition, list: &[Instance], local: Option<&[LocalService]>) -> Option<&'static str> {
        judge_condition(c, &judge(c, list), list, local, "n1", "2s").code
    }

    #[test]
    fn connect_failures_name_the_sidecar() {
        let mut c = cond(Goal::Passing(1));
        c.connect = true;
        let web = vec![inst("web", "passing")];
        let mut sidecar = inst("web-sidecar-proxy", "critical");
        sidecar.proxy_for = Some("web".into());
        sidecar.checks[0] = CheckState {
            name: "Connect Sidecar Listening".into(),
            status: "critical".into(),
            output: "dial tcp 127.0.0.1:21000: connect: connection refused".into(),
        };
        let start = |id: &str| format!("consul connect proxy -sidecar-for={id}");
        let r = judge_mesh_condition(&c, &web, std::slice::from_ref(&sidecar), "2s", &start).unwrap();
        assert_eq!(r.code, Some("WAIT-015"));
        assert!(r.message.contains("proxy is not running") && r.fix.unwrap().contains("-sidecar-for=web"));
        let r = judge_mesh_condition(&c, &web, &[], "2s", &start).unwrap();
        assert_eq!(r.code, Some("WAIT-016"));
        sidecar.checks[0].status = "passing".into();
        assert!(judge_mesh_condition(&c, &web, &[sidecar], "2s", &start).is_none());
        assert!(judge_mesh_condition(&c, &[inst("web", "critical")], &[], "2s", &start).is_none());
    }

    #[test]
    fn each_failure_mode_has_its_code() {
        let none: &[LocalService] = &[];
        assert_eq!(code(&cond(Goal::Passing(1)), &[], Some(none)), Some("WAIT-001"));
        let on_agent = [LocalService { id: "web-1".into(), tags: vec![] }];
        assert_eq!(code(&cond(Goal::Passing(1)), &[], Some(&on_agent)), Some("SYN-001"));
        assert_eq!(code(&cond(Goal::Registered), &[], Some(&on_agent)), Some("SYN-001"));
        assert_eq!(code(&cond(Goal::Passing(1)), &[inst("a", "critical")], None), Some("WAIT-002"));
        assert_eq!(
            code(&cond(Goal::Passing(2)), &[inst("a", "passing"), inst("b", "critical")], None),
            Some("WAIT-003")
        );
        assert_eq!(code(&cond(Goal::Gone), &[inst("a", "passing")], None), Some("WAIT-005"));
        assert_eq!(code(&cond(Goal::Passing(1)), &[inst("a", "passing")], None), None);
        let msg =
            judge_condition(&cond(Goal::Passing(1)), &Tally::default(), &[inst("a", "critical")], None, "n1", "2s")
                .message;
        assert!(msg.contains("HTTP GET /: 503"), "{msg}");
    }

    #[test]
    fn no_instance_where_consul_k8s_registers_is_wait_017_with_the_controllers_side() {
        let c = cond(Goal::Passing(1));
        let synthetic = OwnerEvidence::SyntheticNodes { names: vec!["gke-node-1-virtual".into()], count: 4 };
        let r = not_registered_by_owner(&c, &[], &synthetic, "2s");
        assert_eq!(r.code, Some("WAIT-017"));
        assert!(
            r.message.contains("4 synthetic node(s)") && r.message.contains("gke-node-1-virtual, …"),
            "{}",
            r.message
        );
        let fix = r.fix.clone().unwrap();
        assert!(fix.contains("kubectl get endpoints -A --field-selector metadata.name=web"), "{fix}");
        assert!(fix.contains("consul.hashicorp.com/connect-inject-status"), "{fix}");
        assert!(!fix.contains("consul services register") && !fix.contains("agent address"), "no agent advice: {fix}");
        // Tagged instances of the pods exist, none with the tag: the pods' own namespace, and
        // where the tags come from.
        let mut tagged = c.clone();
        tagged.tags = vec!["canary".into()];
        let mut pod = inst("web-6d4f9c7b8-x2x9q-web", "passing");
        pod.owner = Some(crate::agentless::Owner::ConsulK8s {
            k8s_namespace: Some("shop".into()),
            pod: Some("web-6d4f9c7b8-x2x9q".into()),
            k8s_service: Some("web".into()),
        });
        let evidence = siblings_owner(std::slice::from_ref(&pod)).expect("the pod's owner");
        let r = not_registered_by_owner(&tagged, &[pod], &evidence, "2s");
        assert_eq!(r.code, Some("WAIT-017"));
        assert!(r.message.contains("do not match: web-6d4f9c7b8-x2x9q-web"), "{}", r.message);
        let fix = r.fix.unwrap();
        assert!(fix.contains("kubectl get endpoints -n shop") && fix.contains("service-tags"), "{fix}");
        // Agent registrations and peers' instances are not an owner's registrations here.
        assert_eq!(siblings_owner(&[inst("web-1", "passing")]), None);
        let mut imported = inst("api-1", "passing");
        imported.owner = Some(crate::agentless::Owner::Peer("dc2".into()));
        assert_eq!(siblings_owner(&[imported]), None);
    }

    #[test]
    fn tags_that_match_nothing_list_the_instances_that_exist() {
        let mut c = cond(Goal::Passing(1));
        c.tags = vec!["v9".into()];
        let r =
            judge_condition(&c, &judge(&c, &[inst("a", "passing")]), &[inst("a", "passing")], Some(&[]), "n1", "2s");
        assert_eq!(r.code, Some("WAIT-001"));
        assert!(r.message.contains("do not match: a on node n1"), "{}", r.message);
    }

    #[test]
    fn read_permission_denied_is_the_acl_finding() {
        let reply = |body: &str| {
            Ok(Reply {
                status: 200,
                headers: Default::default(),
                body: body.as_bytes().to_vec(),
                elapsed: Default::default(),
            })
        };
        let denied = judge_read("web", Some("n1"), &reply(r#"[{"Allow": false}, {"Allow": true}]"#), "u").unwrap();
        assert_eq!(denied.code, Some("WAIT-004"));
        assert!(denied.message.contains("service:read"));
        let ok = judge_read("web", Some("n1"), &reply(r#"[{"Allow": true}, {"Allow": true}]"#), "u").unwrap();
        assert_eq!(ok.code, None);
        let off = Ok(Reply {
            status: 401,
            headers: Default::default(),
            body: b"ACL support disabled".to_vec(),
            elapsed: Default::default(),
        });
        assert!(judge_read("web", None, &off, "u").is_none());
        // A minimal deploy token: service read only, node unknown (no agent:read).
        let minimal = judge_read("web", Some(""), &reply(r#"[{"Allow": true}, {"Allow": false}]"#), "u").unwrap();
        assert_eq!(minimal.code, Some("WAIT-004"));
        assert!(minimal.message.contains("node_prefix"), "{}", minimal.message);
        // This node readable, not every node: a pass that remembers it, and at the deadline
        // "none registered" becomes "hidden" (WAIT-004).
        let partial =
            judge_read("web", Some("n1"), &reply(r#"[{"Allow": true}, {"Allow": true}, {"Allow": false}]"#), "u")
                .unwrap();
        assert_eq!((partial.code, partial.evidence.get("every_node_read").map(String::as_str)), (None, Some("false")));
        let none = judge_condition(&cond(Goal::Passing(1)), &Tally::default(), &[], Some(&[]), "n1", "2s");
        assert_eq!(hidden_elsewhere(&partial, &none, "web").and_then(|r| r.code), Some("WAIT-004"));
        let ok = judge_read("web", Some("n1"), &reply(r#"[{"Allow": true}, {"Allow": true}, {"Allow": true}]"#), "u")
            .unwrap();
        assert!(hidden_elsewhere(&ok, &none, "web").is_none());
    }

    #[test]
    fn the_owning_agents_output_and_the_maintenance_reason_are_shown() {
        let mut list = vec![inst("a", "critical")];
        list[0].checks[0].output = String::new();
        let agent = json!({"service:a": {"ServiceID": "a", "Name": "http", "Output": "dial tcp 10.0.0.1:80: connect: connection refused"}});
        overlay_agent_view(&mut list, "n2", agent.as_object().unwrap());
        assert_eq!(list[0].checks[0].output, "", "another node's agent is not asked");
        overlay_agent_view(&mut list, "n1", agent.as_object().unwrap());
        assert!(list[0].worst_check().unwrap().contains("connection refused"));
        let entry = r#"{"Node": {"Node": "n1"}, "Service": {"ID": "a"}, "Checks": [{"CheckID": "_service_maintenance:a", "Name": "Service Maintenance Mode", "Status": "critical", "Output": "", "Notes": "deploying v2"}]}"#;
        let i: Instance = serde_json::from_str(entry).unwrap();
        assert_eq!(i.worst_check().unwrap(), "Service Maintenance Mode: maintenance: deploying v2");
    }

    #[test]
    fn an_agent_that_restarted_recently_lost_the_api_registration() {
        let metrics = |n: f64| json!({"Gauges": [{"Name": "consul.runtime.total_gc_runs", "Value": n}]});
        assert_eq!(uptime_bound(&metrics(5.0)).map(|(n, d)| (n, d.as_secs())), Some((5, 18 * 60)));
        assert_eq!(uptime_bound(&metrics(0.0)), None, "no bound before the first collection");
        assert_eq!(uptime_bound(&json!({"Gauges": []})), None);
        // The agent's first, clock-cut metrics interval: other gauges, no runtime ones yet
        // (what a 1.8.7 agent restarted seconds before answered).
        let first = json!({"Gauges": [{"Name": "consul.memberlist.health.score", "Value": 1}]});
        assert_eq!(uptime_bound(&first).map(|(n, d)| (n, d.as_secs())), Some((0, 60)));
        let other_runtime = json!({"Gauges": [{"Name": "consul.runtime.num_goroutines", "Value": 80}]});
        assert_eq!(uptime_bound(&other_runtime), None, "runtime gauges without the count: no bound");
        let telemetry = |blocked: Value| json!({"DebugConfig": {"Telemetry": {"AllowedPrefixes": [], "BlockedPrefixes": blocked, "FilterDefault": true, "Disable": false}}});
        assert!(unfiltered_telemetry(&telemetry(json!([]))));
        assert!(!unfiltered_telemetry(&telemetry(json!(["consul.runtime"]))), "a filter may drop them");
        assert!(!unfiltered_telemetry(&json!({"DebugConfig": {}})), "unknown settings: no inference");
        let mut c = cond(Goal::Passing(1));
        c.node = Some("n1".into());
        let young = uptime_bound(&metrics(5.0));
        let old = uptime_bound(&metrics(60.0));
        let sibling = {
            let mut i = inst("web-2", "passing");
            i.node = "n2".into();
            i
        };
        let r = judge_lost(&c, std::slice::from_ref(&sibling), "n1", young, "2s").expect("lost");
        assert_eq!(r.code, Some("WAIT-013"));
        assert!(r.message.contains("web-2 on node n2") && r.fix.unwrap().contains("configuration directory"));
        assert!(judge_lost(&c, std::slice::from_ref(&sibling), "n1", old, "2s").is_none(), "an old agent lost nothing");
        assert!(judge_lost(&c, &[], "n1", young, "2s").is_some(), "the condition names this node");
        let any = cond(Goal::Passing(1));
        assert!(judge_lost(&any, &[], "n1", young, "2s").is_none(), "nothing says it was ever there");
    }

    #[test]
    fn the_node_comes_from_the_services_own_checks() {
        let checks = json!({"service:web-1": {"Node": "app01", "ServiceName": "web"}, "other": {"Node": "app01", "ServiceName": "db"}});
        assert_eq!(node_of_service_checks(checks.as_object().unwrap(), "web").as_deref(), Some("app01"));
        assert_eq!(node_of_service_checks(checks.as_object().unwrap(), "api"), None);
    }
}
