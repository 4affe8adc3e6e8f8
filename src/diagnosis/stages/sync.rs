//! sync stage: when the service is already registered on this agent, is it in the catalog with
//! the same definition and check status? A 200 from the agent does not mean the catalog has it:
//! anti-entropy syncs later, and its failures (ACLs, a deleted registration token) show only in
//! the agent log. Consul's own view of the checks is shown beside the doctor's probe.

use serde_json::{Map, Value};

use crate::codes;
use crate::consul::urlencode;
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::CheckResult;
use crate::service::ServiceDef;

pub const CHECKS: &[&str] = &["sync.node", "sync.catalog", "sync.checks"];

/// The agent's own node as the catalog holds it (`/v1/catalog/node/NAME`, `Node` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogNode {
    pub id: String,
    pub address: String,
    /// Written only by the agent's own node sync (`lan`, `wan`, ...); the leader's serf
    /// reconciliation creates a node without them.
    pub tagged_addresses: bool,
    /// Likewise: every agent's node sync writes `consul-network-segment`.
    pub meta: bool,
}

impl CatalogNode {
    pub fn from_json(v: &Value) -> Option<CatalogNode> {
        let n = v.get("Node")?.as_object()?;
        let s = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let filled = |k: &str| n.get(k).and_then(Value::as_object).is_some_and(|m| !m.is_empty());
        Some(CatalogNode {
            id: s("ID"),
            address: s("Address"),
            tagged_addresses: filled("TaggedAddresses"),
            meta: filled("Meta"),
        })
    }
}

/// The agent's own node: does the catalog hold it under the agent's node ID, and has the
/// agent ever been allowed to write it? Both fail silently (the agent log only), and either
/// explains services that never reach the catalog.
pub fn judge_node(
    agent_node: &str,
    agent_id: &str,
    datacenter: &str,
    deny_by_default: bool,
    node: Option<&CatalogNode>,
) -> CheckResult {
    let Some(node) = node else {
        return CheckResult::pass(
            "sync.node",
            format!("node {agent_node:?} is not in the catalog yet (the leader adds it when the agent joins)"),
        );
    };
    if !agent_id.is_empty() && !node.id.is_empty() && !node.id.eq_ignore_ascii_case(agent_id) {
        return CheckResult::finding(
            codes::SYN_NODE_NAME_RESERVED,
            "sync.node",
            format!(
                "node name {agent_node:?} is held in the catalog by node ID {} ({}), while this agent's node ID is {agent_id}: the servers refuse every sync from this agent (agent log: \"Syncing node info failed.: ... Node name {agent_node} is reserved by node {} with name {agent_node} ({})\"), so nothing it registers reaches the catalog",
                node.id, node.address, node.id, node.address
            ),
            format!(
                "give each agent its own node_name (a clone or a re-created host keeps the old name): set node_name in the agent configuration, or, if the node {} is gone for good, remove it (consul force-leave {agent_node}, or PUT /v1/catalog/deregister {{\"Node\": \"{agent_node}\"}}) and restart this agent; cloned images must not carry the data directory's node-id file",
                node.id
            ),
        )
        .with("agent_node_id", agent_id)
        .with("catalog_node_id", node.id.clone());
    }
    if deny_by_default && !node.tagged_addresses && !node.meta {
        return CheckResult::finding(
            codes::SYN_NO_AGENT_TOKEN,
            "sync.node",
            format!(
                "node {agent_node:?} is in the catalog without the tagged addresses and meta the agent itself writes: under default deny the agent has no token that may write its node (agent log: \"Node info update blocked by ACLs\", \"Coordinate update blocked by ACLs\")"
            ),
            format!(
                "give the agent a token with node:write on its node: consul acl token create -description \"agent {agent_node}\" -node-identity \"{agent_node}:{datacenter}\" (or a policy with node \"{agent_node}\" {{ policy = \"write\" }}), then consul acl set-agent-token agent <SecretID> on that agent, or acl {{ tokens {{ agent = \"...\" }} }} in its configuration"
            ),
        );
    }
    CheckResult::pass(
        "sync.node",
        format!("node {agent_node:?} is in the catalog under this agent's node ID, as the agent wrote it"),
    )
}

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
    /// `Type` (`http`, `tcp`, `ttl`, ...; empty in the catalog's view of 1.8).
    pub kind: String,
    /// `Notes`: the reason given for maintenance mode.
    pub notes: String,
}

impl CheckView {
    /// The agent's maintenance check (`consul maint`), whose Notes hold the reason.
    pub fn is_maintenance(&self) -> bool {
        self.id.starts_with("_service_maintenance:") || self.id == "_node_maintenance"
    }

    /// Critical with no output at all: Consul creates every check critical with empty output,
    /// and any run (or TTL update) writes one, so the check has not run yet.
    pub fn not_run_yet(&self) -> bool {
        self.status == "critical" && self.output.is_empty() && !self.is_maintenance()
    }
}

fn check_views<'a>(items: impl Iterator<Item = &'a Value>, service_id: &str, node: Option<&str>) -> Vec<CheckView> {
    items
        .filter(|c| c.get("ServiceID").and_then(Value::as_str) == Some(service_id))
        .filter(|c| node.is_none_or(|n| c.get("Node").and_then(Value::as_str).is_none_or(|cn| cn == n)))
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            CheckView {
                id: s("CheckID"),
                name: s("Name"),
                status: s("Status"),
                output: s("Output").trim().to_string(),
                kind: s("Type"),
                notes: s("Notes"),
            }
        })
        .collect()
}

/// The agent's checks, asked ahead of the stage (`pipeline::Early`) when the run has no
/// namespace or partition to carry (the path is scoped).
pub fn ask_early(ctx: &Ctx<'_>) {
    if super::unscoped(ctx) && !ctx.facts().services.is_empty() {
        super::early_get(ctx, "/v1/agent/checks".to_string());
    }
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        // The node and the agent's checks are read at once (two of the client's lanes): the
        // checks are needed unless the node's identity clashes, which is rare and costs one read.
        let started = super::service_stage_start(ctx, &CHECKS[1..]);
        let wants_checks = started.is_ok() && ctx.facts().agent_services.is_some();
        let read_checks = async {
            match (&started, wants_checks) {
                (Ok((_, client)), true) => Some(super::get(ctx, client, "/v1/agent/checks").await),
                _ => None,
            }
        };
        let (node_result, checks_reply) = tokio::join!(judge_own_node(ctx), read_checks);
        // Only a clash of node identity stops everything this agent syncs.
        let node_blocker =
            node_result.as_ref().and_then(|r| r.code).filter(|c| *c == codes::SYN_NODE_NAME_RESERVED.code);
        let mut results: Vec<CheckResult> = node_result.into_iter().collect();
        let (services, client) = match started {
            Ok(started) => started,
            Err(skipped) => {
                results.extend(skipped);
                return results;
            }
        };
        if let Some(code) = node_blocker {
            // Nothing this agent registers reaches the catalog: one cause, named once.
            for svc in &services {
                for id in &CHECKS[1..] {
                    let mut r = CheckResult::blocked(id, code);
                    r.message = format!("{}: skipped: blocked by {code}", svc.def.label);
                    results.push(r);
                }
            }
            return results;
        }
        let (node, local, visibility) = {
            let f = ctx.facts();
            (
                f.agent.as_ref().map(|a| a.node.clone()),
                f.agent_services.clone(),
                f.visibility.clone().unwrap_or_default(),
            )
        };
        let Some(local) = local else {
            return CHECKS.iter().map(|id| CheckResult::not_judged(id, "cannot read /v1/agent/services")).collect();
        };
        let Some(reply) = checks_reply else {
            return CHECKS.iter().map(|id| CheckResult::not_judged(id, "cannot read /v1/agent/checks")).collect();
        };
        let agent_checks: Option<Map<String, Value>> =
            match super::decode::<Map<String, Value>>("GET /v1/agent/checks", &reply, client.timeout, false) {
                super::Answer::Ok(m) => Some(m),
                super::Answer::NotJudged(_) => None,
                super::Answer::Unusable(what) => {
                    return vec![super::unusable(codes::SYN_UNREADABLE, "sync.checks", what)]
                }
            };
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
                // Not on this agent: is it in the catalog on this agent's node all the same
                // (written with /v1/catalog/register)? The agent's anti-entropy removes it.
                // The duplicates stage read this service's instances already (the same node
                // and ID as the catalog's list, for the agent's own datacenter): no second read.
                let view = match ctx.datacenter() {
                    None => ctx.facts().health_views.get(def.display_name()).cloned(),
                    Some(_) => None,
                };
                let path = match view {
                    Some(_) => format!("/v1/health/service/{}", urlencode(def.display_name())),
                    None => format!("/v1/catalog/service/{}", urlencode(def.display_name())),
                };
                let written = match (&node, def.name.is_some()) {
                    (Some(n), true) if view.is_some() => view
                        .iter()
                        .flatten()
                        .filter(|i| &i.node == n && !local.contains_key(&i.id))
                        .map(|i| i.id.clone())
                        .collect(),
                    (Some(n), true) => match super::decode::<Vec<CatalogEntry>>(
                        &format!("GET {path}"),
                        &client.get(&path).await,
                        client.timeout,
                        false,
                    ) {
                        super::Answer::Ok(list) => list
                            .into_iter()
                            .map(|e| e.0)
                            .filter(|e| e.get("Node").and_then(Value::as_str) == Some(n.as_str()))
                            .filter_map(|e| e.get("ServiceID").and_then(Value::as_str).map(str::to_string))
                            .filter(|sid| !local.contains_key(sid))
                            .collect(),
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                match judge_catalog_only(def, &id, node.as_deref(), &written) {
                    Some(r) => {
                        results.push(r.with("request", format!("GET {path}")));
                        results.push(CheckResult::blocked("sync.checks", codes::SYN_CATALOG_ONLY_ON_AGENT_NODE.code));
                    }
                    None => {
                        results.push(CheckResult::pass(
                            "sync.catalog",
                            format!("{}: not registered on this agent yet, nothing to compare", def.label),
                        ));
                        results.push(CheckResult::skipped(
                            "sync.checks",
                            format!("{}: not registered on this agent yet", def.label),
                        ));
                    }
                }
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
            // The doctor's own probes of the same checks (the health stage, running beside).
            ctx.settled(crate::diagnosis::pipeline::StageId::Health).await;
            let probes = ctx.facts().probes.clone();
            let mine: Vec<Option<&'static str>> =
                probes.iter().filter(|(sid, _, _)| *sid == id).map(|(_, _, f)| *f).collect();
            let probe_failure_code = mine.iter().find_map(|f| *f);
            let probe_passed = if mine.is_empty() { None } else { Some(probe_failure_code.is_none()) };
            results.extend(judge_checks(def, &agent_view, &catalog_view, probe_passed, probe_failure_code));
        }
        results
    })
}

/// For commands other than `check` (wait's "on the agent, not in the catalog"): the node
/// identity clash that explains it, when there is one (SYN-011), read from `/v1/agent/self` and
/// `/v1/catalog/node/NAME`.
pub async fn node_identity_cause(client: &crate::consul::ConsulClient, dc: Option<&str>) -> Option<CheckResult> {
    let own = client.get("/v1/agent/self").await.ok().filter(|r| r.status == 200)?;
    let agent = super::api::AgentSelf::from_json(&own.json::<Value>().ok()?)?;
    let path = format!("/v1/catalog/node/{}{}", urlencode(&agent.node), crate::consul::dc_query(dc));
    let reply = client.get(&path).await.ok().filter(|r| r.status == 200)?;
    let node = CatalogNode::from_json(&reply.json::<Value>().ok()?)?;
    let r = judge_node(&agent.node, &agent.node_id, &agent.datacenter, false, Some(&node));
    (r.code == Some(codes::SYN_NODE_NAME_RESERVED.code))
        .then(|| r.with("request", format!("GET {}", client.url(&path))))
}

/// Reads the agent's own node from the catalog and judges it (`None`: nothing to ask with).
fn own_node_path(ctx: &Ctx<'_>, node: &str) -> String {
    format!("/v1/catalog/node/{}{}", urlencode(node), crate::consul::dc_query(ctx.datacenter()))
}

/// The agent's own node in the catalog, asked as soon as the api stage named it
/// (`pipeline::Early`), beside the duplicates stage's read.
pub fn ask_early_node(ctx: &Ctx<'_>) {
    let node = ctx.facts().agent.as_ref().map(|a| a.node.clone()).filter(|n| !n.is_empty());
    if let Some(node) = node {
        super::early_get(ctx, own_node_path(ctx, &node));
    }
}

async fn judge_own_node(ctx: &Ctx<'_>) -> Option<CheckResult> {
    let client = ctx.client()?;
    let (agent, policy, node_visible) = {
        let f = ctx.facts();
        (f.agent.clone(), f.default_acl_policy.clone(), f.visibility.as_ref().map(|v| !v.local_node_hidden))
    };
    let Some(agent) = agent.filter(|a| !a.node.is_empty()) else {
        return Some(CheckResult::not_judged(
            "sync.node",
            "the agent's node name and ID are unknown (GET /v1/agent/self needs agent:read)",
        ));
    };
    let deny = agent.acls_enabled == Some(true)
        && policy.or(agent.acl_default_policy.clone()).is_some_and(|p| p.eq_ignore_ascii_case("deny"));
    let path = own_node_path(ctx, &agent.node);
    let r = match super::decode::<Value>(
        &format!("GET {path}"),
        &super::get(ctx, &client, &path).await,
        client.timeout,
        true,
    ) {
        super::Answer::Ok(Value::Null) if agent.acls_enabled == Some(true) && node_visible != Some(true) => {
            // Absent from a filtered answer is not absent from the catalog.
            CheckResult::not_judged(
                "sync.node",
                format!("GET {path} answered null: the token may not read node {:?} (node:read), or the node is not in the catalog yet", agent.node),
            )
        }
        super::Answer::Ok(Value::Null) => judge_node(&agent.node, &agent.node_id, &agent.datacenter, deny, None),
        super::Answer::Ok(v) => match CatalogNode::from_json(&v) {
            Some(n) => judge_node(&agent.node, &agent.node_id, &agent.datacenter, deny, Some(&n)),
            None => super::unusable(
                codes::SYN_UNREADABLE,
                "sync.node",
                format!("GET {path} returned a body that is not the JSON Consul sends (no Node object)"),
            ),
        },
        super::Answer::NotJudged(why) => CheckResult::not_judged("sync.node", why),
        super::Answer::Unusable(what) => super::unusable(codes::SYN_UNREADABLE, "sync.node", what),
    };
    Some(r.with("request", format!("GET {}", client.url(&path))))
}

/// Instances of the service in the catalog on this agent's node that the agent does not know
/// (`written`: their IDs): written with `PUT /v1/catalog/register`, they are removed by the
/// agent's next anti-entropy sync, about a minute later (hashicorp/consul#729).
pub fn judge_catalog_only(def: &ServiceDef, id: &str, node: Option<&str>, written: &[String]) -> Option<CheckResult> {
    let node = node?;
    if written.is_empty() {
        return None;
    }
    let l = &def.label;
    let ids = written.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let mine =
        if written.iter().any(|w| w == id) { String::new() } else { format!(" (the definition's ID is {id:?})") };
    Some(CheckResult::finding(
        codes::SYN_CATALOG_ONLY_ON_AGENT_NODE,
        "sync.catalog",
        format!(
            "{l}: the catalog holds {ids} on node {node:?}, but the agent of that node does not know it{mine}: it was written with /v1/catalog/register, and the agent's anti-entropy removes it at its next sync (about a minute)"
        ),
        format!(
            "register through the node's agent instead: consul services register FILE, or PUT /v1/agent/service/register on {node}'s agent (or a service file in its configuration directory); keep /v1/catalog/register for nodes no agent runs on (external services, with a node name of their own)"
        ),
    ))
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

/// The definition's check for an agent check ID: its own CheckID, or Consul's default
/// (`service:<id>` for one check, `service:<id>:<n>` for several).
fn defined_check<'d>(def: &'d ServiceDef, check_id: &str) -> Option<&'d crate::service::CheckDef> {
    let sid = def.effective_id().unwrap_or("");
    def.checks.iter().enumerate().find_map(|(n, c)| {
        let default = if def.checks.len() == 1 { format!("service:{sid}") } else { format!("service:{sid}:{}", n + 1) };
        let id = c.id.clone().unwrap_or(default);
        (id == check_id).then_some(c)
    })
}

/// Checks that have not run yet: "not run yet" is not "ran and failed".
fn not_run_yet(def: &ServiceDef, waiting: &[&CheckView]) -> CheckResult {
    let l = &def.label;
    let mut parts = Vec::new();
    let mut fixes = Vec::new();
    for c in waiting {
        let defined = defined_check(def, &c.id);
        let interval = defined.and_then(|d| d.interval.as_ref()).and_then(crate::service::Dur::nanos);
        let ttl = defined.is_some_and(|d| d.ttl.is_some()) || c.kind == "ttl";
        if ttl {
            parts.push(format!(
                "{} is critical with no output: a TTL check waits for its first update (PUT /v1/agent/check/pass/{})",
                c.id, c.id
            ));
            fixes.push(format!("have the application report at start (consul-api: agent.PassTTL(\"{}\", \"\"); curl -X PUT .../v1/agent/check/pass/{})", c.id, c.id));
        } else {
            let when = match interval {
                Some(n) if n > 0 => {
                    format!("within one interval ({}) of its registration", crate::duration::format_go(n))
                }
                _ => "within one check interval of its registration".to_string(),
            };
            parts.push(format!("{} has not run yet (critical, no output): the agent starts a {} check at a random moment {when}, and until then the instance is critical", c.id, if c.kind.is_empty() { "new" } else { &c.kind }));
        }
    }
    let status = def.assign("status", "Status", "\"passing\"");
    fixes.push(format!(
        "to start healthy, give the check an initial {status}; or a shorter interval, so its first run comes sooner"
    ));
    CheckResult::finding(codes::SYN_NOT_RUN_YET, "sync.checks", format!("{l}: {}", parts.join("; ")), fixes.join("; "))
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
    // Maintenance is an operator's choice, named with its reason by the discovery stage.
    let failing: Vec<&CheckView> = agent.iter().filter(|a| a.status != "passing" && !a.is_maintenance()).collect();
    let (waiting, failing): (Vec<&CheckView>, Vec<&CheckView>) = failing.into_iter().partition(|c| c.not_run_yet());
    if !waiting.is_empty() && failing.is_empty() {
        match (probe_passed, probe_failure) {
            // Not run yet, and the doctor's own probe of the target fails: that is the cause.
            (Some(false), Some(code)) => {
                let ids = waiting.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ");
                let mut r = CheckResult::blocked("sync.checks", code);
                r.message = format!("{l}: {ids} has not run yet on the agent, and the doctor's probe of its target fails; see the health stage");
                out.push(r);
            }
            _ => out.push(not_run_yet(def, &waiting)),
        }
        return out;
    }
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
        .map(|c| format!("{} {}: {}", c.id, c.status, if c.output.is_empty() { "(no output)" } else { &c.output }))
        .chain(waiting.iter().map(|c| format!("{} critical: has not run yet", c.id)))
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
        CheckView {
            id: "service:web-1".into(),
            name: "web".into(),
            status: status.into(),
            output: output.into(),
            kind: "http".into(),
            notes: String::new(),
        }
    }

    #[test]
    fn not_run_yet_is_not_ran_and_failed() {
        let d = read_service(
            serde_json::json!({"Name": "web", "ID": "web-1", "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "5m"}}).as_object().unwrap(),
            Form::Api,
            Origin::Flags,
        );
        let r = judge_checks(&d, &[view("critical", "")], &[view("critical", "")], None, None);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code, Some("SYN-008"));
        assert!(r[0].message.contains("has not run yet") && r[0].message.contains("(5m0s)"), "{}", r[0].message);
        assert!(r[0].fix.as_deref().unwrap().contains("\"Status\": \"passing\""), "{:?}", r[0].fix);
        let ran =
            judge_checks(&d, &[view("critical", "dial tcp 127.0.0.1:1: connect: connection refused")], &[], None, None);
        assert_eq!(ran[0].code, Some("SYN-004"));
        assert!(ran[0].message.contains("connection refused"));
        let probed = judge_checks(&d, &[view("critical", "")], &[], Some(false), Some("HLT-001"));
        assert_eq!((probed[0].status, probed[0].blocked_by), (crate::report::Status::Skip, Some("HLT-001")));
        let mut maint = view("critical", "");
        maint.id = "_service_maintenance:web-1".into();
        maint.notes = "deploying".into();
        let r = judge_checks(&d, &[maint], &[], None, None);
        assert!(r.iter().all(|r| r.code.is_none()), "maintenance is named by discovery: {r:?}");
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
    fn the_agents_own_node() {
        let node = |id: &str, written: bool| CatalogNode {
            id: id.into(),
            address: "10.0.0.9".into(),
            tagged_addresses: written,
            meta: written,
        };
        let r = judge_node("app01", "cccc", "dc1", false, Some(&node("bbbb", true)));
        assert_eq!(r.code, Some("SYN-011"));
        assert!(
            r.message.contains("Node name app01 is reserved by node bbbb with name app01 (10.0.0.9)"),
            "{}",
            r.message
        );
        assert_eq!(
            judge_node("app01", "BBBB", "dc1", false, Some(&node("bbbb", true))).code,
            None,
            "IDs compare without case"
        );
        let r = judge_node("app01", "bbbb", "dc1", true, Some(&node("bbbb", false)));
        assert_eq!(r.code, Some("SYN-010"));
        assert!(r.fix.unwrap().contains("consul acl set-agent-token agent"));
        assert_eq!(
            judge_node("app01", "bbbb", "dc1", false, Some(&node("bbbb", false))).code,
            None,
            "allow: not judged as ACL"
        );
        assert_eq!(judge_node("app01", "bbbb", "dc1", true, Some(&node("bbbb", true))).code, None);
        assert_eq!(judge_node("app01", "bbbb", "dc1", true, None).code, None);
        let v = serde_json::json!({"Node": {"ID": "x", "Node": "n", "Address": "a", "TaggedAddresses": null, "Meta": null}});
        assert!(!CatalogNode::from_json(&v).unwrap().tagged_addresses);
        assert!(CatalogNode::from_json(&Value::Null).is_none(), "an unknown node answers null");
    }

    #[test]
    fn catalog_written_instance_on_an_agent_node() {
        let r = judge_catalog_only(&def(), "web-1", Some("n1"), &["web-1".into()]).expect("a finding");
        assert_eq!(r.code, Some("SYN-009"));
        assert!(r.message.contains("\"web-1\" on node \"n1\"") && r.message.contains("anti-entropy removes it"));
        assert!(judge_catalog_only(&def(), "web-1", Some("n1"), &[]).is_none());
        assert!(judge_catalog_only(&def(), "web-1", None, &["web-1".into()]).is_none());
    }

    #[test]
    fn missing_from_catalog() {
        let r = judge_catalog(&def(), "web-1", Some("n1"), &serde_json::json!({"Port": 80}), None);
        assert_eq!(r.code, Some("SYN-001"));
    }
}
