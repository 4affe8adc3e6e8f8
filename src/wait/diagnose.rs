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

/// Asks whether the token may read the service and the agent's node: Consul filters health
/// results by both, so without them the list is empty whatever is registered. `None` when
/// that cannot be asked (ACLs disabled: 401 "ACL support disabled"; an agent without the
/// endpoint).
pub async fn read_permission(client: &ConsulClient, service: &str, node: Option<&str>) -> Option<CheckResult> {
    let mut body = vec![json!({"Resource": "service", "Segment": service, "Access": "read"})];
    if let Some(n) = node {
        body.push(json!({"Resource": "node", "Segment": n, "Access": "read"}));
    }
    let reply = client.post_json("/v1/internal/acl/authorize", &Value::Array(body)).await;
    judge_read(service, node, &reply, &client.url("/v1/internal/acl/authorize"))
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
    let mut r = if service_ok && node_ok {
        CheckResult::pass("wait.acl", format!("the token may read service {service:?} and its node"))
    } else {
        let mut denied = Vec::new();
        if !service_ok {
            denied.push(format!("service:read on {service:?}"));
        }
        if !node_ok {
            denied.push(format!("node:read on {:?}", node.unwrap_or("")));
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
    let others = if instances.is_empty() {
        String::new()
    } else {
        let shown: Vec<String> = instances
            .iter()
            .take(5)
            .map(|i| format!("{} on node {} tags [{}]", i.id, i.node, i.tags.join(", ")))
            .collect();
        format!("; {} instance(s) of {:?} do not match: {}", instances.len(), cond.service, shown.join("; "))
    };
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
    }
}
