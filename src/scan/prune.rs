//! `scan --prune`: the scan's one write, and the one place that decides what it may remove.
//!
//! [`verdict`] is the prune contract (README "scan --prune contract", `scan --help`): it is
//! used by the plan and again, on a consistent re-read of the node, immediately before each
//! deregistration. An instance is removed only when its OWN service checks exist and are all
//! critical and either (a) its node is gone — `/v1/agent/members` says failed or left AND the
//! catalog's `serfHealth` is critical — for longer than the grace period, or (b) it sits on a
//! catalog-only node (no `serfHealth`, not a member) that no owner maintains. Anything else is
//! kept, and the dry run says why.
//!
//! Consul records no "gone since": the doctor establishes it itself. The plan notes the
//! `serfHealth` ModifyIndex it saw; the deregistration waits until the grace period has passed
//! since that observation and happens only if a consistent re-read still shows the node failed
//! or left with the same `serfHealth` ModifyIndex (any flap in between changes the index).
//!
//! Deregistrations run one at a time; an interrupt (SIGINT or SIGTERM) stops before the next
//! one and the report says exactly which were removed, skipped, failed or not attempted.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::codes;
use crate::consul::{urlencode, ConsulClient};
use crate::report::CheckResult;
use crate::scan::judge::{deregister_body, Finding, Judged, NodeState};
use crate::scan::model::{Builder, Catalog, CatalogNode, Health, Instance, Member, Membership, WireCheck, WireMember};

/// The contract, as `scan --help` prints it (the README "scan --prune contract" says the same).
pub const CONTRACT: &str = "\
The --prune contract (one function enforces it, for the plan and again right before each write):

An instance is removed only when ALL of these hold:
  - it has service checks of its own and every one of them is critical (node-level checks such as
    serfHealth or an external node check never make a service prunable);
  - and either its node is gone: /v1/agent/members says failed or left AND the catalog's
    serfHealth is critical (both must agree), continuously for --grace since this run first saw
    it (same serfHealth ModifyIndex on a consistent re-read after the grace period; Consul
    records no \"gone since\", so the doctor observes it itself and waits within --deadline);
  - or it is on a catalog-only node (no serfHealth, not a member) that no owner marks.

Never removed: an instance with any passing or warning check of its own; one in maintenance
(_service_maintenance:<id>, _node_maintenance); anything an owner keeps (consul-esm node meta
external-node; consul-k8s service meta managed-by / node meta synthetic-node; consul-k8s catalog
sync and Nomad external-source; consul-ecs source; consul-lambda-registrator's tag; any other
managed-by / external-source / synthetic-node mark); instances imported from a cluster peer (PeerName); an entry without a
ServiceID or node name (an empty ServiceID deregisters the whole node); nothing at all when the
scan is incomplete (hidden from the token, unreadable, or /v1/agent/members unreadable), nor when
--datacenter names another datacenter's nodes as gone.

Right before each deregistration the node is read again with ?consistent (/v1/catalog/node,
/v1/health/node, /v1/agent/members), the verdict recomputed and the state compared with the
plan's; anything changed (ModifyIndex of the service, its checks, serfHealth, member status) skips
it with the reason. After the [y/N] question every instance is re-checked this way. The write
is one PUT /v1/txn that deletes each of its own checks and then the service, each with
delete-cas at the ModifyIndex the plan saw: if anything changed between the re-read and the
write, Consul refuses the whole transaction and nothing is deleted (it is then skipped). Only
where /v1/txn is missing or blocked, or for an instance with 64 checks or more, the write is
PUT /v1/catalog/deregister naming Node and ServiceID (and Datacenter, Namespace, Partition where
the entry had them), after the same re-read. The dry
run lists every instance that looked stale but is kept, with the clause that keeps it. SIGINT or
SIGTERM stops before the next deregistration and the report says what was done.";

/// Default `--grace`: longer than the pauses, restarts and short partitions that make a live
/// agent look failed for a while (serf marks a silent member failed within seconds), far
/// shorter than Consul's own 72h `reconnect_timeout` before it reaps a failed node.
pub const DEFAULT_GRACE: &str = "10m";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Dry run: what `--prune` would do.
    Planned,
    Removed,
    /// Not sent: the re-read right before it showed a change or a reason to keep it.
    Skipped,
    Failed,
    /// Interrupted while the request was in flight: it may or may not have been applied.
    Unknown,
    NotAttempted,
}

#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub body: serde_json::Value,
}

/// Most operations one `/v1/txn` takes (hashicorp/consul `agent/txn_endpoint.go`
/// `maxTxnOps`); an instance with more own checks is deregistered through
/// `/v1/catalog/deregister` after the same re-read.
const TXN_MAX_OPS: usize = 64;

/// The write for one instance: a `PUT /v1/txn` that deletes each of its own checks and then the
/// service, each only at the ModifyIndex the plan saw (`delete-cas`), so the write itself fails,
/// whole, if anything changed after the re-read (hashicorp/consul `api/txn.go` `ServiceTxnOp`,
/// `CheckTxnOp`; ACLs vetted per op in `agent/consul/txn_endpoint.go`: service:write on the
/// service, for its checks through `ServiceName`). Observed on 1.8.7: a stale index answers 409
/// with `Errors[].What` "failed to delete service … index is stale" and deletes nothing.
pub fn txn_request(
    dc: Option<&str>,
    node: &str,
    service: &str,
    id: &str,
    namespace: &str,
    partition: &str,
    seen: &Seen,
) -> Request {
    let scoped = |mut v: serde_json::Value| {
        if !namespace.is_empty() {
            v["Namespace"] = namespace.into();
        }
        if !partition.is_empty() {
            v["Partition"] = partition.into();
        }
        v
    };
    let mut ops: Vec<serde_json::Value> = seen
        .checks
        .iter()
        .map(|(check, index, _)| {
            serde_json::json!({"Check": {"Verb": "delete-cas", "Check": scoped(serde_json::json!({
                "Node": node, "CheckID": check, "ServiceID": id, "ServiceName": service, "ModifyIndex": index
            }))}})
        })
        .collect();
    ops.push(serde_json::json!({"Service": {"Verb": "delete-cas", "Node": node, "Service": scoped(serde_json::json!({
        "ID": id, "Service": service, "ModifyIndex": seen.service_index
    }))}}));
    let path = match dc {
        Some(dc) => format!("/v1/txn?dc={}", urlencode(dc)),
        None => "/v1/txn".to_string(),
    };
    Request { method: "PUT", path, body: serde_json::Value::Array(ops) }
}

/// What the plan saw of an instance; the deregistration goes ahead only if a consistent
/// re-read sees exactly this again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    service_index: u64,
    /// (CheckID, ModifyIndex, status) of the service's own checks that are not passing, sorted.
    checks: Vec<(String, u64, Health)>,
    /// How many of its own checks pass.
    passing: u64,
    /// The same for the node's checks other than serfHealth.
    node_checks: Vec<(String, u64, Health)>,
    serf: Option<(u64, Health)>,
    member: Option<Member>,
}

impl Seen {
    pub fn of(cat: &Catalog, i: &Instance) -> Seen {
        let node = &cat.node(i.node);
        let list = |checks: &[crate::scan::model::Check]| {
            let mut v: Vec<(String, u64, Health)> =
                checks.iter().map(|c| (c.id.to_string(), c.modify_index, c.status)).collect();
            v.sort();
            v
        };
        Seen {
            service_index: i.modify_index,
            checks: list(i.failing),
            passing: i.passing,
            node_checks: list(node.checks),
            serf: node.serf.as_ref().map(|c| (c.modify_index, c.status)),
            member: member_of(cat, i),
        }
    }

    /// What differs, in words.
    fn changes(&self, now: &Seen) -> String {
        let mut what = Vec::new();
        if self.service_index != now.service_index {
            what.push(format!("the service entry (ModifyIndex {} -> {})", self.service_index, now.service_index));
        }
        if self.checks != now.checks || self.passing != now.passing {
            what.push("its checks".to_string());
        }
        if self.node_checks != now.node_checks {
            what.push("its node's checks".to_string());
        }
        if self.serf != now.serf {
            let show = |s: &Option<(u64, Health)>| match s {
                Some((i, h)) => format!("{} at ModifyIndex {i}", h.as_str()),
                None => "absent".to_string(),
            };
            what.push(format!("serfHealth ({} -> {})", show(&self.serf), show(&now.serf)));
        }
        if self.member != now.member {
            what.push(format!("membership ({} -> {})", member_word(self.member), member_word(now.member)));
        }
        what.join(", ")
    }
}

fn member_word(m: Option<Member>) -> String {
    match m {
        None => "not a member".into(),
        Some(Member::Alive) => "alive".into(),
        Some(Member::Leaving) => "leaving".into(),
        Some(Member::Left) => "left".into(),
        Some(Member::Failed) => "failed".into(),
        Some(Member::Other(n)) => format!("status {n}"),
    }
}

fn member_of(cat: &Catalog, i: &Instance) -> Option<Member> {
    let node = &cat.node(i.node);
    if !node.peer.is_empty() {
        return None;
    }
    cat.members.as_ref().and_then(|m| m.get(&*node.name)).copied()
}

#[derive(Debug, Clone, Serialize)]
pub struct Action {
    pub service: String,
    pub node: String,
    pub service_id: String,
    pub address: String,
    pub reason: String,
    pub request: Request,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Milliseconds the deregistration waits after the plan for the grace period (gone nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_wait_ms: Option<u64>,
    #[serde(skip)]
    seen: Seen,
    #[serde(skip)]
    namespace: String,
    #[serde(skip)]
    partition: String,
    #[serde(skip)]
    not_before: Option<tokio::time::Instant>,
}

/// Kept instances listed one by one (all are counted in `kept_by_clause`).
pub const KEPT_LISTED: usize = 1000;

/// An instance that looked stale (on a failed, left or catalog-only node, or a superseded
/// duplicate) and that prune keeps, with the clause of the contract that keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub service: String,
    pub node: String,
    pub service_id: String,
    pub address: String,
    pub reason: String,
}

/// An instance on a live agent that a finding says should go: removed on its agent, not here.
#[derive(Debug, Clone, Serialize)]
pub struct AgentSide {
    pub service: String,
    pub node: String,
    pub service_id: String,
    pub code: &'static str,
    pub command: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// `dry-run`, `prune`, or `declined` (asked and not confirmed).
    pub mode: &'static str,
    /// `--grace`, as given.
    pub grace: String,
    pub planned: usize,
    pub removed: usize,
    pub skipped: usize,
    pub failed: usize,
    pub unknown: usize,
    pub not_attempted: usize,
    /// Why nothing at all may be pruned (an incomplete scan), when that is so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    pub actions: Vec<Action>,
    /// The first [`KEPT_LISTED`] kept instances, each with its reason.
    pub kept: Vec<Kept>,
    /// Every kept instance counted by the clause that keeps it (stable keys, e.g. `owner`,
    /// `own-check-not-critical`, `live-agent`).
    pub kept_by_clause: std::collections::BTreeMap<&'static str, usize>,
    pub agent_side: Vec<AgentSide>,
    #[serde(skip)]
    recheck: Recheck,
}

/// What the re-read before each deregistration needs to know.
#[derive(Debug, Clone, Default)]
struct Recheck {
    dc: Option<String>,
    same_dc: bool,
    grace: Duration,
}

impl PruneReport {
    pub fn count(&mut self) {
        let n = |o: Outcome| self.actions.iter().filter(|a| a.outcome == o).count();
        self.removed = n(Outcome::Removed);
        self.skipped = n(Outcome::Skipped);
        self.failed = n(Outcome::Failed);
        self.unknown = n(Outcome::Unknown);
        self.not_attempted = n(Outcome::NotAttempted);
        self.planned = self.actions.len();
    }
}

// --- the contract ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Remove it; `after_grace` when its node is gone (the grace period applies).
    Remove { reason: String, after_grace: bool },
    /// Kept: the clause of the contract that keeps it (a stable key) and why, in words.
    Keep { clause: &'static str, why: String },
}

fn keep(clause: &'static str, why: impl Into<String>) -> Verdict {
    Verdict::Keep { clause, why: why.into() }
}

/// THE prune contract, clause by clause (README "scan --prune contract"). `incomplete` is why
/// the scan did not see everything, if it did not: nothing is pruned from a partial view.
pub fn verdict(cat: &Catalog, i: &Instance, incomplete: Option<&str>) -> Verdict {
    let node = &cat.node(i.node);
    if let Some(why) = incomplete {
        return keep(
            "incomplete-scan",
            format!("the scan is incomplete ({why}): nothing is pruned from a partial view"),
        );
    }
    if node.name.is_empty() {
        return keep("no-node-name", "the catalog entry has an empty node name: a deregistration could not name it");
    }
    if i.id.is_empty() {
        return keep(
            "no-service-id",
            "the catalog entry has no ServiceID: {\"Node\": …, \"ServiceID\": \"\"} would deregister the whole node",
        );
    }
    let peer = if node.peer.is_empty() { &i.peer } else { &node.peer };
    if !peer.is_empty() {
        return keep(
            "peer",
            format!(
            "imported from cluster peer \"{peer}\": the peering stream owns it, it is removed in the exporting cluster"
        ),
        );
    }
    if let Some(c) = i.failing.iter().find(|c| c.id.starts_with("_service_maintenance:")) {
        return keep(
            "maintenance",
            format!("the instance is in maintenance mode ({}): someone put it there on purpose", c.id),
        );
    }
    if node.checks.iter().any(|c| &*c.id == "_node_maintenance") {
        return keep(
            "maintenance",
            "its node is in maintenance mode (_node_maintenance): someone put it there on purpose",
        );
    }
    if let Some(o) = &i.owner {
        return keep("owner", format!("maintained by {} ({}): {}", o.name, o.mark, owner_advice(o)));
    }
    if i.unchecked() {
        return keep("no-own-check", 
            "it has no health check of its own: nothing says the service is down (node-level checks never make a service prunable)",
        );
    }
    if i.passing > 0 {
        let (n, verb) = (i.passing, if i.passing == 1 { "is" } else { "are" });
        return keep("own-check-not-critical", format!("{n} of its own checks {verb} passing: the service answers"));
    }
    if let Some(c) = i.failing.iter().find(|c| c.status != Health::Critical) {
        return keep(
            "own-check-not-critical",
            format!("its check {} is {}: the service answers", c.id, c.status.as_str()),
        );
    }
    let member =
        match &cat.membership {
            Membership::OtherDatacenter => return keep(
                "other-datacenter",
                "the scanned datacenter is not the agent's own, so its member list cannot say whether the node is gone",
            ),
            Membership::Unreadable(why) => {
                return keep(
                    "members-unreadable",
                    format!("the member list could not be read ({why}), so no node counts as gone"),
                )
            }
            Membership::Read => match cat.members.as_ref() {
                Some(m) => m.get(node.name).copied(),
                None => return keep("members-unreadable", "the member list was not read, so no node counts as gone"),
            },
        };
    if !node.partition.is_empty() && node.partition != "default" {
        return keep(
            "partition",
            format!(
                "its node is in admin partition \"{}\": the agent's member list cannot vouch for it",
                node.partition
            ),
        );
    }
    match (&node.serf, member) {
        (None, None) => Verdict::Remove {
            reason: format!(
                "catalog-only node {} (no serfHealth, not a member) that no owner marks, and every check of the instance is critical",
                node.name
            ),
            after_grace: false,
        },
        (None, Some(m)) => keep("member-without-serf-health", format!(
            "node {} has no serfHealth yet but is a serf member ({}): an agent runs there",
            node.name,
            member_word(Some(m))
        )),
        (Some(serf), Some(m @ (Member::Failed | Member::Left))) if serf.status == Health::Critical => Verdict::Remove {
            reason: format!(
                "node {} is gone (serf member {}, serfHealth critical at ModifyIndex {}) and every check of the instance is critical",
                node.name,
                member_word(Some(m)),
                serf.modify_index
            ),
            after_grace: true,
        },
        (Some(serf), Some(m @ (Member::Failed | Member::Left))) => keep("members-and-serf-disagree", format!(
            "the member list says node {} {} but its serfHealth is {}: the two disagree, so it does not count as gone",
            node.name,
            member_word(Some(m)),
            serf.status.as_str()
        )),
        (Some(serf), m) if serf.status == Health::Critical => keep("serf-critical-member-not-gone", format!(
            "node {} has serfHealth critical but the member list says {}: a leader that has not reconciled yet shows this for a live agent",
            node.name,
            member_word(m)
        )),
        (Some(_), _) => keep("live-agent", format!(
            "node {} runs a live agent: deregister it there (a catalog deregistration would be undone by its anti-entropy)",
            node.name
        )),
    }
}

/// Where to look instead, per owner.
pub fn owner_advice(o: &crate::scan::model::Owner) -> String {
    use crate::scan::model::OwnerKind::*;
    match o.kind {
        Esm => "consul-esm runs its checks and updates them; fix the service or its check definition, or remove it with what registered it".into(),
        K8sEndpoints => "look at the pod's readiness (kubectl get pod, its k8s-namespace and pod-name service meta), not the catalog: the endpoints controller re-registers it and deregisters it when the pod goes".into(),
        K8sSync => "the catalog sync re-creates it from the Kubernetes Service; change the Service (or its consul.hashicorp.com/service-sync annotation) instead".into(),
        Nomad => "look at the Nomad allocation (nomad alloc status); Nomad deregisters it when the allocation stops".into(),
        Ecs => "look at the ECS task; consul-ecs deregisters it when the task stops".into(),
        Other => format!("{} keeps it; change it there", o.name),
    }
}

// --- the plan -------------------------------------------------------------------------------

pub struct PlanOptions<'a> {
    pub dc: Option<&'a str>,
    pub same_dc: bool,
    /// Why the scan is incomplete, if it is.
    pub incomplete: Option<String>,
    pub grace: Duration,
    pub grace_text: String,
    /// When the catalog was read: the first observation of every gone node.
    pub observed: tokio::time::Instant,
    /// The run's deadline (a grace period ending after it cannot be waited for).
    pub deadline: tokio::time::Instant,
    /// The `consul` command line the scan was given, for agent-side commands.
    pub cli: &'a crate::consul_cli::ConsulCli,
}

/// What `--prune` would deregister, what it keeps of what looked stale (and why), and the
/// agent-side commands for the rest.
pub fn plan(cat: &Catalog, judged: &Judged, o: &PlanOptions) -> PruneReport {
    let mut actions = Vec::new();
    let mut kept = Vec::new();
    let mut kept_by_clause: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for (n, i) in cat.instances().enumerate() {
        let i = &i;
        let node = &cat.node(i.node);
        // "Looked stale": judged stale, or not passing on a node without a live agent, or every
        // own check critical. Only these can be removed (Remove needs the last) or be listed as
        // kept, so the verdict (and its wording) is computed for them alone.
        let own_critical =
            i.passing == 0 && !i.failing.is_empty() && i.failing.iter().all(|c| c.status == Health::Critical);
        let off_agent = judged.states.get(i.node).is_some_and(|s| *s != NodeState::Alive)
            && crate::scan::judge::instance_health(cat, i) != Health::Passing;
        if !(judged.stale.get(n).copied().unwrap_or(false) || off_agent || own_critical) {
            continue;
        }
        match verdict(cat, i, o.incomplete.as_deref()) {
            Verdict::Remove { reason, after_grace } => {
                let not_before = after_grace.then(|| o.observed + o.grace);
                let reason = if after_grace {
                    let late = if o.observed + o.grace >= o.deadline {
                        " (the run deadline comes first: give a --deadline longer than --grace, or it is not attempted)"
                    } else {
                        ""
                    };
                    format!("{reason}; first seen gone by this run, removed only if still gone with the same serfHealth after the {} grace period{late}", o.grace_text)
                } else {
                    reason
                };
                let seen = Seen::of(cat, i);
                let request = if seen.checks.len() < TXN_MAX_OPS {
                    txn_request(o.dc, node.name, i.service, i.id, i.namespace, node.partition, &seen)
                } else {
                    Request {
                        method: "PUT",
                        path: "/v1/catalog/deregister".into(),
                        body: deregister_body(o.dc, node.name, i.id, i.namespace, node.partition),
                    }
                };
                actions.push(Action {
                    service: i.service.to_string(),
                    node: node.name.to_string(),
                    service_id: i.id.to_string(),
                    address: i.endpoint(),
                    reason,
                    request,
                    outcome: Outcome::Planned,
                    detail: None,
                    grace_wait_ms: after_grace.then_some(o.grace.as_millis() as u64),
                    seen,
                    namespace: i.namespace.to_string(),
                    partition: node.partition.to_string(),
                    not_before,
                });
            }
            Verdict::Keep { clause, why: reason } => {
                *kept_by_clause.entry(clause).or_insert(0) += 1;
                if kept.len() < KEPT_LISTED {
                    kept.push(Kept {
                        service: i.service.to_string(),
                        node: node.key(),
                        service_id: i.id.to_string(),
                        address: i.endpoint(),
                        reason,
                    });
                }
            }
        }
    }
    // Catalog-only removals first: they do not wait for a grace period.
    actions.sort_by_key(|a| a.not_before.is_some());
    let mut agent_side = Vec::new();
    let mut listed = std::collections::HashSet::new();
    for &(n, code) in &judged.agent_side {
        let i = &cat.instance(n);
        let node = &cat.node(i.node);
        if !listed.insert(n) {
            continue;
        }
        let on_node = o.cli.on_host(node.address);
        agent_side.push(AgentSide {
            service: i.service.to_string(),
            node: node.name.to_string(),
            service_id: i.id.to_string(),
            code,
            command: on_node.command("services deregister", &format!("-id={}", i.id)),
        });
    }
    let mut r = PruneReport {
        mode: "dry-run",
        grace: o.grace_text.clone(),
        planned: 0,
        removed: 0,
        skipped: 0,
        failed: 0,
        unknown: 0,
        not_attempted: 0,
        blocked: o
            .incomplete
            .as_ref()
            .map(|why| format!("the scan is incomplete ({why}): nothing is pruned from a partial view")),
        actions,
        kept,
        kept_by_clause,
        agent_side,
        recheck: Recheck { dc: o.dc.map(str::to_string), same_dc: o.same_dc, grace: o.grace },
    };
    r.count();
    r
}

// --- execution ------------------------------------------------------------------------------

/// Runs the plan, one deregistration at a time, each after a consistent re-read of its node,
/// until done, interrupted or out of time. Returns the findings for failed deregistrations and
/// whether it was interrupted.
pub async fn execute<S>(
    client: &ConsulClient,
    report: &mut PruneReport,
    deadline: tokio::time::Instant,
    interrupt: S,
) -> (Vec<Finding>, bool)
where
    S: Future<Output = ()>,
{
    report.mode = "prune";
    let recheck = report.recheck.clone();
    let mut interrupt = std::pin::pin!(interrupt);
    let mut findings = Vec::new();
    let mut stopped: Option<&'static str> = None;
    let mut interrupted = false;
    for a in report.actions.iter_mut() {
        if let Some(why) = stopped {
            a.outcome = Outcome::NotAttempted;
            a.detail = Some(why.to_string());
            continue;
        }
        if let Some(at) = a.not_before {
            if at >= deadline {
                a.outcome = Outcome::NotAttempted;
                a.detail = Some(format!(
                    "the {} grace period since this run first saw the node gone ends after the run deadline: re-run with a --deadline longer than --grace (or a shorter --grace)",
                    crate::duration::format_go(recheck.grace.as_nanos() as i64)
                ));
                continue;
            }
            if at > tokio::time::Instant::now() {
                crate::log::debug(format!(
                    "prune: waiting {} ms for the grace period before re-checking {} on {}",
                    at.saturating_duration_since(tokio::time::Instant::now()).as_millis(),
                    a.service_id,
                    a.node
                ));
                let waited = tokio::select! {
                    _ = tokio::time::sleep_until(at) => true,
                    _ = &mut interrupt => false,
                };
                if !waited {
                    interrupted = true;
                    stopped = Some("interrupted before this one");
                    a.outcome = Outcome::NotAttempted;
                    a.detail = stopped.map(str::to_string);
                    continue;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            stopped = Some("the run deadline was reached before this one");
            a.outcome = Outcome::NotAttempted;
            a.detail = stopped.map(str::to_string);
            continue;
        }
        // The re-read and the write race the interrupt and the deadline together.
        let step = async {
            match recheck_instance(client, a, &recheck).await {
                Err(skip) => Step::Skip(skip),
                Ok(()) => Step::Sent(deregister(client, a, recheck.dc.as_deref()).await),
            }
        };
        let result = tokio::select! {
            r = step => Some(r),
            _ = &mut interrupt => None,
            _ = tokio::time::sleep_until(deadline) => {
                a.outcome = Outcome::Unknown;
                a.detail = Some("the run deadline was reached while checking or deregistering it; re-run the scan to see whether it is gone".into());
                stopped = Some("the run deadline was reached before this one");
                continue;
            }
        };
        let Some(result) = result else {
            interrupted = true;
            a.outcome = Outcome::Unknown;
            a.detail = Some(
                "interrupted while checking or deregistering it; re-run the scan to see whether it is gone".into(),
            );
            stopped = Some("interrupted before this one");
            continue;
        };
        match result {
            Step::Skip(why) => {
                a.outcome = Outcome::Skipped;
                a.detail = Some(why);
            }
            Step::Sent(Ok(())) => a.outcome = Outcome::Removed,
            Step::Sent(Err((Outcome::Skipped, message, _))) => {
                a.outcome = Outcome::Skipped;
                a.detail = Some(message);
            }
            Step::Sent(Err((outcome, message, fix))) => {
                a.outcome = outcome;
                a.detail = Some(message.clone());
                findings.push(Finding {
                    service: a.service.clone(),
                    node: Some(a.node.clone()),
                    service_id: Some(a.service_id.clone()),
                    address: Some(a.address.clone()),
                    result: CheckResult::finding(
                        codes::SCN_PRUNE_FAILED,
                        "scan.prune",
                        format!("PUT {} deleting {} on node {}: {message}", a.request.path, a.service_id, a.node),
                        fix,
                    )
                    .with("node", a.node.clone())
                    .with("service_id", a.service_id.clone()),
                });
            }
        }
    }
    report.count();
    (findings, interrupted)
}

enum Step {
    Skip(String),
    Sent(Result<(), Refusal>),
}

/// The consistent re-read of one planned instance right before its deregistration: its node
/// (`/v1/catalog/node`), the node's checks (`/v1/health/node`) and the member list, the verdict
/// recomputed and the state compared with the plan's. `Err` says why it is not sent.
async fn recheck_instance(client: &ConsulClient, a: &Action, rc: &Recheck) -> Result<(), String> {
    let mut q = String::from("?consistent");
    if let Some(dc) = &rc.dc {
        q.push_str(&format!("&dc={}", urlencode(dc)));
    }
    if !a.partition.is_empty() {
        q.push_str(&format!("&partition={}", urlencode(&a.partition)));
    }
    if !a.namespace.is_empty() {
        q.push_str(&format!("&ns={}", urlencode(&a.namespace)));
    }
    let node_path = format!("/v1/catalog/node/{}{q}", urlencode(&a.node));
    let checks_path = format!("/v1/health/node/{}{q}", urlencode(&a.node));
    let unreadable =
        |what: String| format!("not sent: the re-read before it failed ({what}), so its current state is unknown");
    let node: Option<CatalogNode> = match crate::scan::gather::get_list::<Option<CatalogNode>>(client, &node_path).await
    {
        Ok(n) => n,
        Err(f) if f.status == Some(404) => None,
        Err(f) => return Err(unreadable(f.what)),
    };
    let checks: Vec<WireCheck> =
        crate::scan::gather::get_list(client, &checks_path).await.map_err(|f| unreadable(f.what))?;
    let mut b = Builder::default();
    if rc.same_dc {
        match crate::scan::gather::get_list::<Vec<WireMember>>(client, "/v1/agent/members").await {
            Ok(m) => b.set_members(Some(m)),
            Err(f) => {
                b.set_members(None);
                b.set_membership(Membership::Unreadable(f.what));
            }
        }
    } else {
        b.set_membership(Membership::OtherDatacenter);
    }
    let Some(ui) = node.and_then(|n| n.into_ui_node(checks)) else {
        return Err(format!("already gone: node {} is no longer in the catalog", a.node));
    };
    b.add_ui_node(ui);
    let cat = b.finish();
    let Some(i) = &cat.instances().find(|i| *i.id == *a.service_id) else {
        return Err(format!("already gone: {} is no longer registered on node {}", a.service_id, a.node));
    };
    if let Verdict::Keep { why, .. } = verdict(&cat, i, None) {
        return Err(format!("kept on the re-read before deregistering: {why}"));
    }
    let now = Seen::of(&cat, i);
    if now != a.seen {
        return Err(format!("changed since the plan ({}): not removed; run the scan again", a.seen.changes(&now)));
    }
    Ok(())
}

type Refusal = (Outcome, String, String);

async fn deregister(client: &ConsulClient, a: &Action, dc: Option<&str>) -> Result<(), Refusal> {
    let (node, service) = (a.node.as_str(), a.service.as_str());
    // Never a request that names no service: Consul deregisters the whole node for it.
    let names_one = |v: &serde_json::Value| {
        v["Node"].as_str().is_some_and(|n| !n.is_empty()) && v["ServiceID"].as_str().is_some_and(|s| !s.is_empty())
    };
    let txn = a.request.path.starts_with("/v1/txn");
    let whole = if txn {
        a.request.body.as_array().and_then(|ops| ops.last()).is_some_and(|op| {
            op["Service"]["Node"].as_str().is_some_and(|n| !n.is_empty())
                && op["Service"]["Service"]["ID"].as_str().is_some_and(|s| !s.is_empty())
        })
    } else {
        names_one(&a.request.body)
    };
    if node.is_empty() || a.service_id.is_empty() || !whole {
        return Err((
            Outcome::Failed,
            "refused to send a deregistration without a node name and a ServiceID".into(),
            "this is a bug in consul-doctor: report it with the scan's JSON report".into(),
        ));
    }
    let denied = |what: String| {
        (
            Outcome::Failed,
            what,
            format!(
                "give the scanning token write access to the instance: a policy with service \"{service}\" {{ policy = \"write\" }}, for example consul acl policy create -name scan-prune -rules 'service \"{service}\" {{ policy = \"write\" }}' and attach it to the token"
            ),
        )
    };
    let mut attempt = 0;
    let mut path = a.request.path.clone();
    let mut body = a.request.body.clone();
    loop {
        let reply = match client.put_json(&path, Some(&body)).await {
            Ok(r) => r,
            Err(f) => {
                let outcome = match f {
                    crate::consul::HttpFailure::Connect(_) => Outcome::Failed,
                    _ => Outcome::Unknown,
                };
                return Err((
                    outcome,
                    f.describe(client.timeout),
                    "re-run the scan to see whether the instance is gone, then prune again".into(),
                ));
            }
        };
        let txn = path.starts_with("/v1/txn");
        return match reply.status {
            200 if txn => Ok(()),
            200 if reply.text() == "true" => Ok(()),
            429 if attempt + 1 < 6 => {
                tokio::time::sleep(crate::scan::gather::backoff(&reply, attempt)).await;
                attempt += 1;
                continue;
            }
            // The transaction refused, whole: an op's index moved, or the token may not write.
            409 if txn => {
                let errors: Vec<String> = reply
                    .json::<serde_json::Value>()
                    .ok()
                    .and_then(|v| v["Errors"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|e| e["What"].as_str().map(|w| crate::clip::clip_to(w, 200).into_owned()))
                    .collect();
                let what = errors.join("; ");
                if what.contains("Permission denied") {
                    Err(denied(format!("permission denied (409 \"{what}\"): the token may not deregister it")))
                } else {
                    Err((
                        Outcome::Skipped,
                        format!("not removed: it changed between the re-read and the write, and Consul refused the whole transaction ({what})"),
                        "run the scan again: it judges the instance as it is now".into(),
                    ))
                }
            }
            // No transaction endpoint here (blocked by http_config.block_endpoints, or a proxy
            // that does not pass it): the same deletion through the catalog, after the same re-read.
            404 | 405 if txn => {
                crate::log::debug(format!("PUT {path} answered {}: deregistering through the catalog", reply.status));
                (path, body) = catalog_fallback(a, dc);
                continue;
            }
            403 if txn && reply.text().contains("blocked") => {
                crate::log::debug(format!("PUT {path} is blocked: deregistering through the catalog"));
                (path, body) = catalog_fallback(a, dc);
                continue;
            }
            403 => Err(denied(format!("403 \"{}\": the token may not deregister it", reply.snippet()))),
            s => Err((
                Outcome::Failed,
                format!("answered {s} \"{}\"", reply.snippet()),
                "read the agent log (consul monitor -log-level=debug) and retry; consul-doctor check shows whether the agent and its leader are healthy".into(),
            )),
        };
    }
}

/// `PUT /v1/catalog/deregister` for the action (same datacenter, namespace and partition).
fn catalog_fallback(a: &Action, dc: Option<&str>) -> (String, serde_json::Value) {
    let body = deregister_body(dc, &a.node, &a.service_id, &a.namespace, &a.partition);
    ("/v1/catalog/deregister".to_string(), body)
}

#[cfg(test)]
mod tests {
    //! One test per clause of the contract. Catalogs are built from `/v1/internal/ui/nodes`
    //! entries in the shape of hashicorp/consul `agent/structs/structs.go` `NodeInfo` (Node,
    //! Address, Meta, PeerName, Partition, Services[], Checks[] with ModifyIndex).
    use super::*;
    use crate::scan::model::UiNode;
    use serde_json::{json, Value};

    fn catalog(nodes: Value, members: Option<Value>) -> Catalog {
        let mut b = Builder::default();
        for n in serde_json::from_value::<Vec<UiNode>>(nodes).unwrap() {
            b.add_ui_node(n);
        }
        b.set_members(members.map(|m| serde_json::from_value(m).unwrap()));
        b.finish()
    }

    fn check(id: &str, sid: &str, status: &str) -> Value {
        json!({"CheckID": id, "ServiceID": sid, "Status": status, "ModifyIndex": 7})
    }

    fn svc(id: &str) -> Value {
        json!({"ID": id, "Service": "web", "Port": 80, "ModifyIndex": 5})
    }

    /// A node with serfHealth `serf` (None: catalog-only), one service `web-1` with `checks`.
    fn node(name: &str, serf: Option<&str>, checks: Vec<Value>) -> Value {
        let mut all = checks;
        if let Some(s) = serf {
            all.push(json!({"CheckID": "serfHealth", "ServiceID": "", "Status": s, "ModifyIndex": 40}));
        }
        json!({"Node": name, "Address": "10.0.0.1", "Services": [svc("web-1")], "Checks": all})
    }

    fn members(name: &str, status: i64) -> Option<Value> {
        Some(json!([{"Name": name, "Status": status}]))
    }

    fn one(cat: &Catalog) -> Verdict {
        verdict(cat, &cat.instance(0), None)
    }

    fn kept(v: Verdict, words: &str) {
        match v {
            Verdict::Keep { why, .. } => assert!(why.contains(words), "kept, but why = {why:?}"),
            other => panic!("expected Keep({words:?}), got {other:?}"),
        }
    }

    const FAILED: i64 = 4;
    const LEFT: i64 = 3;
    const ALIVE: i64 = 1;

    #[test]
    fn gone_node_with_all_own_checks_critical_is_removed_after_the_grace() {
        for status in [FAILED, LEFT] {
            let cat = catalog(
                json!([node("n1", Some("critical"), vec![check("c1", "web-1", "critical")])]),
                members("n1", status),
            );
            assert!(matches!(one(&cat), Verdict::Remove { after_grace: true, .. }), "{:?}", one(&cat));
        }
    }

    #[test]
    fn a_paused_agent_with_a_passing_service_check_is_kept() {
        // SIGSTOP: serf marks it failed and serfHealth goes critical; the service's own check,
        // kept by the paused agent, still says passing in the catalog.
        let cat = catalog(
            json!([node("n1", Some("critical"), vec![check("c1", "web-1", "passing")])]),
            members("n1", FAILED),
        );
        kept(one(&cat), "is passing");
        let cat = catalog(
            json!([node("n1", Some("critical"), vec![check("c1", "web-1", "warning")])]),
            members("n1", FAILED),
        );
        kept(one(&cat), "is warning");
        // One critical and one passing check: not all critical.
        let cat = catalog(
            json!([node(
                "n1",
                Some("critical"),
                vec![check("c1", "web-1", "critical"), check("c2", "web-1", "passing")]
            )]),
            members("n1", FAILED),
        );
        kept(one(&cat), "is passing");
    }

    #[test]
    fn node_level_checks_never_make_a_service_prunable() {
        // Only serfHealth and an external node check are critical; the service has no check.
        let cat = catalog(
            json!([node("n1", Some("critical"), vec![check("ext-node", "", "critical")])]),
            members("n1", FAILED),
        );
        kept(one(&cat), "no health check of its own");
    }

    #[test]
    fn membership_and_serf_health_must_agree() {
        let cat = catalog(
            json!([node("n1", Some("passing"), vec![check("c1", "web-1", "critical")])]),
            members("n1", FAILED),
        );
        kept(one(&cat), "disagree");
        // A leader that has not reconciled: serfHealth critical, member alive.
        let cat = catalog(
            json!([node("n1", Some("critical"), vec![check("c1", "web-1", "critical")])]),
            members("n1", ALIVE),
        );
        kept(one(&cat), "member list says alive");
        // Not in the member list at all (another segment): not gone either.
        let cat = catalog(
            json!([node("n1", Some("critical"), vec![check("c1", "web-1", "critical")])]),
            members("other", ALIVE),
        );
        kept(one(&cat), "not a member");
    }

    #[test]
    fn unreadable_members_or_another_datacenter_mean_no_node_is_gone() {
        let nodes = json!([node("n1", Some("critical"), vec![check("c1", "web-1", "critical")])]);
        let mut b = Builder::default();
        for n in serde_json::from_value::<Vec<UiNode>>(nodes.clone()).unwrap() {
            b.add_ui_node(n);
        }
        b.set_membership(Membership::Unreadable("GET /v1/agent/members answered 403".into()));
        kept(one(&b.finish()), "could not be read");
        let mut b = Builder::default();
        for n in serde_json::from_value::<Vec<UiNode>>(nodes).unwrap() {
            b.add_ui_node(n);
        }
        b.set_membership(Membership::OtherDatacenter);
        kept(one(&b.finish()), "not the agent's own");
        // Catalog-only instances need membership too ("not a member").
        let mut b = Builder::default();
        for n in serde_json::from_value::<Vec<UiNode>>(json!([node("x", None, vec![check("c1", "web-1", "critical")])]))
            .unwrap()
        {
            b.add_ui_node(n);
        }
        b.set_membership(Membership::Unreadable("timeout".into()));
        kept(one(&b.finish()), "could not be read");
    }

    #[test]
    fn catalog_only_instances_are_removed_only_when_critical() {
        let crit = catalog(json!([node("x", None, vec![check("c1", "web-1", "critical")])]), Some(json!([])));
        assert!(matches!(one(&crit), Verdict::Remove { after_grace: false, .. }), "{:?}", one(&crit));
        let pass = catalog(json!([node("x", None, vec![check("c1", "web-1", "passing")])]), Some(json!([])));
        kept(one(&pass), "is passing");
        let bare = catalog(json!([node("x", None, vec![])]), Some(json!([])));
        kept(one(&bare), "no health check of its own");
        // A member without serfHealth yet is an agent, not catalog-only.
        let member = catalog(json!([node("x", None, vec![check("c1", "web-1", "critical")])]), members("x", ALIVE));
        kept(one(&member), "an agent runs there");
    }

    #[test]
    fn maintenance_is_never_pruned() {
        let cat = catalog(
            json!([node("n1", Some("critical"), vec![check("_service_maintenance:web-1", "web-1", "critical")])]),
            members("n1", FAILED),
        );
        kept(one(&cat), "maintenance");
        let cat = catalog(
            json!([node(
                "x",
                None,
                vec![check("c1", "web-1", "critical"), check("_node_maintenance", "", "critical")]
            )]),
            Some(json!([])),
        );
        kept(one(&cat), "maintenance");
    }

    #[test]
    fn owners_keep_what_they_register() {
        // consul-esm (hashicorp/consul-esm README.md): node meta external-node/external-probe,
        // a critical node-level check, the service's own check critical too.
        let esm = json!([{"Node": "ext", "Address": "192.168.0.1",
            "Meta": {"external-node": "true", "external-probe": "true"},
            "Services": [svc("web-1")],
            "Checks": [check("externalNodeHealth", "", "critical"), check("service:web-1", "web-1", "critical")]}]);
        kept(one(&catalog(esm, Some(json!([])))), "consul-esm (node meta external-node=true, external-probe=true)");
        // consul-k8s endpoints controller, agentless (hashicorp/consul-k8s
        // control-plane/connect-inject/controllers/endpoints/endpoints_controller.go: service meta
        // managed-by, pod-name, k8s-namespace, k8s-service-name; node meta synthetic-node).
        let k8s = json!([{"Node": "k8s-node-1-virtual", "Address": "127.0.0.1",
            "Meta": {"synthetic-node": "true"},
            "Services": [{"ID": "pod1-web", "Service": "web", "Address": "10.0.3.7", "Port": 8080, "ModifyIndex": 9,
                "Meta": {"managed-by": "consul-k8s-endpoints-controller", "pod-name": "pod1",
                         "k8s-namespace": "default", "k8s-service-name": "web", "synthetic-node": "true"}}],
            "Checks": [{"CheckID": "default/pod1-web", "ServiceID": "pod1-web", "Status": "critical",
                        "Name": "Kubernetes Readiness Check", "Type": "kubernetes-readiness", "ModifyIndex": 9}]}]);
        kept(
            one(&catalog(k8s, Some(json!([])))),
            "consul-k8s (service meta managed-by=consul-k8s-endpoints-controller)",
        );
        // consul-k8s catalog sync (control-plane/catalog/to-consul/resource.go).
        let sync = json!([{"Node": "k8s-sync", "Address": "127.0.0.1", "Meta": {"external-source": "kubernetes"},
            "Services": [{"ID": "web-abc", "Service": "web", "Port": 80, "Meta": {"external-source": "kubernetes", "external-k8s-ns": "default"}}],
            "Checks": [check("c", "web-abc", "critical")]}]);
        kept(one(&catalog(sync, Some(json!([])))), "external-source=kubernetes, external-k8s-ns=default");
        // Nomad (hashicorp/nomad command/agent/consul/service_client.go) on a failed agent.
        let nomad = json!([{"Node": "n1", "Address": "10.0.0.1",
            "Services": [{"ID": "_nomad-task-1", "Service": "api", "Port": 80, "Meta": {"external-source": "nomad"}}],
            "Checks": [check("c", "_nomad-task-1", "critical"), check("serfHealth", "", "critical")]}]);
        kept(one(&catalog(nomad, members("n1", FAILED))), "Nomad");
        // consul-lambda-registrator (hashicorp/terraform-aws-consul-lambda
        // consul-lambda/consul-lambda-registrator/upsert_event.go): external node, service tag.
        let lambda = json!([{"Node": "lambdas", "Address": "127.0.0.1", "Meta": {"external-node": "true", "external-probe": "true"},
            "Services": [{"ID": "payments", "Service": "payments", "Tags": ["managed-by-lambda-registrator"]}],
            "Checks": [check("c", "payments", "critical")]}]);
        kept(
            one(&catalog(lambda, Some(json!([])))),
            "consul-lambda-registrator (service tag managed-by-lambda-registrator)",
        );
    }

    #[test]
    fn peered_instances_are_never_pruned_and_keyed_apart() {
        // hashicorp/consul agent/structs/structs.go NodeInfo/NodeService: PeerName omitempty.
        let nodes = json!([
            {"Node": "n1", "Address": "10.0.0.1", "PeerName": "east",
             "Services": [{"ID": "web-1", "Service": "web", "Port": 80, "PeerName": "east"}],
             "Checks": [{"CheckID": "c1", "ServiceID": "web-1", "Status": "critical", "PeerName": "east"}]},
            {"Node": "n1", "Address": "10.0.0.2",
             "Services": [svc("web-2")], "Checks": [check("serfHealth", "", "passing")]}
        ]);
        let cat = catalog(nodes, members("n1", ALIVE));
        assert_eq!(cat.node_count(), 2, "a peer's n1 is not the local n1");
        kept(verdict(&cat, &cat.instance(0), None), "imported from cluster peer \"east\"");
        assert_eq!(cat.node(cat.instance(0).node).key(), "east//n1");
    }

    #[test]
    fn entries_without_a_service_id_or_node_name_are_never_pruned() {
        let nodes = json!([{"Node": "x", "Address": "10.0.0.1",
            "Services": [{"ID": "", "Service": "web", "Port": 80}],
            "Checks": [check("c1", "", "critical")]}]);
        kept(one(&catalog(nodes, Some(json!([])))), "no ServiceID");
        let nodes = json!([{"Node": "", "Address": "10.0.0.1",
            "Services": [svc("web-1")], "Checks": [check("c1", "web-1", "critical")]}]);
        kept(one(&catalog(nodes, Some(json!([])))), "empty node name");
    }

    #[test]
    fn an_incomplete_scan_prunes_nothing() {
        let cat = catalog(json!([node("x", None, vec![check("c1", "web-1", "critical")])]), Some(json!([])));
        kept(verdict(&cat, &cat.instance(0), Some("see SCN-011")), "incomplete");
    }

    #[test]
    fn another_partition_is_not_vouched_for_by_the_member_list() {
        let nodes = json!([{"Node": "x", "Address": "10.0.0.1", "Partition": "team-a",
            "Services": [{"ID": "web-1", "Service": "web", "Port": 80, "Namespace": "ns1"}],
            "Checks": [check("c1", "web-1", "critical")]}]);
        let cat = catalog(nodes, Some(json!([])));
        kept(one(&cat), "admin partition \"team-a\"");
        // The deregistration body names what the entry had (api/catalog.go CatalogDeregistration).
        let body = deregister_body(Some("dc2"), "x", "web-1", "ns1", "team-a");
        assert_eq!(
            body,
            json!({"Node": "x", "ServiceID": "web-1", "Datacenter": "dc2", "Namespace": "ns1", "Partition": "team-a"})
        );
        assert_eq!(deregister_body(None, "x", "web-1", "", ""), json!({"Node": "x", "ServiceID": "web-1"}));
    }

    #[test]
    fn any_change_of_the_observed_state_is_seen() {
        let before = catalog(
            json!([node("n1", Some("critical"), vec![check("c1", "web-1", "critical")])]),
            members("n1", FAILED),
        );
        let seen = Seen::of(&before, &before.instance(0));
        // The node flapped: serfHealth critical again, but at another ModifyIndex.
        let mut flapped = node("n1", None, vec![check("c1", "web-1", "critical")]);
        flapped["Checks"]
            .as_array_mut()
            .unwrap()
            .push(json!({"CheckID": "serfHealth", "ServiceID": "", "Status": "critical", "ModifyIndex": 41}));
        let after = catalog(json!([flapped]), members("n1", FAILED));
        let now = Seen::of(&after, &after.instance(0));
        assert_ne!(seen, now);
        assert!(seen.changes(&now).contains("serfHealth (critical at ModifyIndex 40 -> critical at ModifyIndex 41)"));
        let back = catalog(
            json!([node("n1", Some("critical"), vec![check("c1", "web-1", "critical")])]),
            members("n1", ALIVE),
        );
        assert!(seen.changes(&Seen::of(&back, &back.instance(0))).contains("membership (failed -> alive)"));
        assert_eq!(seen, Seen::of(&before, &before.instance(0)));
    }

    #[test]
    fn the_plan_keeps_what_looked_stale_and_says_why() {
        let cat = catalog(
            json!([
                node("gone", Some("critical"), vec![check("c1", "web-1", "passing")]),
                node("x", None, vec![check("c2", "web-1", "critical")])
            ]),
            members("gone", FAILED),
        );
        let judged = crate::scan::judge::judge(&cat, &Default::default());
        let p = plan(
            &cat,
            &judged,
            &PlanOptions {
                dc: None,
                same_dc: true,
                incomplete: None,
                grace: Duration::from_secs(600),
                grace_text: "10m".into(),
                observed: tokio::time::Instant::now(),
                deadline: tokio::time::Instant::now() + Duration::from_secs(60),
                cli: &Default::default(),
            },
        );
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].node, "x");
        assert_eq!(p.kept.len(), 1, "{:?}", p.kept);
        assert_eq!(p.kept[0].node, "gone");
        assert!(p.kept[0].reason.contains("passing"));
    }
}
