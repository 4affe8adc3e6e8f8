//! sync stage: when the service is already registered on this agent, is it in the catalog with
//! the same definition and check status? A 200 from the agent does not mean the catalog has it:
//! anti-entropy syncs later, and its failures (ACLs, a deleted registration token) show only in
//! the agent log. Consul's own view of the checks is shown beside the doctor's probe.

use serde_json::{Map, Value};

use crate::check::pipeline::{Ctx, StageFuture};
use crate::codes;
use crate::consul::urlencode;
use crate::report::CheckResult;
use crate::service::ServiceDef;

pub const CHECKS: &[&str] = &["sync.catalog", "sync.checks"];

/// A catalog entry: any object with `ServiceID` and `Node` strings.
struct CatalogEntry(Value);

impl<'de> serde::Deserialize<'de> for CatalogEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match (v.get("ServiceID"), v.get("Node")) {
            (Some(Value::String(_)), Some(Value::String(_))) => Ok(CatalogEntry(v)),
            _ => Err(serde::de::Error::custom("catalog entry without ServiceID and Node")),
        }
    }
}

/// A health check entry: any object with `CheckID` and `Status` strings.
struct CheckEntry(Value);

impl<'de> serde::Deserialize<'de> for CheckEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match (v.get("CheckID"), v.get("Status")) {
            (Some(Value::String(_)), Some(Value::String(_))) => Ok(CheckEntry(v)),
            _ => Err(serde::de::Error::custom("check entry without CheckID and Status")),
        }
    }
}

/// A check as the agent or the catalog reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub output: String,
}

fn check_views<'a>(items: impl Iterator<Item = &'a Value>, service_id: &str, node: Option<&str>) -> Vec<CheckView> {
    items
        .filter(|c| c.get("ServiceID").and_then(Value::as_str) == Some(service_id))
        .filter(|c| node.is_none_or(|n| c.get("Node").and_then(Value::as_str).is_none_or(|cn| cn == n)))
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            CheckView { id: s("CheckID"), name: s("Name"), status: s("Status"), output: s("Output").trim().to_string() }
        })
        .collect()
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let (services, client) = match super::service_stage_start(ctx, CHECKS) {
            Ok(started) => started,
            Err(results) => return results,
        };
        let (node, local, probes, visibility) = {
            let f = ctx.facts();
            (
                f.agent.as_ref().map(|a| a.node.clone()),
                f.agent_services.clone(),
                f.probes.clone(),
                f.visibility.clone().unwrap_or_default(),
            )
        };
        let Some(local) = local else {
            return CHECKS.iter().map(|id| CheckResult::not_judged(id, "cannot read /v1/agent/services")).collect();
        };
        let reply = client.get("/v1/agent/checks").await;
        let agent_checks: Option<Map<String, Value>> =
            match super::decode::<Map<String, Value>>("GET /v1/agent/checks", &reply, client.timeout, false) {
                super::Answer::Ok(m) => Some(m),
                super::Answer::NotJudged(_) => None,
                super::Answer::Unusable(what) => {
                    return vec![super::unusable(codes::SYN_UNREADABLE, "sync.checks", what)]
                }
            };
        let mut results = Vec::new();
        for svc in &services {
            if let Some(skip) = super::service_gate(svc, "sync.catalog") {
                results.push(skip);
                continue;
            }
            let def = &svc.def;
            let id = def.effective_id().unwrap_or("").to_string();
            let Some(on_agent) = local.get(&id) else {
                // Registered by an owner other than an agent (consul-k8s, a peer): judge the catalog.
                let owned = ctx.facts().owned.get(def.display_name()).cloned().unwrap_or_default();
                if let Some(verdict) = crate::agentless::judge_owned(&def.label, &owned) {
                    results.extend(verdict);
                    continue;
                }
                results.push(CheckResult::pass(
                    "sync.catalog",
                    format!("{}: not registered on this agent yet, nothing to compare", def.label),
                ));
                results.push(CheckResult::skipped(
                    "sync.checks",
                    format!("{}: not registered on this agent yet", def.label),
                ));
                continue;
            };
            let name = on_agent.get("Service").and_then(Value::as_str).unwrap_or(def.display_name()).to_string();
            let path = format!("/v1/catalog/service/{}", urlencode(&name));
            let catalog = client.get(&path).await;
            let entry =
                match super::decode::<Vec<CatalogEntry>>(&format!("GET {path}"), &catalog, client.timeout, false) {
                    super::Answer::Ok(list) => list.into_iter().map(|e| e.0).find(|e| {
                        e.get("ServiceID").and_then(Value::as_str) == Some(id.as_str())
                            && node.as_deref().is_none_or(|n| e.get("Node").and_then(Value::as_str) == Some(n))
                    }),
                    super::Answer::NotJudged(why) => {
                        results.push(CheckResult::not_judged("sync.catalog", format!("{}: {why}", def.label)));
                        results.push(CheckResult::not_judged(
                            "sync.checks",
                            format!("{}: cannot read the catalog", def.label),
                        ));
                        continue;
                    }
                    super::Answer::Unusable(what) => {
                        results.push(super::unusable(codes::SYN_UNREADABLE, "sync.catalog", what));
                        results.push(CheckResult::blocked("sync.checks", codes::SYN_UNREADABLE.code));
                        continue;
                    }
                };
            if let (None, Some(why)) = (&entry, visibility.filtered(&name, true)) {
                // Absent from a filtered answer is not absent from the catalog.
                let rules = visibility.rules(&name, node.as_deref());
                results.push(
                    CheckResult::not_judged(
                        "sync.catalog",
                        format!(
                            "{}: ID {id:?} is on this agent, but {why}, so whether the catalog has it cannot be told",
                            def.label
                        ),
                    )
                    .with(crate::report::READ_GRANT, rules)
                    .with("request", format!("GET {path}"))
                    .with("acl_filtered", "true"),
                );
                results.push(CheckResult::not_judged(
                    "sync.checks",
                    format!("{}: the catalog's checks are filtered by ACLs the same way", def.label),
                ));
                continue;
            }
            let synced = entry.is_some();
            results.push(judge_catalog(def, &id, node.as_deref(), on_agent, entry.as_ref()));
            if !synced {
                results.push(CheckResult::blocked("sync.checks", codes::SYN_MISSING.code));
                continue;
            }
            let agent_view = agent_checks.as_ref().map(|m| check_views(m.values(), &id, None)).unwrap_or_default();
            let path = format!("/v1/health/checks/{}", urlencode(&name));
            let reply = client.get(&path).await;
            let catalog_view =
                match super::decode::<Vec<CheckEntry>>(&format!("GET {path}"), &reply, client.timeout, false) {
                    super::Answer::Ok(v) => check_views(v.iter().map(|c| &c.0), &id, node.as_deref()),
                    super::Answer::NotJudged(_) => Vec::new(),
                    super::Answer::Unusable(what) => {
                        results.push(super::unusable(codes::SYN_UNREADABLE, "sync.checks", what));
                        continue;
                    }
                };
            let mine: Vec<Option<&'static str>> =
                probes.iter().filter(|(sid, _, _)| *sid == id).map(|(_, _, f)| *f).collect();
            let probe_failure_code = mine.iter().find_map(|f| *f);
            let probe_passed = if mine.is_empty() { None } else { Some(probe_failure_code.is_none()) };
            results.extend(judge_checks(def, &agent_view, &catalog_view, probe_passed, probe_failure_code));
        }
        results
    })
}

/// Is the agent's service in the catalog, with the same definition?
pub fn judge_catalog(
    def: &ServiceDef,
    id: &str,
    node: Option<&str>,
    on_agent: &Value,
    entry: Option<&Value>,
) -> CheckResult {
    let l = &def.label;
    let Some(entry) = entry else {
        return CheckResult::finding(
            codes::SYN_MISSING,
            "sync.catalog",
            format!(
                "{l}: ID {id:?} is registered on this agent{} but the catalog has no such instance: the agent cannot sync it (registration still answered 200)",
                node.map(|n| format!(" (node {n})")).unwrap_or_default()
            ),
            "look for \"Service registration blocked by ACLs\" in the agent log (consul monitor); re-register with a token that has service:write on the name, and give the agent a token with node:write on its node (acl.tokens.agent / consul acl set-agent-token agent <token>)",
        );
    };
    let a_addr = on_agent.get("Address").and_then(Value::as_str).unwrap_or("");
    let c_addr = entry.get("ServiceAddress").and_then(Value::as_str).unwrap_or("");
    let a_port = on_agent.get("Port").and_then(Value::as_i64).unwrap_or(0);
    let c_port = entry.get("ServicePort").and_then(Value::as_i64).unwrap_or(0);
    let tags = |v: Option<&Value>| -> Vec<String> {
        let mut t: Vec<String> = v
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        t.sort();
        t
    };
    let (a_tags, c_tags) = (tags(on_agent.get("Tags")), tags(entry.get("ServiceTags")));
    let mut diffs = Vec::new();
    if a_addr != c_addr {
        diffs.push(format!("address agent {a_addr:?} / catalog {c_addr:?}"));
    }
    if a_port != c_port {
        diffs.push(format!("port agent {a_port} / catalog {c_port}"));
    }
    if a_tags != c_tags {
        diffs.push(format!("tags agent {a_tags:?} / catalog {c_tags:?}"));
    }
    if diffs.is_empty() {
        CheckResult::pass("sync.catalog", format!("{l}: the catalog matches the agent's registration of {id:?}"))
    } else {
        CheckResult::finding(
            codes::SYN_DEFINITION,
            "sync.catalog",
            format!("{l}: the catalog holds an older definition of {id:?}: {}", diffs.join("; ")),
            "updates from this agent are not reaching the catalog: check the agent log for \"blocked by ACLs\" and the registration token; never register this node's services through /v1/catalog/register",
        )
    }
}

/// Compares the agent's and the catalog's check status, and shows Consul's own verdict.
pub fn judge_checks(
    def: &ServiceDef,
    agent: &[CheckView],
    catalog: &[CheckView],
    probe_passed: Option<bool>,
    probe_failure: Option<&'static str>,
) -> Vec<CheckResult> {
    let l = &def.label;
    let mut out = Vec::new();
    let mut mismatched = Vec::new();
    for a in agent {
        if let Some(c) = catalog.iter().find(|c| c.id == a.id) {
            if c.status != a.status {
                mismatched.push(format!("{} is {} on the agent but {} in the catalog", a.id, a.status, c.status));
            }
        }
    }
    if !mismatched.is_empty() {
        out.push(CheckResult::finding(
            codes::SYN_CHECK_STATUS,
            "sync.checks",
            format!("{l}: {}: the agent cannot sync check updates", mismatched.join("; ")),
            "usually the token used to register the service was deleted or expired (agent log: \"Check registration blocked by ACLs\"): re-register the service with a valid long-lived token, or set acl.tokens.agent",
        ));
    }
    let failing: Vec<&CheckView> = agent.iter().filter(|a| a.status != "passing").collect();
    if failing.is_empty() {
        if mismatched.is_empty() {
            out.push(CheckResult::pass(
                "sync.checks",
                format!("{l}: Consul reports {} check(s) passing, and the catalog agrees", agent.len()),
            ));
        }
        return out;
    }
    let view = failing
        .iter()
        .map(|c| format!("{} {}: {}", c.id, c.status, if c.output.is_empty() { "(no output yet)" } else { &c.output }))
        .collect::<Vec<_>>()
        .join("; ");
    match (probe_passed, probe_failure) {
        (Some(false), Some(code)) => {
            let mut r = CheckResult::blocked("sync.checks", code);
            r.message = format!("{l}: Consul agrees with the doctor's probe ({view}); see the health stage");
            out.push(r);
        }
        _ => out.push(CheckResult::finding(
            codes::SYN_CHECK_FAILING,
            "sync.checks",
            format!(
                "{l}: Consul reports {view}{}",
                if probe_passed == Some(true) { "; yet the doctor's probe from this host passed: the agent cannot reach the endpoint from where it runs" } else { "" }
            ),
            "compare where the agent runs with where the service listens: in containers localhost is the agent's own host; open the firewall from the agent to the service, or point the check at an address the agent can reach",
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{read_service, Form, Origin};

    fn def() -> ServiceDef {
        read_service(serde_json::json!({"Name": "web", "ID": "web-1"}).as_object().unwrap(), Form::Api, Origin::Flags)
    }

    fn view(status: &str, output: &str) -> CheckView {
        CheckView { id: "service:web-1".into(), name: "web".into(), status: status.into(), output: output.into() }
    }

    #[test]
    fn stale_catalog_status_after_token_loss() {
        let r = judge_checks(&def(), &[view("critical", "TTL expired")], &[view("passing", "")], None, None);
        let codes: Vec<_> = r.iter().filter_map(|x| x.code).collect();
        assert_eq!(codes, vec!["SYN-002", "SYN-004"]);
    }

    #[test]
    fn agent_failing_while_probe_passes_is_a_vantage_problem() {
        let r = judge_checks(
            &def(),
            &[view("critical", "dial tcp 127.0.0.1:8080: connect: connection refused")],
            &[view("critical", "")],
            Some(true),
            None,
        );
        assert_eq!(r[0].code, Some("SYN-004"));
        assert!(r[0].message.contains("probe from this host passed"));
    }

    #[test]
    fn agent_failing_like_the_probe_is_not_reported_twice() {
        let r = judge_checks(
            &def(),
            &[view("critical", "HTTP GET ...: 500")],
            &[view("critical", "")],
            Some(false),
            Some("HLT-004"),
        );
        assert_eq!(r[0].status, crate::report::Status::Skip);
        assert_eq!(r[0].blocked_by, Some("HLT-004"));
    }

    #[test]
    fn missing_from_catalog() {
        let r = judge_catalog(&def(), "web-1", Some("n1"), &serde_json::json!({"Port": 80}), None);
        assert_eq!(r.code, Some("SYN-001"));
    }
}
