//! duplicates stage: is the service's ID or address already taken? Consul never answers 409:
//! re-registering an ID on the same agent silently replaces it, the same ID on another node is
//! legal, and restarts that register new random IDs leave stale instances on one address:port.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::codes;
use crate::consul::urlencode;
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::CheckResult;
use crate::service::ServiceDef;

pub const CHECKS: &[&str] =
    &["duplicates.local_id", "duplicates.remote_id", "duplicates.address", "duplicates.critical"];

/// One instance from `/v1/health/service/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub node: String,
    /// The node's own address (where its agent runs).
    pub node_address: String,
    pub id: String,
    pub address: String,
    pub port: i64,
    pub critical: bool,
}

impl From<&super::discovery::HealthEntry> for Instance {
    fn from(e: &super::discovery::HealthEntry) -> Instance {
        Instance {
            address: if e.service.address.is_empty() { e.node.address.clone() } else { e.service.address.clone() },
            node_address: e.node.address.clone(),
            node: e.node.node.clone(),
            id: e.service.id.clone(),
            port: e.service.port,
            critical: e.checks.iter().any(|c| c.status == "critical"),
        }
    }
}

/// The agent's own services, asked ahead of the stage (`pipeline::Early`) when the run has no
/// namespace or partition to carry (the path is scoped).
pub fn ask_early(ctx: &Ctx<'_>) {
    if super::unscoped(ctx) && !ctx.facts().services.is_empty() {
        super::early_get(ctx, "/v1/agent/services".to_string());
    }
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let (services, client) = match super::service_stage_start(ctx, CHECKS) {
            Ok(started) => started,
            Err(results) => return results,
        };
        let (node, agent_addr, visibility) = {
            let f = ctx.facts();
            (
                f.agent.as_ref().map(|a| a.node.clone()),
                f.agent.as_ref().and_then(|a| a.addr.clone()),
                f.visibility.clone(),
            )
        };
        let visibility = visibility.unwrap_or_default();
        // This agent's services and every catalog list needed, all at once.
        let mut names: Vec<String> = Vec::new();
        for svc in services.iter().filter(|s| s.blocker.is_none()) {
            let name = svc.def.display_name().to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let dc = crate::consul::dc_query(ctx.datacenter());
        let lists = names.iter().map(|name| {
            let path = format!("/v1/health/service/{}{dc}", urlencode(name));
            let client = &client;
            Box::pin(async move {
                // Catalog-sized: decoded while it streams in, so memory holds only the entries.
                // The consumers' view (for the discovery stage) is taken from the same read.
                let reply = client.get_json_streamed::<Vec<super::discovery::HealthEntry>>(&path).await;
                match super::streamed(&format!("GET {path}"), reply, client.timeout) {
                    super::Answer::Ok(entries) => {
                        let mut mine = Vec::with_capacity(entries.len());
                        let mut seen = Vec::with_capacity(entries.len());
                        let mut owned = Vec::new();
                        for e in entries.into_iter().filter(|e| !super::discovery::is_probe(e)) {
                            mine.push(Instance::from(&e));
                            let reg = super::discovery::registration(&e);
                            if reg.owner.is_some() {
                                owned.push(reg);
                            }
                            seen.push(super::discovery::instance(e));
                        }
                        Ok((mine, seen, owned))
                    }
                    super::Answer::NotJudged(why) => Err((false, why)),
                    super::Answer::Unusable(what) => Err((true, what)),
                }
            })
        });
        let (reply, lists) =
            tokio::join!(super::get(ctx, &client, "/v1/agent/services"), crate::join::join_all(lists.collect()));
        let mut by_name: HashMap<String, Result<Vec<Instance>, (bool, String)>> = HashMap::new();
        for (name, list) in names.into_iter().zip(lists) {
            let list = list.map(|(mine, seen, owned)| {
                let mut f = ctx.facts();
                f.health_views.insert(name.clone(), seen);
                if !owned.is_empty() {
                    f.owned.insert(name.clone(), owned);
                }
                mine
            });
            by_name.insert(name, list);
        }
        let local = match super::decode::<Map<String, Value>>("GET /v1/agent/services", &reply, client.timeout, false) {
            super::Answer::Ok(m) => Some(m),
            super::Answer::NotJudged(_) => None,
            super::Answer::Unusable(what) => {
                return vec![super::unusable(codes::DUP_UNREADABLE, "duplicates.local_id", what)];
            }
        };
        ctx.facts().agent_services = local.clone();
        let mut results = Vec::new();
        for svc in &services {
            if let Some(skip) = super::service_gate(svc, "duplicates.local_id") {
                results.push(skip);
                continue;
            }
            let def = &svc.def;
            let name = def.display_name().to_string();
            let local_seen = Seen::new(&visibility, &name, node.as_deref()).local();
            results.push(local_seen.absent(judge_local(def, local.as_ref(), node.as_deref())));
            match &by_name[&name] {
                Ok(instances) => {
                    let seen = Seen::new(&visibility, &name, node.as_deref());
                    results.extend(judge_catalog(def, instances, node.as_deref(), agent_addr.as_deref(), &seen))
                }
                Err((true, what)) => {
                    results.push(super::unusable(codes::DUP_UNREADABLE, "duplicates.remote_id", what.clone()))
                }
                Err((false, why)) => {
                    for id in &CHECKS[1..] {
                        results.push(CheckResult::not_judged(id, format!("{}: {why}", def.label)));
                    }
                }
            }
        }
        results
    })
}

/// Is the ID already on this agent, and with what?
pub fn judge_local(def: &ServiceDef, local: Option<&Map<String, Value>>, node: Option<&str>) -> CheckResult {
    let l = &def.label;
    let id = def.effective_id().unwrap_or("");
    let Some(local) = local else {
        return CheckResult::not_judged("duplicates.local_id", format!("{l}: cannot read /v1/agent/services"));
    };
    let Some(existing) = local.get(id) else {
        return CheckResult::pass("duplicates.local_id", format!("{l}: ID {id:?} is not registered on this agent"));
    };
    let s = |k: &str| existing.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut diffs = Vec::new();
    let (old_name, new_name) = (s("Service"), def.display_name().to_string());
    if old_name != new_name {
        diffs.push(format!("name {old_name:?} -> {new_name:?} (the old service disappears from the catalog)"));
    }
    let (old_addr, new_addr) = (s("Address"), def.address.clone().unwrap_or_default());
    if old_addr != new_addr {
        diffs.push(format!("address {old_addr:?} -> {new_addr:?}"));
    }
    let old_port = existing.get("Port").and_then(Value::as_i64).unwrap_or(0);
    let new_port = def.port.unwrap_or(0);
    if old_port != new_port {
        diffs.push(format!("port {old_port} -> {new_port}"));
    }
    if diffs.is_empty() {
        return CheckResult::pass("duplicates.local_id", format!("{l}: ID {id:?} is already registered here with the same name, address and port; registering again updates it in place"));
    }
    CheckResult::finding(
        codes::DUP_LOCAL_ID,
        "duplicates.local_id",
        format!("{l}: ID {id:?} is already registered on this agent; registering replaces it without any error: {}", diffs.join(", ")),
        format!("if this is another instance, give it its own ID (for example {new_name}-{}-{new_port}); if it replaces the old one on purpose, deregister {id:?} first so nothing depends on the old definition (consul services deregister -id={id})", node.unwrap_or("node")),
    )
}

/// Whether a list the token read may be missing entries (ACL filtering), and what would let the
/// doctor see them. A pass that claims absence is turned into "not judged" when it may.
pub struct Seen {
    filtered: Option<String>,
    local_filtered: Option<String>,
    rules: String,
}

impl Seen {
    pub fn new(v: &super::acl::Visibility, name: &str, node: Option<&str>) -> Seen {
        Seen { filtered: v.filtered(name, false), local_filtered: v.filtered(name, true), rules: v.rules(name, node) }
    }

    /// Everything visible (ACLs off, or a token that reads every node and the service).
    pub fn everything() -> Seen {
        Seen { filtered: None, local_filtered: None, rules: String::new() }
    }

    /// For lists of this agent only.
    fn local(self) -> Seen {
        Seen { filtered: self.local_filtered.clone(), ..self }
    }

    /// Keeps findings; turns a pass (a claim that nothing conflicts) into "not judged".
    pub fn absent(&self, r: CheckResult) -> CheckResult {
        match (&self.filtered, r.status) {
            (Some(why), crate::report::Status::Pass) => {
                CheckResult::not_judged(r.id, format!("{} — among the entries this token can see; {why}", r.message))
                    .with(crate::report::READ_GRANT, self.rules.clone())
                    .with("acl_filtered", "true")
            }
            _ => r,
        }
    }
}

/// Same ID elsewhere, same address:port under other IDs, and critical instances.
pub fn judge_catalog(
    def: &ServiceDef,
    instances: &[Instance],
    node: Option<&str>,
    agent_addr: Option<&str>,
    seen: &Seen,
) -> Vec<CheckResult> {
    let l = &def.label;
    let name = def.display_name();
    let id = def.effective_id().unwrap_or("");
    let mut out = Vec::new();

    let elsewhere: Vec<&Instance> =
        instances.iter().filter(|i| i.id == id && node.is_some_and(|n| n != i.node)).collect();
    if elsewhere.is_empty() {
        out.push(CheckResult::pass("duplicates.remote_id", format!("{l}: no other node registers ID {id:?}")));
    } else {
        let nodes: Vec<String> = elsewhere.iter().map(|i| format!("{} ({}:{})", i.node, i.address, i.port)).collect();
        out.push(CheckResult::finding(
            codes::DUP_REMOTE_ID,
            "duplicates.remote_id",
            format!("{l}: ID {id:?} is also registered on {} other node(s): {}; legal (IDs are unique per node) but tools that treat IDs as global will mix them up", elsewhere.len(), nodes.join(", ")),
            format!("use node-specific IDs such as {name}-{}-{}", node.unwrap_or("node"), def.port.unwrap_or(0)),
        ));
    }

    let target_addr = def.address.clone().filter(|a| !a.is_empty()).or_else(|| agent_addr.map(str::to_string));
    match (target_addr, def.port.filter(|p| *p > 0)) {
        (Some(addr), Some(port)) => {
            let same: Vec<&Instance> =
                instances.iter().filter(|i| i.address == addr && i.port == port && i.id != id).collect();
            if same.is_empty() {
                out.push(CheckResult::pass("duplicates.address", format!("{l}: no other instance uses {addr}:{port}")));
            } else {
                let critical = same.iter().filter(|i| i.critical).count();
                let list: Vec<String> = same
                    .iter()
                    .map(|i| format!("{} on {}{}", i.id, i.node, if i.critical { " (critical)" } else { "" }))
                    .collect();
                out.push(
                    CheckResult::finding(
                        codes::DUP_ADDRESS,
                        "duplicates.address",
                        format!("{l}: {addr}:{port} is already registered under {} other ID(s), {critical} of them critical: {}; stale instances from restarts with new IDs", same.len(), list.join(", ")),
                        format!(
                            "deregister the stale IDs on their own agents ({}), use a stable ID per instance, and add deregister_critical_service_after to the check",
                            same.iter()
                                .take(5)
                                .map(|i| format!("on node {} ({}): consul services deregister -id={}", i.node, i.node_address, i.id))
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    )
                    .with("stale_ids", same.iter().map(|i| i.id.clone()).collect::<Vec<_>>().join(",")),
                );
            }
        }
        _ => out.push(CheckResult::skipped("duplicates.address", format!("{l}: no address and port to compare"))),
    }

    let total = instances.len();
    let critical: Vec<&Instance> = instances.iter().filter(|i| i.critical).collect();
    if critical.len() >= 2 && critical.len() * 2 >= total {
        out.push(CheckResult::finding(
            codes::DUP_CRITICAL,
            "duplicates.critical",
            format!(
                "{l}: {} of {total} registered instances of {name:?} are critical ({}); DNS and ?passing queries hide them",
                critical.len(),
                critical.iter().take(5).map(|i| format!("{} on {}", i.id, i.node)).collect::<Vec<_>>().join(", ")
            ),
            "deregister instances that are gone for good, and find out why the rest fail (consul-doctor's health stage probes this definition's checks)",
        ));
    } else {
        out.push(CheckResult::pass(
            "duplicates.critical",
            format!("{l}: {total} instance(s) of {name:?} registered, {} critical", critical.len()),
        ));
    }
    out.into_iter().map(|r| seen.absent(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{read_service, Form, Origin};

    fn def(json: &str) -> ServiceDef {
        read_service(serde_json::from_str::<Value>(json).unwrap().as_object().unwrap(), Form::Api, Origin::Flags)
    }

    fn inst(node: &str, id: &str, port: i64, critical: bool) -> Instance {
        Instance {
            node: node.into(),
            id: id.into(),
            address: "10.0.0.5".into(),
            node_address: "10.0.0.5".into(),
            port,
            critical,
        }
    }

    #[test]
    fn stale_instances_on_one_address() {
        let d = def(r#"{"Name":"web","ID":"web-4","Address":"10.0.0.5","Port":8080}"#);
        let inst = [
            inst("n1", "web-1", 8080, true),
            inst("n1", "web-2", 8080, true),
            inst("n1", "web-3", 8080, true),
            inst("n2", "web-4", 9090, false),
        ];
        let codes: Vec<_> =
            judge_catalog(&d, &inst, Some("n1"), None, &Seen::everything()).iter().filter_map(|r| r.code).collect();
        assert_eq!(codes, vec!["DUP-002", "DUP-003", "DUP-004"]);
    }

    #[test]
    fn local_replacement_lists_what_changes() {
        let d = def(r#"{"Name":"api","ID":"web-1","Port":9090}"#);
        let local: Map<String, Value> =
            serde_json::from_str(r#"{"web-1": {"ID":"web-1","Service":"web","Address":"","Port":8080}}"#).unwrap();
        let r = judge_local(&d, Some(&local), Some("n1"));
        assert_eq!(r.code, Some("DUP-001"));
        assert!(r.message.contains("name \"web\" -> \"api\""), "{}", r.message);
    }
}
