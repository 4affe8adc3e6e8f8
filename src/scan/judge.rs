//! Pure judgements over a scanned catalog: which instances are stale, duplicated, unhealthy or
//! undiscoverable, each a coded finding naming the node, the service ID and the command that
//! fixes it. No I/O here; `gather` fetches, `judge` decides.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::codes;
use crate::report::{CheckResult, Status};
use crate::scan::model::{Catalog, Check, Deregister, Health, Instance, Member, Node};

/// One finding of a scan: a check result tied to a service and, where it applies, an instance.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub service: String,
    pub node: Option<String>,
    pub service_id: Option<String>,
    /// `address:port` of the instance.
    pub address: Option<String>,
    #[serde(flatten)]
    pub result: CheckResult,
}

impl Finding {
    pub fn service_wide(service: &str, result: CheckResult) -> Finding {
        Finding { service: service.to_string(), node: None, service_id: None, address: None, result }
    }

    fn instance(cat: &Catalog, i: &Instance, result: CheckResult) -> Finding {
        Finding {
            service: i.service.to_string(),
            node: Some(cat.node(i.node).key()),
            service_id: Some(i.id.to_string()),
            address: Some(i.endpoint()),
            result: result.with("node", cat.node(i.node).name.to_string()).with("service_id", i.id.to_string()),
        }
    }
}

/// What Consul's data says about a node (one byte a node: a scan holds a million).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// A live agent runs there (serf member alive, or `serfHealth` passing).
    Alive,
    /// Its agent failed or left; [`Gone::describe`] says how Consul shows it.
    Gone(Gone),
    /// Registered through `/v1/catalog/register`: no `serfHealth`, not a member.
    CatalogOnly,
}

/// How Consul shows that a node's agent is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    Failed,
    Left,
    SerfCritical,
}

impl Gone {
    pub fn describe(self, node: &Node) -> String {
        match self {
            Gone::Failed => "its agent failed (serf member status failed)".into(),
            Gone::Left => "its agent left the cluster (serf member status left)".into(),
            Gone::SerfCritical => format!(
                "its serfHealth check is critical (\"{}\")",
                node.serf.map(|s| s.output).filter(|o| !o.is_empty()).unwrap_or("Agent not live or unreachable")
            ),
        }
    }
}

pub fn node_state(node: &Node, members: Option<&HashMap<String, Member>>) -> NodeState {
    // The member list is this cluster's: an imported node is never in it.
    let member = if node.peer.is_empty() { members.and_then(|m| m.get(node.name)).copied() } else { None };
    match (member, &node.serf) {
        (Some(Member::Failed), _) => NodeState::Gone(Gone::Failed),
        (Some(Member::Left), _) => NodeState::Gone(Gone::Left),
        (_, Some(serf)) if serf.status == Health::Critical => NodeState::Gone(Gone::SerfCritical),
        (Some(_), _) | (None, Some(_)) => NodeState::Alive,
        (None, None) => NodeState::CatalogOnly,
    }
}

/// Consul's aggregated status of an instance: the worst of its own and its node's checks.
pub fn instance_health(cat: &Catalog, i: &Instance) -> Health {
    let node = &cat.node(i.node);
    let own = i.failing.iter().map(|c| c.status);
    own.chain(node.serf.iter().map(|s| s.status))
        .chain(node.checks.iter().map(|c| c.status))
        .max()
        .unwrap_or(Health::Passing)
}

fn is_maintenance(c: &Check) -> bool {
    &*c.id == "_node_maintenance" || c.id.starts_with("_service_maintenance:")
}

/// Scan options the judges need.
#[derive(Debug, Clone, Default)]
pub struct JudgeOptions {
    /// `--service` names (empty: the whole catalog).
    pub wanted: Vec<String>,
    pub expect: Vec<(String, usize)>,
    /// The agent address as the operator reaches it, for the commands in fixes.
    pub target: String,
    pub datacenter: Option<String>,
    /// The settings every `consul` command in a fix carries.
    pub consul: crate::consul_cli::ConsulCli,
    /// The token came from `CONSUL_HTTP_TOKEN` (a `curl` in a fix names the variable).
    pub token_from_env: bool,
}

/// Per-service counts for the summary table.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRow {
    pub name: String,
    pub instances: usize,
    pub passing: usize,
    pub warning: usize,
    pub critical: usize,
    /// Instances on failed/left or catalog-only nodes, and superseded duplicates.
    pub stale: usize,
    pub findings: usize,
    /// Worst status among the service's findings.
    pub status: Status,
}

impl ServiceRow {
    fn new(name: &str) -> ServiceRow {
        ServiceRow {
            name: name.to_string(),
            instances: 0,
            passing: 0,
            warning: 0,
            critical: 0,
            stale: 0,
            findings: 0,
            status: Status::Pass,
        }
    }
}

/// Instance findings listed one by one per code; beyond that they are counted per service and
/// summed up in one finding per code, so a catalog of 100,000 stale instances gives a report a
/// person can read (and a few MB of JSON), not 100,000 paragraphs.
pub const LISTED_PER_CODE: usize = 200;

/// Instance findings of one code: how many, and per service how many were not listed.
type CodeCount = (usize, BTreeMap<String, usize>);

#[derive(Default)]
pub struct Findings {
    list: Vec<Finding>,
    /// Per code: instance findings seen, and how many were not listed per service.
    per_code: HashMap<&'static str, CodeCount>,
    /// Per service: findings not listed, and their worst status (for the summary table).
    unlisted_by_service: HashMap<String, (usize, Status)>,
}

impl Findings {
    pub fn push(&mut self, f: Finding) {
        // Instance- and group-level findings (they name an instance or an address) are capped;
        // service-wide ones are bounded by the number of services.
        if let (Some(code), true) = (f.result.code, f.service_id.is_some() || f.address.is_some()) {
            let e = self.per_code.entry(code).or_default();
            e.0 += 1;
            if e.0 > LISTED_PER_CODE {
                match e.1.get_mut(f.service.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        e.1.insert(f.service.clone(), 1);
                    }
                }
                match self.unlisted_by_service.get_mut(f.service.as_str()) {
                    Some((n, st)) => {
                        *n += 1;
                        *st = (*st).max(f.result.status);
                    }
                    None => {
                        self.unlisted_by_service.insert(f.service, (1, f.result.status));
                    }
                }
                return;
            }
        }
        self.list.push(f);
    }

    /// The listed findings and one summary per code with unlisted ones.
    pub fn finish(self) -> Vec<Finding> {
        let mut list = self.list;
        let mut codes: Vec<(&'static str, CodeCount)> =
            self.per_code.into_iter().filter(|(_, (n, _))| *n > LISTED_PER_CODE).collect();
        codes.sort_by_key(|(c, _)| *c);
        for (code, (total, by_service)) in codes {
            let Some(c) = codes::find(code) else { continue };
            let unlisted = total - LISTED_PER_CODE;
            let mut top: Vec<(&String, &usize)> = by_service.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
            let top: Vec<String> = top.iter().map(|(s, n)| format!("{s} ({n})")).collect();
            list.push(Finding::service_wide(
                "",
                CheckResult::finding(
                    c,
                    "scan.summary",
                    format!(
                        "{total} instances have {code} ({}); the first {LISTED_PER_CODE} are listed one by one, the other {unlisted} are in {}",
                        c.title,
                        summarise(&top, 8)
                    ),
                    format!("scan those services one at a time (consul-doctor scan --service NAME) to list every instance; consul-doctor explain {code}"),
                )
                .with("instances", total.to_string())
                .with("not_listed", unlisted.to_string()),
            ));
        }
        list
    }
}

pub struct Judged {
    pub findings: Vec<Finding>,
    pub services: Vec<ServiceRow>,
    pub states: Vec<NodeState>,
    /// Per instance: it looks stale (failed, left or catalog-only node, superseded duplicate).
    pub stale: Vec<bool>,
    /// Instances on live agents a finding says should go (index, code): removed on the agent.
    pub agent_side: Vec<(usize, &'static str)>,
}

/// The body of `PUT /v1/catalog/deregister` for one instance, in the shape of hashicorp/consul
/// `api/catalog.go` `CatalogDeregistration` (`Node`, `Datacenter`, `ServiceID`, and the
/// Enterprise `Namespace`/`Partition`, sent only when the entry had them).
pub fn deregister_body(
    dc: Option<&str>,
    node: &str,
    service_id: &str,
    namespace: &str,
    partition: &str,
) -> serde_json::Value {
    let mut body = serde_json::json!({ "Node": node, "ServiceID": service_id });
    if let Some(dc) = dc {
        body["Datacenter"] = serde_json::Value::String(dc.to_string());
    }
    if !namespace.is_empty() {
        body["Namespace"] = serde_json::Value::String(namespace.to_string());
    }
    if !partition.is_empty() {
        body["Partition"] = serde_json::Value::String(partition.to_string());
    }
    body
}

fn catalog_deregister_cmd(o: &JudgeOptions, node: &Node, i: &Instance) -> String {
    let body = deregister_body(o.datacenter.as_deref(), node.name, i.id, i.namespace, node.partition);
    let url = format!("{}/v1/catalog/deregister", o.target.trim_end_matches('/'));
    o.consul.curl("PUT", &url, Some(&body.to_string()), o.token_from_env)
}

/// The agent-side removal, aimed at the node's own agent with the settings the scan was given.
fn agent_deregister_cmd(o: &JudgeOptions, node: &Node, id: &str) -> String {
    let cmd = o.consul.on_host(node.address).command("services deregister", &format!("-id={id}"));
    format!("on node {} (its own agent) run: {cmd}", node.name)
}

/// Names Consul's DNS (and `/v1/health/service`) takes for the same service: they match
/// case-insensitively. (`web_api` and `web-api` are two names to DNS: both are answered, each
/// with its own instances.)
pub fn dns_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

pub fn judge(cat: &Catalog, o: &JudgeOptions) -> Judged {
    let states: Vec<NodeState> = cat.nodes().map(|n| node_state(&n, cat.members.as_ref())).collect();
    let health: Vec<Health> = cat.instances().map(|i| instance_health(cat, &i)).collect();
    let mut findings = Findings::default();
    let mut stale = vec![false; cat.instance_count()];

    let mut agent_side: Vec<(usize, &'static str)> = Vec::new();

    // Where each instance lives, and who keeps it.
    for (n, i) in cat.instances().enumerate() {
        let i = &i;
        let node = &cat.node(i.node);
        let peer: &str = if node.peer.is_empty() { i.peer } else { node.peer };
        if !peer.is_empty() {
            // Imported from a peer: the exporting cluster keeps it; judged only for health.
            if health[n] != Health::Passing {
                findings.push(Finding::instance(cat, i, peered(node, i, peer, health[n])));
            }
            continue;
        }
        if let (Some(owner), false) = (&i.owner, matches!(states[i.node], NodeState::Alive)) {
            // Kept by an owner (consul-esm, consul-k8s, Nomad…): never "stale", speak of the owner.
            if health[n] != Health::Passing {
                findings.push(Finding::instance(cat, i, owned(node, i, owner, health[n])));
            }
            continue;
        }
        match &states[i.node] {
            NodeState::Gone(why) => {
                stale[n] = true;
                findings.push(Finding::instance(cat, i, gone(o, node, i, &why.describe(node), health[n])));
            }
            NodeState::CatalogOnly => {
                let unchecked = i.unchecked() && node.checks.is_empty();
                if unchecked {
                    stale[n] = true;
                    findings.push(Finding::instance(cat, i, catalog_only_unchecked(o, node, i)));
                } else if !(node.external && health[n] != Health::Critical) {
                    stale[n] = true;
                    findings.push(Finding::instance(cat, i, catalog_only(o, node, i, health[n])));
                }
            }
            NodeState::Alive => {
                if health[n] == Health::Critical {
                    if let Some(r) = critical_forever(o, node, i) {
                        agent_side.push((n, codes::SCN_CRITICAL_FOREVER.code));
                        findings.push(Finding::instance(cat, i, r));
                    }
                }
            }
        }
    }

    // Services without any health check, on live agents (the consul service is Consul's own).
    let mut unchecked: BTreeMap<&str, (Vec<usize>, usize)> = BTreeMap::new();
    for (n, i) in cat.instances().enumerate() {
        let i = &i;
        if states[i.node] != NodeState::Alive || i.service == "consul" || !i.peer.is_empty() {
            continue;
        }
        let e = unchecked.entry(i.service).or_default();
        e.1 += 1;
        if i.unchecked() {
            e.0.push(n);
        }
    }
    for (service, (without, total)) in unchecked {
        if without.is_empty() {
            continue;
        }
        if without.len() == total && total > 1 {
            let nodes: Vec<String> = without.iter().map(|&n| cat.node(cat.instance(n).node).name.to_string()).collect();
            findings.push(Finding::service_wide(
                service,
                CheckResult::finding(
                    codes::SCN_NO_CHECK,
                    "scan.checks",
                    format!(
                        "none of the {total} instances of \"{service}\" has a health check: Consul reports them passing as long as their agent lives, so a crashed or hung process keeps receiving traffic"
                    ),
                    format!(
                        "add a check to the service definition on each node ({}), for example check {{ http = \"http://localhost:<port>/health\" interval = \"10s\" timeout = \"2s\" deregister_critical_service_after = \"10m\" }}, then `consul reload`",
                        summarise(&nodes, 5)
                    ),
                )
                .with("instances", total.to_string()),
            ));
        } else {
            for n in without {
                let i = &cat.instance(n);
                let node = &cat.node(i.node);
                findings.push(Finding::instance(
                    cat,
                    i,
                    CheckResult::finding(
                        codes::SCN_NO_CHECK,
                        "scan.checks",
                        format!(
                            "instance {} of \"{}\" on node {} ({}) has no health check: it is reported passing while its agent lives, whatever the process does",
                            i.id, i.service, node.name, i.endpoint()
                        ),
                        format!(
                            "add a check to its definition on node {} (check {{ http = \"http://localhost:{}/health\" interval = \"10s\" deregister_critical_service_after = \"10m\" }}) and `consul reload`; if the instance is left over, {}",
                            node.name,
                            i.port,
                            agent_deregister_cmd(o, node, i.id)
                        ),
                    ),
                ));
            }
        }
    }

    duplicates(cat, o, &states, &health, &mut stale, &mut agent_side, &mut findings);
    dns(cat, &mut findings);
    expectations(cat, o, &stale, &mut findings);

    // Per-service rows.
    let mut rows: BTreeMap<&str, ServiceRow> = BTreeMap::new();
    for (n, i) in cat.instances().enumerate() {
        let i = &i;
        let r = rows.entry(i.service).or_insert_with(|| ServiceRow::new(i.service));
        r.instances += 1;
        match health[n] {
            Health::Passing => r.passing += 1,
            Health::Warning => r.warning += 1,
            Health::Critical => r.critical += 1,
        }
        if stale[n] {
            r.stale += 1;
        }
    }
    for f in &findings.list {
        if let Some(r) = rows.get_mut(f.service.as_str()) {
            r.findings += 1;
            r.status = r.status.max(f.result.status);
        }
    }
    for (service, (n, status)) in &findings.unlisted_by_service {
        if let Some(r) = rows.get_mut(service.as_str()) {
            r.findings += n;
            r.status = r.status.max(*status);
        }
    }
    let services = rows.into_values().collect();
    let findings = findings.finish();
    Judged { findings, services, states, stale, agent_side }
}

fn owned(node: &Node, i: &Instance, owner: &crate::scan::model::Owner, health: Health) -> CheckResult {
    CheckResult::finding(
        codes::SCN_OWNED_UNHEALTHY,
        "scan.owner",
        format!(
            "instance {} of \"{}\" ({}) on node {} is {}; it is maintained by {} ({}), not stale: {}",
            i.id,
            i.service,
            i.endpoint(),
            node.key(),
            health.as_str(),
            owner.name,
            owner.mark,
            crate::scan::prune::owner_advice(owner)
        ),
        format!(
            "managed by {}: {}; scan --prune never removes it",
            owner.name,
            crate::scan::prune::owner_advice(owner)
        ),
    )
    .with("owner", owner.name.to_string())
    .with("mark", owner.mark.clone())
    .with("status", health.as_str())
}

fn peered(node: &Node, i: &Instance, peer: &str, health: Health) -> CheckResult {
    CheckResult::finding(
        codes::SCN_PEERED_UNHEALTHY,
        "scan.peer",
        format!(
            "instance {} of \"{}\" ({}) on node {} is {}; it is imported from cluster peer \"{peer}\" (PeerName), so its registration and checks live in the exporting cluster",
            i.id,
            i.service,
            i.endpoint(),
            node.name,
            health.as_str()
        ),
        format!(
            "look at it in the exporting cluster (consul-doctor scan --service {} against that cluster's agent); the peering stream removes it there, scan --prune never does",
            i.service
        ),
    )
    .with("peer", peer.to_string())
    .with("status", health.as_str())
}

fn gone(o: &JudgeOptions, node: &Node, i: &Instance, why: &str, health: Health) -> CheckResult {
    CheckResult::finding(
        codes::SCN_GONE_NODE,
        "scan.node",
        format!(
            "instance {} of \"{}\" ({}) is on node {}, and {why}: the instance is {} and stays in the catalog until the node is reaped (reconnect_timeout, 72h by default) or its agent comes back",
            i.id,
            i.service,
            i.endpoint(),
            node.name,
            health.as_str()
        ),
        format!(
            "if the node is gone for good, remove it with `consul force-leave {}` (a failed node and all its services) or deregister the instance: {} (consul-doctor scan --prune does this)",
            node.name,
            catalog_deregister_cmd(o, node, i)
        ),
    )
    .with("node_state", why.to_string())
    .with("status", health.as_str())
}

fn catalog_only(o: &JudgeOptions, node: &Node, i: &Instance, health: Health) -> CheckResult {
    let mut statuses: Vec<String> =
        i.failing.iter().chain(node.checks.iter()).map(|c| format!("{} {}", c.id, c.status.as_str())).collect();
    if i.passing > 0 {
        statuses.push(format!("{} passing check(s) of its own", i.passing));
    }
    let what = if health == Health::Critical {
        "it is critical, and with no agent nothing will ever update its checks or remove it (DeregisterCriticalServiceAfter only acts on an agent's own checks)"
    } else {
        "its check status was written once through the catalog API and no agent updates it, so it can show passing long after the service is gone"
    };
    CheckResult::finding(
        codes::SCN_CATALOG_ONLY,
        "scan.catalog_only",
        format!(
            "instance {} of \"{}\" ({}) is on node {}, a catalog-only node (no agent, not a serf member): {what}",
            i.id,
            i.service,
            i.endpoint(),
            node.name
        ),
        format!(
            "if it is stale, deregister it: {} (consul-doctor scan --prune does this for critical ones); if it is an external service, let consul-esm keep its checks (node meta external-node = \"true\") or register it through an agent",
            catalog_deregister_cmd(o, node, i)
        ),
    )
    .with("checks", statuses.join(", "))
    .with("status", health.as_str())
}

fn catalog_only_unchecked(o: &JudgeOptions, node: &Node, i: &Instance) -> CheckResult {
    CheckResult::finding(
        codes::SCN_CATALOG_ONLY_UNCHECKED,
        "scan.catalog_only",
        format!(
            "instance {} of \"{}\" ({}) is on node {}, a catalog-only node, and has no health check: Consul reports it passing forever and no agent will ever deregister it",
            i.id,
            i.service,
            i.endpoint(),
            node.name
        ),
        format!(
            "if it is stale, deregister it: {}; if it is a real external service, register it with a check that consul-esm runs (node meta external-node = \"true\")",
            catalog_deregister_cmd(o, node, i)
        ),
    )
}

fn critical_forever(o: &JudgeOptions, node: &Node, i: &Instance) -> Option<CheckResult> {
    let critical: Vec<&Check> = i.failing.iter().filter(|c| c.status == Health::Critical).collect();
    if critical.is_empty() || critical.iter().any(|c| is_maintenance(c)) {
        return None; // critical through its node, or in maintenance on purpose
    }
    if critical.iter().any(|c| matches!(c.deregister, Deregister::After(_))) {
        return None; // its agent removes it
    }
    let known_never = critical.iter().all(|c| c.deregister == Deregister::Never);
    let first = critical[0];
    let output = if first.output.is_empty() { "no output".to_string() } else { format!("\"{}\"", first.output) };
    let cleanup = if known_never {
        "its checks set no DeregisterCriticalServiceAfter, so it stays registered until someone deregisters it"
    } else {
        "the catalog does not say whether its checks set DeregisterCriticalServiceAfter (Consul 1.8 agents do not sync check definitions); without it the instance stays registered forever"
    };
    Some(
        CheckResult::finding(
            codes::SCN_CRITICAL_FOREVER,
            "scan.critical",
            format!(
                "instance {} of \"{}\" ({}) on node {} is critical (check {}: {output}); {cleanup}. Consul does not record since when a check is critical",
                i.id,
                i.service,
                i.endpoint(),
                node.name,
                first.id
            ),
            format!(
                "fix the service or, if it is left over, {}; set deregister_critical_service_after = \"10m\" (1m minimum) on its check so leftovers are removed by the agent",
                agent_deregister_cmd(o, node, i.id)
            ),
        )
        .with("check", first.id.to_string())
        .with("output", first.output.clone())
        .with(
            "deregister_critical_service_after",
            if known_never { "none" } else { "unknown (not in the catalog)" },
        ),
    )
}

/// One finding per group of instances sharing an address:port (never one per member listing
/// all the others: 3,000 copies give one finding with bounded evidence).
fn duplicates(
    cat: &Catalog,
    o: &JudgeOptions,
    states: &[NodeState],
    health: &[Health],
    stale: &mut [bool],
    agent_side: &mut Vec<(usize, &'static str)>,
    findings: &mut Findings,
) {
    // Keyed by partition and namespace too: the same address:port in two namespaces is two
    // services, not a duplicate. Grouped by sorting indices (no map over every instance).
    let key = |n: u32| {
        let i = cat.instance(n as usize);
        (i.service, i.address, i.port, i.namespace, cat.node(i.node).partition)
    };
    // Sorted by a 32-bit hash of the key beside the index (8 bytes an instance, a plain integer
    // sort); runs of one hash are then split by the key itself.
    use std::hash::BuildHasher;
    let hasher = std::hash::RandomState::new();
    let mut order: Vec<u64> = (0..cat.instance_count() as u32)
        .filter_map(|n| {
            let i = cat.instance(n as usize);
            let node = cat.node(i.node);
            let candidate = i.port > 0 && !i.address.is_empty() && i.peer.is_empty() && node.peer.is_empty();
            candidate.then(|| (u64::from(hasher.hash_one(key(n)) as u32) << 32) | u64::from(n))
        })
        .collect();
    order.sort_unstable();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && order[end] >> 32 == order[start] >> 32 {
            end += 1;
        }
        if end - start > 1 {
            let mut run: Vec<u32> = order[start..end].iter().map(|&v| v as u32).collect();
            run.sort_by(|a, b| key(*a).cmp(&key(*b)).then(a.cmp(b)));
            for same in run.chunk_by(|a, b| key(*a) == key(*b)).filter(|g| g.len() > 1) {
                groups.push(same.iter().map(|&n| n as usize).collect());
            }
        }
        start = end;
    }
    groups.sort_by(|a, b| key(a[0] as u32).cmp(&key(b[0] as u32)));
    drop(order);
    for group in groups {
        let live = |n: &usize| states[cat.instance(*n).node] == NodeState::Alive;
        let passing_live: Vec<usize> =
            group.iter().copied().filter(|n| live(n) && health[*n] == Health::Passing).collect();
        let on_live: Vec<usize> = group.iter().copied().filter(live).collect();
        let (current, why) = if passing_live.len() == 1 {
            (Some(passing_live[0]), "the only passing one on a live agent")
        } else if on_live.len() == 1 {
            (Some(on_live[0]), "the only one on a live agent")
        } else {
            (None, "")
        };
        let newest = *group.iter().max_by_key(|n| cat.instance(**n).create_index).expect("non-empty group");
        let keep = current.unwrap_or(newest);
        let others: Vec<usize> = group.iter().copied().filter(|&n| n != keep).collect();
        let first = &cat.instance(others[0]);
        let ids: Vec<String> = group.iter().map(|n| cat.instance(*n).id.to_string()).collect();
        let other_ids: Vec<String> = others.iter().map(|n| cat.instance(*n).id.to_string()).collect();
        let verdict = match current {
            Some(c) => format!("the current one is {} ({why})", cat.instance(c).id),
            None => format!(
                "the catalog cannot tell which one the process uses; the newest registration is {} (CreateIndex {})",
                cat.instance(newest).id,
                cat.instance(newest).create_index
            ),
        };
        if current.is_some() {
            for &n in &others {
                stale[n] = true;
                if live(&n) {
                    agent_side.push((n, codes::SCN_DUPLICATE_ADDRESS.code));
                }
            }
        }
        let mut nodes: Vec<&str> = others.iter().map(|n| cat.node(cat.instance(*n).node).name).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let remove = if others.len() == 1 {
            let node = &cat.node(first.node);
            let cmd = match states[first.node] {
                NodeState::Alive => agent_deregister_cmd(o, node, first.id),
                _ => catalog_deregister_cmd(o, node, first),
            };
            format!("if {} is left over from a restart, {cmd}", first.id)
        } else {
            format!(
                "deregister the left-over IDs ({}) on the agents that own them (consul services deregister -id=<id> on node {})",
                summarise(&other_ids, 6),
                summarise(&nodes.iter().map(|s| s.to_string()).collect::<Vec<_>>(), 3)
            )
        };
        let worst = others.iter().map(|n| health[*n]).max().unwrap_or(Health::Passing);
        let mut finding = Finding {
            service: first.service.to_string(),
            node: (nodes.len() == 1).then(|| nodes[0].to_string()),
            service_id: (others.len() == 1).then(|| first.id.to_string()),
            address: Some(first.endpoint()),
            result: CheckResult::finding(
                codes::SCN_DUPLICATE_ADDRESS,
                "scan.duplicates",
                format!(
                    "{} of \"{}\" is registered under {} service IDs ({}): {verdict}; {} left over ({}); every copy is routed to and counted as an instance",
                    first.endpoint(),
                    first.service,
                    group.len(),
                    summarise(&ids, 6),
                    others.len(),
                    summarise(&other_ids, 6),
                ),
                format!("{remove}; give the service a stable ID (<name>-<host>-<port>) and deregister it on shutdown"),
            )
            .with("instances", group.len().to_string())
            .with("other_ids", summarise(&other_ids, 6))
            .with("status", worst.as_str()),
        };
        if others.len() == 1 {
            finding.result = finding.result.with("node", nodes[0].to_string()).with("service_id", first.id.to_string());
        }
        findings.push(finding);
    }
}

fn dns(cat: &Catalog, findings: &mut Findings) {
    // Each service's distinct tags, in the order first seen, from the catalog's shapes (one per
    // distinct name and tag list, not one per instance): linear however many tags vary.
    let mut tags: BTreeMap<&str, (Vec<&str>, HashSet<&str>)> = BTreeMap::new();
    for (service, list) in cat.service_tags() {
        let (order, seen) = tags.entry(service).or_default();
        for tag in list {
            if seen.insert(&**tag) {
                order.push(&**tag);
            }
        }
    }
    let tags: BTreeMap<&str, Vec<&str>> = tags.into_iter().map(|(k, (order, _))| (k, order)).collect();
    let mut by_key: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for name in tags.keys() {
        by_key.entry(dns_key(name)).or_default().push(name);
    }
    for names in by_key.values().filter(|n| n.len() > 1) {
        for name in names {
            let others: Vec<String> = names.iter().filter(|n| *n != name).map(|n| format!("\"{n}\"")).collect();
            findings.push(Finding::service_wide(
                name,
                CheckResult::finding(
                    codes::SCN_DNS_COLLISION,
                    "scan.dns",
                    format!(
                        "service \"{name}\" and {} are one name to DNS: DNS and /v1/health/service match names case-insensitively, so {}.service.consul answers with the instances of all of them",
                        others.join(", "),
                        dns_key(name)
                    ),
                    format!(
                        "settle on one spelling (lowercase letters, digits, dashes), re-register the instances under it and deregister the others (consul services deregister -id=<id> on their nodes); check with: consul catalog services | grep -ix '{}'",
                        dns_key(name)
                    ),
                )
                .with("colliding_names", names.join(", ")),
            ));
        }
    }
    for (name, service_tags) in &tags {
        if *name == "consul" {
            continue;
        }
        if !crate::service::dns_answers_name(name) {
            findings.push(Finding::service_wide(
                name,
                CheckResult::finding(
                    codes::SCN_DNS_NAME,
                    "scan.dns",
                    format!(
                        "service name \"{name}\" cannot be asked for as {name}.service.consul (a dot splits it into a tag query; spaces and other characters are answered NXDOMAIN; at most 63 bytes): Consul registers it, but DNS consumers never find it"
                    ),
                    format!(
                        "rename the service to \"{}\" in its definitions and re-register; clients on the HTTP API (/v1/health/service/{name}) are not affected",
                        suggest_name(name)
                    ),
                ),
            ));
        }
        let bad: Vec<&str> = service_tags.iter().copied().filter(|t| !crate::service::dns_answers_tag(t)).collect();
        if !bad.is_empty() {
            let shown: Vec<String> = bad.iter().map(|t| format!("\"{t}\"")).collect();
            findings.push(Finding::service_wide(
                name,
                CheckResult::finding(
                    codes::SCN_DNS_TAG,
                    "scan.dns",
                    format!(
                        "{} tag(s) of \"{name}\" are not known to be answered in a DNS query <tag>.{name}.service.consul (Consul's DNS answers tags of letters, digits, '-', '_', '=' and dots, such as v1.2 or env=prod): {}",
                        bad.len(),
                        summarise(&shown, 8)
                    ),
                    format!(
                        "use tags such as \"{}\" for anything DNS clients filter on; keep the others only for HTTP API filters (/v1/health/service/{name}?tag=...)",
                        suggest_name(bad[0])
                    ),
                )
                .with("tags", bad.join(", ")),
            ));
        }
    }
}

fn suggest_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let s: String = s.chars().take(63).collect();
    if s.is_empty() {
        "my-service".into()
    } else {
        s
    }
}

fn expectations(cat: &Catalog, o: &JudgeOptions, stale: &[bool], findings: &mut Findings) {
    let mut names: Vec<&str> = o.wanted.iter().map(String::as_str).collect();
    names.extend(o.expect.iter().map(|(n, _)| n.as_str()));
    let mut reported = Vec::new();
    for name in names {
        if reported.contains(&name) {
            continue;
        }
        reported.push(name);
        if !cat.instances().any(|i| i.service == name) {
            findings.push(Finding::service_wide(
                name,
                CheckResult::finding(
                    codes::SCN_NOT_FOUND,
                    "scan.expect",
                    format!("service \"{name}\" has no instance in the catalog this token can read"),
                    format!(
                        "check the spelling (names are case-sensitive in the catalog: consul catalog services | grep -i '{name}') and that the token has service:read on it (consul acl token read -self)"
                    ),
                ),
            ));
        }
    }
    for (name, want) in &o.expect {
        let mine: Vec<usize> = (0..cat.instance_count()).filter(|&n| *cat.instance(n).service == **name).collect();
        if mine.len() <= *want {
            continue;
        }
        let stale_ids: Vec<String> =
            mine.iter().filter(|&&n| stale[n]).map(|&n| cat.instance(n).id.to_string()).collect();
        let nodes: Vec<String> = {
            let mut v: Vec<String> = mine.iter().map(|&n| cat.node(cat.instance(n).node).name.to_string()).collect();
            v.sort();
            v.dedup();
            v
        };
        findings.push(Finding::service_wide(
            name,
            CheckResult::finding(
                codes::SCN_TOO_MANY,
                "scan.expect",
                format!(
                    "\"{name}\" has {} instances in the catalog, {} more than the {want} expected, on {} node(s); {} of them are stale by the findings above",
                    mine.len(),
                    mine.len() - want,
                    nodes.len(),
                    stale_ids.len()
                ),
                if stale_ids.is_empty() {
                    format!("list them with curl -s {}/v1/health/service/{name} | jq -r '.[] | \"\\(.Node.Node) \\(.Service.ID)\"' and deregister the ones no process stands behind", o.target.trim_end_matches('/'))
                } else {
                    format!("start with the stale ones ({}): see their findings, or run consul-doctor scan --service {name} --prune", summarise(&stale_ids, 6))
                },
            )
            .with("instances", mine.len().to_string())
            .with("expected", want.to_string()),
        ));
    }
}

/// `a, b, c and 7 more`.
pub fn summarise(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::model::{Builder, HealthEntry};

    fn entry(node: &str, addr: &str, id: &str, name: &str, port: i64, checks: &[(&str, &str, &str)]) -> HealthEntry {
        let checks: Vec<serde_json::Value> = checks
            .iter()
            .map(|(cid, sid, st)| serde_json::json!({"CheckID": cid, "ServiceID": sid, "Status": st, "Definition": {}}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "Node": {"Node": node, "Address": addr},
            "Service": {"ID": id, "Service": name, "Port": port, "Tags": ["v1"], "CreateIndex": 10},
            "Checks": checks
        }))
        .unwrap()
    }

    fn codes_of(j: &Judged) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = j.findings.iter().filter_map(|f| f.result.code).collect();
        v.sort();
        v
    }

    #[test]
    fn a_healthy_catalog_has_no_findings() {
        let mut b = Builder::default();
        b.add_health_entries(
            "web",
            vec![
                entry(
                    "n1",
                    "10.0.0.1",
                    "web-1",
                    "web",
                    80,
                    &[("serfHealth", "", "passing"), ("c1", "web-1", "passing")],
                ),
                entry(
                    "n2",
                    "10.0.0.2",
                    "web-2",
                    "web",
                    80,
                    &[("serfHealth", "", "passing"), ("c2", "web-2", "passing")],
                ),
            ],
        );
        b.add_health_entries(
            "consul",
            vec![entry("n1", "10.0.0.1", "consul", "consul", 8300, &[("serfHealth", "", "passing")])],
        );
        let j = judge(&b.finish(), &JudgeOptions::default());
        assert!(j.findings.is_empty(), "{:#?}", j.findings);
        assert_eq!(j.services.len(), 2);
    }

    #[test]
    fn stale_catalog_only_duplicate_and_unchecked_instances() {
        let mut b = Builder::default();
        b.add_health_entries(
            "web",
            vec![
                // A failed node: serfHealth critical.
                entry(
                    "dead",
                    "10.0.0.9",
                    "web-9",
                    "web",
                    80,
                    &[("serfHealth", "", "critical"), ("c9", "web-9", "passing")],
                ),
                // Catalog-only, critical.
                entry("ext", "10.0.1.1", "web-x", "web", 80, &[("cx", "web-x", "critical")]),
                // Catalog-only, no checks.
                entry("ext2", "10.0.1.2", "web-y", "web", 80, &[]),
                // Same address:port twice on a live agent; the passing one is current.
                entry(
                    "n1",
                    "10.0.0.1",
                    "web-old",
                    "web",
                    80,
                    &[("serfHealth", "", "passing"), ("co", "web-old", "critical")],
                ),
                entry(
                    "n1",
                    "10.0.0.1",
                    "web-new",
                    "web",
                    80,
                    &[("serfHealth", "", "passing"), ("cn", "web-new", "passing")],
                ),
                // Live agent, no check.
                entry("n2", "10.0.0.2", "web-2", "web", 81, &[("serfHealth", "", "passing")]),
            ],
        );
        let cat = b.finish();
        let o = JudgeOptions {
            expect: vec![("web".into(), 2)],
            target: "http://127.0.0.1:8500".into(),
            ..Default::default()
        };
        let j = judge(&cat, &o);
        assert_eq!(
            codes_of(&j),
            vec!["SCN-001", "SCN-002", "SCN-003", "SCN-004", "SCN-005", "SCN-006", "SCN-010"],
            "{:#?}",
            j.findings
        );
        let dup = j.findings.iter().find(|f| f.result.code == Some("SCN-004")).unwrap();
        assert_eq!(dup.service_id.as_deref(), Some("web-old"));
        assert!(dup.result.message.contains("the current one is web-new"), "{}", dup.result.message);
        let row = &j.services[0];
        assert_eq!((row.instances, row.stale), (6, 4));
        assert_eq!(j.states[cat.instance(0).node], NodeState::Gone(Gone::SerfCritical));
        assert_eq!(
            Gone::SerfCritical.describe(&cat.node(cat.instance(0).node)),
            "its serfHealth check is critical (\"Agent not live or unreachable\")"
        );
    }

    #[test]
    fn failed_and_left_members_are_gone_even_before_serf_health_changes() {
        let mut b = Builder::default();
        b.add_health_entries(
            "a",
            vec![entry("n1", "10.0.0.1", "a-1", "a", 80, &[("serfHealth", "", "passing"), ("c", "a-1", "passing")])],
        );
        b.set_members(Some(vec![serde_json::from_value(serde_json::json!({"Name": "n1", "Status": 4})).unwrap()]));
        let cat = b.finish();
        assert!(matches!(node_state(&cat.node(0), cat.members.as_ref()), NodeState::Gone(_)));
    }

    #[test]
    fn dns_names_and_tags() {
        // By what Consul's DNS answers (verified on 1.8.7): `_` names and dotted or `=` tags are
        // answered; a dot or a space in a name is not; case is ignored, `_` and `-` are not.
        use crate::service::{dns_answers_name as name_ok, dns_answers_tag as tag_ok};
        assert!(name_ok("web-1") && name_ok("web_1"));
        assert!(!name_ok("web.1") && !name_ok("web 1") && !name_ok("") && !name_ok(&"a".repeat(64)));
        assert!(tag_ok("v1.2") && tag_ok("env=prod") && tag_ok("blue_green") && tag_ok("v1"));
        assert!(!tag_ok("my tag") && !tag_ok("a..b") && !tag_ok("") && !tag_ok("x/y"));
        assert_eq!(dns_key("Pay-Ments"), dns_key("pay-ments"));
        assert_ne!(dns_key("pay_ments"), dns_key("pay-ments"));
        let mut b = Builder::default();
        for (id, name) in
            [("p1", "payments"), ("p2", "Payments"), ("p3", "pay_ments"), ("p4", "pay-ments"), ("p5", "pay.ments")]
        {
            b.add_health_entries(
                name,
                vec![entry("n1", "10.0.0.1", id, name, 80, &[("serfHealth", "", "passing"), ("c", id, "passing")])],
            );
        }
        let j = judge(&b.finish(), &JudgeOptions::default());
        // payments/Payments collide; pay.ments cannot be asked for; pay_ments and pay-ments are
        // two names DNS answers apart.
        assert_eq!(codes_of(&j), vec!["SCN-007", "SCN-007", "SCN-008"], "{:#?}", j.findings);
        assert_eq!(suggest_name("Pay_Ments.v2"), "pay-ments-v2");
    }

    #[test]
    fn critical_with_deregistration_set_or_in_maintenance_is_left_alone() {
        // One instance with a critical check, as a ui/nodes entry (hashicorp/consul
        // agent/structs/structs.go NodeInfo; Definition as 1.9+ agents sync it).
        let judged = |check: serde_json::Value| {
            let mut b = Builder::default();
            b.add_ui_node(
                serde_json::from_value(serde_json::json!({
                    "Node": "n", "Address": "10.0.0.1",
                    "Services": [{"ID": "s1", "Service": "s", "Port": 1}],
                    "Checks": [{"CheckID": "serfHealth", "Status": "passing", "ServiceID": ""}, check]
                }))
                .unwrap(),
            );
            let cat = b.finish();
            critical_forever(&JudgeOptions::default(), &cat.node(0), &cat.instance(0))
        };
        let crit = |id: &str, definition: serde_json::Value| serde_json::json!({"CheckID": id, "Status": "critical", "ServiceID": "s1", "Definition": definition});
        assert!(judged(crit("c", serde_json::json!({"DeregisterCriticalServiceAfter": "1m0s"}))).is_none());
        assert!(judged(crit("_service_maintenance:s1", serde_json::json!({}))).is_none());
        let r =
            judged(crit("c", serde_json::json!({"HTTP": "http://x", "DeregisterCriticalServiceAfter": "0s"}))).unwrap();
        assert_eq!(r.code, Some("SCN-005"));
        assert_eq!(r.evidence["deregister_critical_service_after"], "none");
        let r = judged(crit("c", serde_json::Value::Null)).unwrap();
        assert_eq!(r.evidence["deregister_critical_service_after"], "unknown (not in the catalog)");
    }

    #[test]
    fn three_thousand_copies_of_one_address_are_one_bounded_finding() {
        let mut b = Builder::default();
        let entries: Vec<HealthEntry> = (0..3000)
            .map(|n| {
                let id = format!("web-{n}");
                entry(
                    "n1",
                    "10.0.0.1",
                    &id,
                    "web",
                    80,
                    &[("serfHealth", "", "passing"), ("c", id.as_str(), "critical")],
                )
            })
            .collect();
        b.add_health_entries("web", entries);
        let cat = b.finish();
        let j = judge(&cat, &JudgeOptions::default());
        let dups: Vec<&Finding> = j.findings.iter().filter(|f| f.result.code == Some("SCN-004")).collect();
        assert_eq!(dups.len(), 1, "one finding per group");
        let size = serde_json::to_string(&dups[0]).unwrap().len();
        assert!(size < 4096, "bounded evidence: {size} bytes");
        assert_eq!(dups[0].result.evidence["instances"], "3000");
        // The 3,000 SCN-005 findings (critical, nothing deregisters them) are listed up to the cap.
        let listed = j.findings.iter().filter(|f| f.result.code == Some("SCN-005") && f.service_id.is_some()).count();
        assert_eq!(listed, LISTED_PER_CODE);
        let summary = j.findings.iter().find(|f| f.result.id == "scan.summary").unwrap();
        assert_eq!(summary.result.evidence["not_listed"], (3000 - LISTED_PER_CODE).to_string());
        assert!(summary.result.message.contains("web (2800)"), "{}", summary.result.message);
        assert_eq!(j.services[0].findings, 3000 + 1, "the table still counts every instance's finding");
    }

    #[test]
    fn service_names_are_interned() {
        let mut b = Builder::default();
        b.add_health_entries(
            "web",
            (0..3).map(|n| entry(&format!("n{n}"), "10.0.0.1", &format!("w{n}"), "web", 80, &[])).collect(),
        );
        let cat = b.finish();
        assert!(std::ptr::eq(cat.instance(0).service, cat.instance(2).service));
    }

    #[test]
    fn the_same_address_in_two_namespaces_is_not_a_duplicate() {
        // Enterprise: EnterpriseMeta squashed into the service (hashicorp/consul
        // agent/structs/structs.go NodeService), so `Namespace` sits beside `ID`.
        let mut b = Builder::default();
        for n in serde_json::from_value::<Vec<crate::scan::model::UiNode>>(serde_json::json!([
            {"Node": "n1", "Address": "10.0.0.1",
             "Services": [{"ID": "web-1", "Service": "web", "Port": 80, "Namespace": "team-a"},
                          {"ID": "web-1", "Service": "web", "Port": 80, "Namespace": "team-b"}],
             "Checks": [{"CheckID": "serfHealth", "ServiceID": "", "Status": "passing"}]}
        ]))
        .unwrap()
        {
            b.add_ui_node(n);
        }
        let j = judge(&b.finish(), &JudgeOptions::default());
        assert!(!codes_of(&j).contains(&"SCN-004"), "{:#?}", j.findings);
    }
}
