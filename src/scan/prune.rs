//! `scan --prune`: the scan's one write. The plan holds only instances that are safe to remove
//! from the catalog: those on nodes whose agent failed or left, and critical ones on
//! catalog-only nodes. Instances on live agents are never deregistered through the catalog (the
//! agent's anti-entropy would put them back); their agent-side command is printed instead.
//! Deregistrations run one at a time; a Ctrl-C stops before the next one and the report says
//! exactly which were removed, which failed and which were not attempted.

use std::future::Future;

use serde::Serialize;

use crate::codes;
use crate::consul::ConsulClient;
use crate::report::CheckResult;
use crate::scan::judge::{deregister_body, Finding, Judged, NodeState};
use crate::scan::model::{Catalog, Health};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Dry run: what `--prune` would do.
    Planned,
    Removed,
    Failed,
    /// Interrupted while the request was in flight: it may or may not have been applied.
    Unknown,
    NotAttempted,
}

#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub method: &'static str,
    pub path: &'static str,
    pub body: serde_json::Value,
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
    /// `dry-run` or `prune`.
    pub mode: &'static str,
    pub planned: usize,
    pub removed: usize,
    pub failed: usize,
    pub unknown: usize,
    pub not_attempted: usize,
    pub actions: Vec<Action>,
    pub agent_side: Vec<AgentSide>,
}

impl PruneReport {
    pub fn count(&mut self) {
        let n = |o: Outcome| self.actions.iter().filter(|a| a.outcome == o).count();
        self.removed = n(Outcome::Removed);
        self.failed = n(Outcome::Failed);
        self.unknown = n(Outcome::Unknown);
        self.not_attempted = n(Outcome::NotAttempted);
        self.planned = self.actions.len();
    }
}

/// What `--prune` would deregister, and the agent-side commands for the rest.
pub fn plan(cat: &Catalog, judged: &Judged, dc: Option<&str>, cli: &crate::consul_cli::ConsulCli) -> PruneReport {
    let mut actions = Vec::new();
    for i in &cat.instances {
        let health = crate::scan::judge::instance_health(cat, i);
        let node = &cat.nodes[i.node];
        let reason = match &judged.states[i.node] {
            NodeState::Gone(why) if health != Health::Passing => format!("node {}: {why}", node.name),
            NodeState::CatalogOnly if health == Health::Critical => {
                format!("critical on catalog-only node {} (no agent will ever remove it)", node.name)
            }
            _ => continue,
        };
        actions.push(Action {
            service: i.service.clone(),
            node: node.name.clone(),
            service_id: i.id.clone(),
            address: i.endpoint(),
            reason,
            request: Request {
                method: "PUT",
                path: "/v1/catalog/deregister",
                body: deregister_body(dc, &node.name, &i.id),
            },
            outcome: Outcome::Planned,
            detail: None,
        });
    }
    let mut agent_side = Vec::new();
    for f in &judged.findings {
        let (Some(node), Some(id), Some(code)) = (&f.node, &f.service_id, f.result.code) else { continue };
        if !matches!(code, "SCN-004" | "SCN-005") {
            continue;
        }
        let Some(n) = cat.nodes.iter().position(|x| &x.name == node) else { continue };
        if judged.states[n] != NodeState::Alive
            || agent_side.iter().any(|a: &AgentSide| &a.service_id == id && &a.node == node)
        {
            continue;
        }
        let on_node = cli.on_host(&cat.nodes[n].address);
        agent_side.push(AgentSide {
            service: f.service.clone(),
            node: node.clone(),
            service_id: id.clone(),
            code,
            command: on_node.command("services deregister", &format!("-id={id}")),
        });
    }
    let mut r = PruneReport {
        mode: "dry-run",
        planned: 0,
        removed: 0,
        failed: 0,
        unknown: 0,
        not_attempted: 0,
        actions,
        agent_side,
    };
    r.count();
    r
}

/// Runs the plan, one deregistration at a time, until done, interrupted or out of time.
/// Returns the findings for failed deregistrations and whether it was interrupted.
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
        if tokio::time::Instant::now() >= deadline {
            stopped = Some("the run deadline was reached before this one");
            a.outcome = Outcome::NotAttempted;
            a.detail = stopped.map(str::to_string);
            continue;
        }
        let result = tokio::select! {
            r = deregister(client, &a.request.body, &a.service) => Some(r),
            _ = &mut interrupt => None,
            _ = tokio::time::sleep_until(deadline) => {
                a.outcome = Outcome::Unknown;
                a.detail = Some("the run deadline was reached while the request was in flight; re-run the scan to see whether it is gone".into());
                stopped = Some("the run deadline was reached before this one");
                continue;
            }
        };
        let Some(result) = result else {
            interrupted = true;
            a.outcome = Outcome::Unknown;
            a.detail =
                Some("interrupted while the request was in flight; re-run the scan to see whether it is gone".into());
            stopped = Some("interrupted (Ctrl-C) before this one");
            continue;
        };
        match result {
            Ok(()) => a.outcome = Outcome::Removed,
            Err((outcome, message, fix)) => {
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
                        format!("PUT /v1/catalog/deregister of {} on node {}: {message}", a.service_id, a.node),
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

type Refusal = (Outcome, String, String);

async fn deregister(client: &ConsulClient, body: &serde_json::Value, service: &str) -> Result<(), Refusal> {
    let node = body["Node"].as_str().unwrap_or("").to_string();
    let mut attempt = 0;
    loop {
        let reply = match client.put_json("/v1/catalog/deregister", Some(body)).await {
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
        return match reply.status {
            200 if reply.text() == "true" => Ok(()),
            429 if attempt + 1 < 6 => {
                tokio::time::sleep(crate::scan::gather::backoff(&reply, attempt)).await;
                attempt += 1;
                continue;
            }
            403 => Err((
                Outcome::Failed,
                format!("403 \"{}\": the token may not deregister it", reply.snippet()),
                format!(
                    "give the scanning token write access to the instance: a policy with service \"{service}\" {{ policy = \"write\" }} (or node \"{node}\" {{ policy = \"write\" }}), for example consul acl policy create -name scan-prune -rules 'node \"{node}\" {{ policy = \"write\" }}' and attach it to the token"
                ),
            )),
            s => Err((
                Outcome::Failed,
                format!("answered {s} \"{}\"", reply.snippet()),
                "read the agent log (consul monitor -log-level=debug) and retry; consul-doctor check shows whether the agent and its leader are healthy".into(),
            )),
        };
    }
}
