//! The connected agent's own view of its node, beside the catalog's: the agent is the owner of
//! the instances on its node. Two things only it can tell: which of them it really knows (an
//! instance written there with `/v1/catalog/register` is removed by its anti-entropy, SCN-030),
//! and the checks' current output (Consul 1.8 syncs output-only changes to the catalog every
//! 5 minutes, so the catalog may still say nothing while the agent already knows why).
//! Read-only, and never a reason to prune: its findings are added after the prune plan is made.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::codes;
use crate::consul::ConsulClient;
use crate::diagnosis::stages::{decode, Answer};
use crate::report::CheckResult;
use crate::scan::judge::Finding;
use crate::scan::model::Catalog;

/// Longest check output kept from the agent (as the catalog's, see `model`).
const OUTPUT_KEPT: usize = 200;

/// What the agent says about its own node.
#[derive(Debug, Default)]
pub struct AgentView {
    pub node: String,
    /// Service IDs the agent has.
    pub services: HashSet<String>,
    /// Check ID -> current output (a maintenance check: its reason).
    pub outputs: HashMap<String, String>,
}

/// Reads `/v1/agent/services` and `/v1/agent/checks`; `None` when either is unreadable (a 403
/// without agent:read/service:read, an old or broken agent): then nothing is judged.
pub async fn read(client: &ConsulClient, node: &str) -> Option<AgentView> {
    let (services, checks) = tokio::join!(client.get("/v1/agent/services"), client.get("/v1/agent/checks"));
    let Answer::Ok(services) = decode::<Map<String, Value>>("GET /v1/agent/services", &services, client.timeout, false)
    else {
        return None;
    };
    let Answer::Ok(checks) = decode::<Map<String, Value>>("GET /v1/agent/checks", &checks, client.timeout, false)
    else {
        return None;
    };
    Some(view(node, &services, &checks))
}

/// The view from decoded answers.
pub fn view(node: &str, services: &Map<String, Value>, checks: &Map<String, Value>) -> AgentView {
    let outputs = checks
        .iter()
        .map(|(id, c)| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").trim().to_string();
            let maintenance = id.starts_with("_service_maintenance:") || id == "_node_maintenance";
            let text = match (maintenance, s("Output").is_empty(), s("Notes")) {
                (true, true, notes) if !notes.is_empty() => format!("maintenance: {notes}"),
                _ => s("Output"),
            };
            let mut kept: String = text.chars().take(OUTPUT_KEPT).collect();
            if text.chars().count() > OUTPUT_KEPT {
                kept.push('…');
            }
            (id.clone(), kept)
        })
        .collect();
    AgentView { node: node.to_string(), services: services.keys().cloned().collect(), outputs }
}

/// Puts the agent's current check output on the instances of its node where the catalog's is
/// older (statuses are left as the catalog has them).
pub fn overlay(cat: &mut Catalog, v: &AgentView) {
    // The agent's own node is a local one: a peer's node of the same name is another node.
    let Some(n) = cat.nodes().position(|x| *x.name == *v.node && x.peer.is_empty()) else { return };
    let mine: Vec<usize> = (0..cat.instance_count())
        .filter(|&k| cat.instance(k).node == n && v.services.contains(cat.instance(k).id))
        .collect();
    for k in mine {
        // Only checks that are not passing keep an output (see the model).
        for c in cat.failing_mut(k) {
            if let Some(out) = v.outputs.get(&*c.id).filter(|o| !o.is_empty()) {
                c.output = out.as_str().into();
            }
        }
    }
}

/// Instances on the agent's node that the agent does not know.
pub fn judge(cat: &Catalog, v: &AgentView) -> Vec<Finding> {
    let Some(n) = cat.nodes().position(|x| *x.name == *v.node && x.peer.is_empty()) else { return Vec::new() };
    // Listed up to the per-code cap and summed up beyond it, like the catalog's findings.
    let mut out = crate::scan::judge::Findings::default();
    cat.instances()
        // The servers' `consul` service is kept by the leader, never by an agent's own list.
        .filter(|i| i.node == n && !v.services.contains(i.id) && i.service != "consul")
        .map(|i| {
            let result = CheckResult::finding(
                codes::SCN_UNKNOWN_TO_ITS_AGENT,
                "scan.agent_view",
                format!(
                    "instance {} of \"{}\" ({}) is in the catalog on node {}, but that node's agent does not know it: it was written with /v1/catalog/register, and the agent's anti-entropy removes it at its next sync (about a minute)",
                    i.id, i.service, i.endpoint(), v.node
                ),
                format!(
                    "register it through the agent of {} (consul services register FILE, or PUT /v1/agent/service/register there); keep /v1/catalog/register for nodes no agent runs on",
                    v.node
                ),
            )
            .with("node", v.node.clone())
            .with("service_id", i.id.to_string());
            Finding {
                service: i.service.to_string(),
                node: Some(v.node.clone()),
                service_id: Some(i.id.to_string()),
                address: Some(i.endpoint()),
                result,
            }
        })
        .for_each(|f| out.push(f));
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::model::{Builder, Health, UiNode};

    /// Two nodes, three critical web instances and the servers' `consul` service, as
    /// `/v1/internal/ui/nodes` lists them (hashicorp/consul agent/structs/structs.go NodeInfo).
    fn catalog() -> Catalog {
        let svc = |id: &str, name: &str| serde_json::json!({"ID": id, "Service": name, "Port": 80});
        let crit =
            |id: &str| serde_json::json!({"CheckID": format!("service:{id}"), "Status": "critical", "ServiceID": id});
        let nodes: Vec<UiNode> = serde_json::from_value(serde_json::json!([
            {"Node": "app01", "Address": "10.0.0.1",
             "Services": [svc("web-1", "web"), svc("web-2", "web"), svc("consul", "consul")],
             "Checks": [crit("web-1"), crit("web-2"), crit("consul")]},
            {"Node": "app02", "Address": "10.0.0.1", "Services": [svc("web-3", "web")], "Checks": [crit("web-3")]}
        ]))
        .unwrap();
        let mut b = Builder::default();
        nodes.into_iter().for_each(|n| b.add_ui_node(n));
        b.finish()
    }

    #[test]
    fn unknown_to_its_own_agent_and_fresher_output() {
        let services = serde_json::json!({"web-1": {}}).as_object().unwrap().clone();
        let checks = serde_json::json!({"service:web-1": {"Output": "dial tcp 10.0.0.1:80: connect: connection refused", "Notes": ""}})
            .as_object()
            .unwrap()
            .clone();
        let v = view("app01", &services, &checks);
        let mut cat = catalog();
        overlay(&mut cat, &v);
        assert!(cat.instance(0).failing[0].output.contains("connection refused"));
        assert_eq!(cat.instance(0).failing[0].status, Health::Critical, "statuses stay the catalog's");
        let found = judge(&cat, &v);
        assert_eq!(found.len(), 1, "web-3 is on another node: not this agent's to judge");
        assert_eq!(found[0].result.code, Some("SCN-030"));
        assert_eq!(found[0].service_id.as_deref(), Some("web-2"));
    }

    #[test]
    fn maintenance_reason_is_the_output() {
        let checks = serde_json::json!({"_service_maintenance:web-1": {"Output": "", "Notes": "deploying v2"}})
            .as_object()
            .unwrap()
            .clone();
        let v = view("app01", &Map::new(), &checks);
        assert_eq!(v.outputs["_service_maintenance:web-1"], "maintenance: deploying v2");
    }
}
