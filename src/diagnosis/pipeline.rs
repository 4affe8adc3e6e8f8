//! The stage table and its runner. `check` runs the whole table; the other commands run the
//! connection rows through [`crate::diagnosis::connect`].
//!
//! Stages run in dependency order: each starts the moment the stages it requires are done (no
//! rounds), beside whatever else runs. A stage may ask its reads ahead of itself ([`Early`]:
//! once the stages those reads need have passed, on the client's second connection while the
//! api stage reads `/v1/agent/self`, which itself goes out beside the tcp stage's probe when
//! nothing can leave the host); it still judges them when it runs, in table order, and a
//! skipped stage drops them unread (stopped, their connections closed, before the run ends). A stage that needs another's facts only in some cases waits
//! for it inside ([`Ctx::settled`]) rather than in the table. When a prerequisite fails, every check of the dependent stage is reported `skip` with
//! `blocked_by` naming the root-cause code, so one problem is reported once. Every stage runs
//! under the run's deadline; a stage still running then is reported with `RUN-001`.
//!
//! **One cause, one finding, at the cause's real severity.** A check may also skip itself
//! because an earlier finding already names its cause (SYN-004 "the checks fail" before "no
//! instance passes"); it then keeps its own verdict ([`CheckResult::blocked_with`]). When the
//! run is over, [`apply_severity_rule`] compares each kept verdict with its cause as reported:
//! a worse verdict raises the cause's status to its own (`raised_by` names the dependent's code),
//! so a warning can never hide a failure; a cause that is not reported as a finding (accepted
//! with `--ignore`, or absent) lets the dependent's verdict stand in its place. A check whose
//! answer the cause fully explains (DNS answering nothing because the default token may not
//! read the service) keeps no verdict: it is the same finding, not a worse one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::codes;
use crate::connection::Connection;
use crate::consul::SharedClient;
use crate::diagnosis::stages;
use crate::inputs::Inputs;
use crate::report::{AgentSummary, CheckResult, Report, Status};
use crate::transport::Sniff;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageId {
    Config,
    Dns,
    Tcp,
    Tls,
    Api,
    Leader,
    Acl,
    Version,
    Health,
    Duplicates,
    Sync,
    Discovery,
    Mesh,
    Probe,
}

pub type StageFuture<'a> = Pin<Box<dyn Future<Output = Vec<CheckResult>> + 'a>>;

/// One row of the pipeline.
pub struct Stage {
    pub id: StageId,
    pub name: &'static str,
    /// Stages that must pass (or warn) before this one runs.
    pub requires: &'static [StageId],
    /// Stages that must have finished, passed or not, before this one runs: it reads what they
    /// learned but does not depend on their verdict (sync reads the health stage's probes).
    pub after: &'static [StageId],
    /// Check ids this stage reports, used to list them when the stage is skipped.
    pub checks: &'static [&'static str],
    /// Checks whose failure does not block dependent stages (they gate per service instead).
    pub soft: &'static [&'static str],
    pub run: for<'a> fn(&'a Ctx<'a>) -> StageFuture<'a>,
    /// Questions the stage may ask before it runs, once `after` stages passed: started in the
    /// background, within the client's two connections (the stages in between go first), read
    /// by the stage when it runs and judged in stage order, dropped unread when it is skipped.
    pub early: &'static [Early],
}

/// A stage's questions asked ahead of it (see [`Stage::early`]).
pub struct Early {
    pub after: &'static [StageId],
    pub start: fn(&Ctx<'_>),
}

/// The whole program, in report order. Stages run as soon as what they require is done (the
/// health probes start right after config, beside dns), but results are listed in this order,
/// so a broken connection is named as the root cause before a failing health endpoint.
pub const STAGES: &[Stage] = &[
    Stage {
        id: StageId::Config,
        name: "config",
        requires: &[],
        after: &[],
        checks: stages::config::CHECKS,
        soft: stages::config::SOFT,
        run: stages::config::run,
        early: &[],
    },
    Stage {
        id: StageId::Dns,
        name: "dns",
        requires: &[StageId::Config],
        after: &[],
        checks: stages::dns::CHECKS,
        soft: &[],
        run: stages::dns::run,
        early: &[],
    },
    Stage {
        id: StageId::Tcp,
        name: "tcp",
        requires: &[StageId::Dns],
        after: &[],
        checks: stages::tcp::CHECKS,
        soft: &[],
        run: stages::tcp::run,
        early: &[],
    },
    Stage {
        id: StageId::Tls,
        name: "tls",
        requires: &[StageId::Tcp],
        after: &[],
        checks: stages::tls::CHECKS,
        soft: &[],
        run: stages::tls::run,
        early: &[],
    },
    Stage {
        id: StageId::Api,
        name: "api",
        requires: &[StageId::Tls],
        after: &[],
        checks: stages::api::CHECKS,
        soft: &[],
        run: stages::api::run,
        // Its one read goes out beside the tcp stage's probe (loopback plain HTTP only).
        early: &[Early { after: &[StageId::Dns], start: stages::api::ask_early }],
    },
    Stage {
        id: StageId::Leader,
        name: "leader",
        requires: &[StageId::Api],
        after: &[],
        checks: stages::leader::CHECKS,
        soft: &[],
        run: stages::leader::run,
        // Reads that need only a working HTTP API are asked while the api stage reads
        // /v1/agent/self (the client's second connection is idle then); judged in order.
        early: &[Early { after: &[StageId::Tls], start: stages::leader::ask_early }],
    },
    Stage {
        id: StageId::Acl,
        name: "acl",
        requires: &[StageId::Leader],
        after: &[],
        checks: stages::acl::CHECKS,
        soft: &[],
        run: stages::acl::run,
        early: &[Early { after: &[StageId::Tls], start: stages::acl::ask_early }],
    },
    Stage {
        id: StageId::Duplicates,
        name: "duplicates",
        requires: &[StageId::Acl],
        after: &[],
        checks: stages::duplicates::CHECKS,
        soft: &[],
        run: stages::duplicates::run,
        early: &[Early { after: &[StageId::Tls], start: stages::duplicates::ask_early }],
    },
    Stage {
        id: StageId::Sync,
        name: "sync",
        requires: &[StageId::Duplicates],
        // Reads the health stage's probes of the same checks when it judges a registered
        // service's checks, and waits for them only then (`Ctx::settled`).
        after: &[],
        checks: stages::sync::CHECKS,
        soft: &[],
        run: stages::sync::run,
        early: &[
            Early { after: &[StageId::Tls], start: stages::sync::ask_early },
            // Its own node, once the api stage named it: beside the duplicates stage's read.
            Early { after: &[StageId::Api], start: stages::sync::ask_early_node },
        ],
    },
    Stage {
        id: StageId::Version,
        name: "version",
        requires: &[StageId::Api],
        // Nothing waits for it: its read of the member list takes the client's second
        // connection beside the sync stage's one read, not a turn before the stages that the
        // rest of the run waits for.
        after: &[StageId::Duplicates],
        checks: stages::version::CHECKS,
        soft: &[],
        run: stages::version::run,
        early: &[],
    },
    Stage {
        id: StageId::Discovery,
        name: "discovery",
        requires: &[StageId::Sync],
        after: &[],
        checks: stages::discovery::CHECKS,
        // What consumers see never blocks the probe: it asks another question.
        soft: stages::discovery::CHECKS,
        run: stages::discovery::run,
        // Consul DNS is another listener: its SRV and A answers are asked beside the HTTP reads.
        early: &[Early { after: &[StageId::Api], start: stages::discovery::ask_early }],
    },
    Stage {
        id: StageId::Mesh,
        name: "mesh",
        // After sync: the sidecar is judged once its service is known to be in the catalog.
        requires: &[StageId::Sync],
        after: &[],
        checks: stages::mesh::CHECKS,
        soft: &[],
        run: stages::mesh::run,
        early: &[],
    },
    Stage {
        id: StageId::Probe,
        name: "probe",
        requires: &[StageId::Discovery],
        after: &[],
        checks: stages::probe::CHECKS,
        soft: &[],
        run: stages::probe::run,
        early: &[],
    },
    Stage {
        id: StageId::Health,
        name: "health",
        requires: &[StageId::Config],
        after: &[],
        checks: stages::health::CHECKS,
        soft: &[],
        run: stages::health::run,
        early: &[],
    },
];

/// What stages learn and later stages use.
#[derive(Default)]
pub struct Facts {
    pub conn: Option<Arc<Connection>>,
    pub addrs: Vec<SocketAddr>,
    pub reachable: Vec<SocketAddr>,
    /// This host's address on the connection to the agent (what the agent sees as the client).
    pub local_ip: Option<std::net::IpAddr>,
    pub sniff: Option<Sniff>,
    pub client: Option<SharedClient>,
    pub agent: Option<stages::api::AgentSelf>,
    pub summary: AgentSummary,
    pub default_acl_policy: Option<String>,
    /// Services to register, with the code that blocks each one's service checks (if any).
    pub services: Vec<stages::Svc>,
    /// `github.com/hashicorp/consul/api` version from --go-mod.
    pub go_api: Option<String>,
    /// What the caller's token may read (set by the acl stage when a service is given).
    pub visibility: Option<stages::acl::Visibility>,
    /// The consumers' view of each service's health list, read once by the duplicates stage
    /// and judged again by the discovery stage.
    pub health_views: HashMap<String, Vec<stages::discovery::Instance>>,
    /// Instances of each service that an owner other than an agent registered (consul-k8s,
    /// a cluster peer), read with the health list by the duplicates stage.
    pub owned: HashMap<String, Vec<crate::agentless::Registration>>,
    /// `/v1/agent/services` as read by the duplicates stage.
    pub agent_services: Option<serde_json::Map<String, serde_json::Value>>,
    /// The doctor's own probes of the services' checks: (service id, check label, failing code).
    pub probes: Vec<(String, String, Option<&'static str>)>,
    /// Whether the agent's default token may read each service name (acl stage; DNS uses it).
    pub default_read: Vec<(String, bool)>,
    /// The tcp stage's probe answer to `GET /v1/status/leader` (plain HTTP, no path prefix).
    pub sniffed_leader: Option<crate::consul::Reply>,
    /// The API client built ahead of the api stage by the first early read (`stages::early_get`).
    pub early_client: Option<SharedClient>,
    /// Reads started ahead of the stages that judge them (path, answer to come).
    pub early_gets: Vec<(String, tokio::task::JoinHandle<Result<crate::consul::Reply, crate::consul::HttpFailure>>)>,
    /// The discovery stage's DNS answers, asked as soon as the agent's DNS interface was known.
    pub dns_early: Option<tokio::task::JoinHandle<stages::discovery::EarlyAnswers>>,
    /// Every finished stage's results (check id, code, blocked_by, message), for later stages
    /// that must not report a cause an earlier stage already named.
    pub reported: Vec<(&'static str, Option<&'static str>, Option<&'static str>, String)>,
}

/// Shared state of one run.
pub struct Ctx<'a> {
    pub inputs: &'a Inputs,
    pub facts: Mutex<Facts>,
    /// The stages this run reports (`check`: all; the other commands: the connection stages).
    pub wanted: &'a [StageId],
    /// The stages settled so far (a bit per [`StageId`]), for a stage that needs what another
    /// learned only in some cases ([`Ctx::settled`]).
    settled: tokio::sync::watch::Sender<u64>,
}

impl Ctx<'_> {
    pub fn facts(&self) -> std::sync::MutexGuard<'_, Facts> {
        self.facts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn conn(&self) -> Option<Arc<Connection>> {
        self.facts().conn.clone()
    }

    pub fn client(&self) -> Option<SharedClient> {
        self.facts().client.clone()
    }

    /// Waits until stage `id` has finished (or was skipped); at once when this run leaves it out.
    pub async fn settled(&self, id: StageId) {
        if !self.wanted.contains(&id) {
            return;
        }
        let bit = 1u64 << (id as u32);
        let mut rx = self.settled.subscribe();
        let _ = rx.wait_for(|v| v & bit != 0).await;
    }

    fn mark_settled(&self, id: StageId) {
        self.settled.send_modify(|v| *v |= 1u64 << (id as u32));
    }

    pub fn datacenter(&self) -> Option<&str> {
        self.inputs.consul.datacenter.as_ref().map(|d| d.value.as_str())
    }
}

/// Stage names of the commands other than `check` (their codes' `stage`): `wait`.
pub const COMMAND_STAGES: &[&str] = &["wait", "scan"];

/// A started stage: its results (or the deadline passing) and how long it ran.
type RunningStage<'a> =
    Pin<Box<dyn Future<Output = (Result<Vec<CheckResult>, tokio::time::error::Elapsed>, std::time::Duration)> + 'a>>;

/// Polls the running stages until one finishes; removes it and returns its table index.
async fn next_finished<'a>(
    running: &mut Vec<(usize, RunningStage<'a>)>,
) -> (usize, (Result<Vec<CheckResult>, tokio::time::error::Elapsed>, std::time::Duration)) {
    std::future::poll_fn(|cx| {
        for n in 0..running.len() {
            if let std::task::Poll::Ready(out) = running[n].1.as_mut().poll(cx) {
                let (i, _) = running.swap_remove(n);
                return std::task::Poll::Ready((i, out));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// A run's report and what its stages learned (the API client among it).
pub struct Outcome {
    pub report: Report,
    pub facts: Facts,
}

/// Runs every stage and builds the report.
pub async fn run(inputs: &Inputs) -> Report {
    let all: Vec<StageId> = STAGES.iter().map(|s| s.id).collect();
    run_stages(inputs, &all).await.report
}

/// Runs only the `wanted` stages (in table order, with the same skip propagation); the others
/// are left out of the report entirely. [`connect`] uses it with [`CONNECTION`] to give the
/// other commands a diagnosed client before they ask their own questions.
pub async fn run_stages(inputs: &Inputs, wanted: &[StageId]) -> Outcome {
    run_stages_until(inputs, wanted, tokio::time::Instant::now() + inputs.deadline).await
}

/// [`run_stages`] that must end by `deadline` (what is left of the invocation's deadline, for
/// the attempts of `--wait`).
pub async fn run_stages_until(inputs: &Inputs, wanted: &[StageId], deadline: tokio::time::Instant) -> Outcome {
    run_table(STAGES, inputs, wanted, deadline).await
}

/// Whether `--skip` leaves stage `id` out: named, or one of the stages it requires is.
fn left_out(table: &[Stage], id: StageId, skip: &[&str]) -> bool {
    table
        .iter()
        .find(|s| s.id == id)
        .is_some_and(|s| skip.contains(&s.name) || s.requires.iter().any(|r| left_out(table, *r, skip)))
}

/// The runner over any stage table ([`STAGES`] outside the runner's own tests).
async fn run_table(
    table: &'static [Stage],
    inputs: &Inputs,
    wanted: &[StageId],
    deadline: tokio::time::Instant,
) -> Outcome {
    let started = Instant::now();
    let ctx = Ctx { inputs, facts: Mutex::new(Facts::default()), wanted, settled: tokio::sync::watch::Sender::new(0) };
    let mut early_started: Vec<Vec<bool>> = table.iter().map(|s| vec![false; s.early.len()]).collect();
    let mut outcome: HashMap<StageId, Option<&'static str>> = HashMap::new();
    let mut results: Vec<Option<Vec<CheckResult>>> = table.iter().map(|_| None).collect();
    let mut skipped_by_flag: Vec<StageId> = Vec::new();
    let wanted_count = table.iter().filter(|s| wanted.contains(&s.id)).count();

    // Each stage starts the moment what it needs is done, not when a whole round is: a slow
    // health endpoint never holds up the connection stages, nor the version stage the acl stage.
    let mut launched: Vec<bool> = table.iter().map(|_| false).collect();
    let mut running: Vec<(usize, RunningStage<'_>)> = Vec::new();
    let settled =
        |outcome: &HashMap<StageId, Option<&'static str>>, r: &StageId| outcome.contains_key(r) || !wanted.contains(r);
    while outcome.len() < wanted_count {
        // Questions asked ahead of a stage, once what they need passed.
        for (i, s) in table.iter().enumerate() {
            for (n, early) in s.early.iter().enumerate() {
                let passed = early.after.iter().all(|r| matches!(outcome.get(r), Some(None)));
                // Not for a stage left out with --skip: nobody would read the answer.
                let skipped = left_out(table, s.id, &inputs.skip);
                if wanted.contains(&s.id) && !skipped && !early_started[i][n] && !outcome.contains_key(&s.id) && passed
                {
                    early_started[i][n] = true;
                    (early.start)(&ctx);
                }
            }
        }
        // Start (or skip) every stage whose prerequisites are settled; a skip settles a stage
        // at once, so look again until nothing more becomes ready.
        loop {
            let ready: Vec<usize> = table
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    wanted.contains(&s.id)
                        && !launched[*i]
                        && s.requires.iter().chain(s.after).all(|r| settled(&outcome, r))
                })
                .map(|(i, _)| i)
                .collect();
            if ready.is_empty() {
                break;
            }
            for i in ready {
                launched[i] = true;
                let stage = &table[i];
                let blocker = stage.requires.iter().find_map(|r| outcome.get(r).copied().flatten());
                let asked_to_skip =
                    inputs.skip.contains(&stage.name) || stage.requires.iter().any(|r| skipped_by_flag.contains(r));
                if blocker.is_none() && asked_to_skip {
                    let mut skipped: Vec<CheckResult> = stage
                        .checks
                        .iter()
                        .map(|id| {
                            CheckResult::skipped(
                                id,
                                format!("skipped: the {} stage was left out with --skip", stage.name),
                            )
                        })
                        .collect();
                    skipped.iter_mut().for_each(|c| c.stage = stage.name);
                    results[i] = Some(skipped);
                    outcome.insert(stage.id, None);
                    ctx.mark_settled(stage.id);
                    skipped_by_flag.push(stage.id);
                    continue;
                }
                match blocker {
                    Some(code) => {
                        let mut skipped: Vec<CheckResult> =
                            stage.checks.iter().map(|id| CheckResult::blocked(id, code)).collect();
                        skipped.iter_mut().for_each(|c| c.stage = stage.name);
                        results[i] = Some(skipped);
                        outcome.insert(stage.id, Some(code));
                        ctx.mark_settled(stage.id);
                    }
                    None => {
                        let fut = (stage.run)(&ctx);
                        running.push((
                            i,
                            Box::pin(async move {
                                crate::log::debug(format!("stage {}: started", stage.name));
                                let t0 = Instant::now();
                                let res = tokio::time::timeout_at(deadline, fut).await;
                                (res, t0.elapsed())
                            }),
                        ));
                    }
                }
            }
        }
        if running.is_empty() {
            break; // a cycle in the table; the table test rules this out
        }
        let (i, (res, took)) = next_finished(&mut running).await;
        let stage = &table[i];
        let mut checks = match res {
            Ok(checks) => checks,
            Err(_) => stage
                .checks
                .iter()
                .enumerate()
                .map(|(n, id)| match n {
                    0 => CheckResult::finding(
                        codes::RUN_DEADLINE,
                        id,
                        format!(
                            "the {} stage did not finish before the {} run deadline",
                            stage.name,
                            fmt_dur(inputs.deadline)
                        ),
                        "re-run with a larger --deadline, or a smaller --timeout to find the slow step",
                    ),
                    _ => CheckResult::blocked(id, codes::RUN_DEADLINE.code),
                })
                .collect(),
        };
        for c in &mut checks {
            c.stage = stage.name;
            if c.code.is_some_and(|code| inputs.ignore.contains(&code)) {
                c.ignore();
            }
            if let Some(v) = c.verdict.as_deref_mut() {
                v.stage = stage.name;
                if v.code.is_some_and(|code| inputs.ignore.contains(&code)) {
                    v.ignore();
                }
            }
            // Every finding says what it was judged against.
            if c.code.is_some() && !c.evidence.contains_key("target") {
                let target = match stage.id {
                    StageId::Config | StageId::Health => None,
                    _ => ctx.conn().map(|conn| conn.display.clone()),
                };
                if let Some(t) = target {
                    c.evidence.insert("target".into(), t);
                }
            }
            if c.elapsed_ms == 0 && c.status != Status::Skip {
                c.elapsed_ms = took.as_millis() as u64;
            }
        }
        let failed =
            checks.iter().find(|c| c.status == Status::Fail && !stage.soft.contains(&c.id)).and_then(|c| c.code);
        crate::log::debug(format!(
            "stage {}: finished in {} ms: {}",
            stage.name,
            took.as_millis(),
            checks
                .iter()
                .map(|c| format!("{} {}", c.id, c.code.unwrap_or(c.status.as_str())))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        outcome.insert(stage.id, failed);
        ctx.mark_settled(stage.id);
        ctx.facts().reported.extend(checks.iter().map(|c| (c.id, c.code, c.blocked_by, c.message.clone())));
        results[i] = Some(checks);
    }
    // Dropping the runner's futures before the facts are taken apart.
    drop(running);
    // Reads asked ahead of stages that did not run (a prerequisite failed) are stopped and
    // their connections closed before the run ends, not left open until their timeout beside
    // the next attempt's (`wait`, `--wait`).
    let leftover: Vec<_> = {
        let mut f = ctx.facts();
        let dns = f.dns_early.take().map(|t| t.abort_handle());
        f.early_gets.drain(..).map(|(_, t)| t.abort_handle()).chain(dns).collect()
    };
    if !leftover.is_empty() {
        leftover.iter().for_each(tokio::task::AbortHandle::abort);
        // Two turns of the runtime: the aborted reads drop their requests, then the client's
        // connection tasks see the requests gone and close.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
    }

    let mut checks: Vec<CheckResult> = results.into_iter().flatten().flatten().collect();
    // Agent advice does not apply to a service whose instances an owner other than an agent
    // registers (consul-k8s, a peer): the sync stage judged what the catalog says instead.
    {
        let f = ctx.facts();
        for svc in &f.services {
            let owner = f.owned.get(svc.def.display_name()).and_then(|o| o.first()).and_then(|r| r.owner.clone());
            let on_agent = svc
                .def
                .effective_id()
                .is_some_and(|id| f.agent_services.as_ref().is_some_and(|local| local.contains_key(id)));
            if let (Some(owner), false) = (owner, on_agent) {
                crate::agentless::neutralize(&mut checks, &svc.def.label, &owner);
            }
        }
    }
    // A probe the deadline cut off is deregistered now, and reported.
    checks.extend(stages::probe::cleanup_pending(inputs.timeout).await);
    apply_severity_rule(&mut checks);
    let summary = ctx.facts().summary.clone();
    let target = ctx.conn().map(|c| c.display.clone()).unwrap_or_else(|| inputs.consul.http_addr.value.clone());
    // Every `consul …` command in a fix reaches the agent diagnosed here.
    crate::consul_cli::ConsulCli::new(&inputs.consul).apply(&mut checks);
    let report = Report::new(target, inputs.entries(), summary, checks, started.elapsed().as_millis() as u64);
    let facts = ctx.facts.into_inner().unwrap_or_else(|p| p.into_inner());
    Outcome { report, facts }
}

/// The subject a message is about: its `label: ` prefix (a service), or nothing.
fn subject(message: &str) -> &str {
    message.split_once(": ").map(|(s, _)| s).unwrap_or("")
}

/// "One cause, one finding, at the cause's real severity" (see the module header). Applied
/// once, to the whole run's results in report order.
pub fn apply_severity_rule(checks: &mut [CheckResult]) {
    for i in 0..checks.len() {
        let Some(verdict) = checks[i].verdict.take() else { continue };
        let Some(by) = checks[i].blocked_by else { continue };
        let about = subject(&checks[i].message).to_string();
        let is_cause = |c: &CheckResult| c.code == Some(by) && c.status != Status::Skip && !c.ignored;
        let cause = checks
            .iter()
            .position(|c| is_cause(c) && subject(&c.message) == about)
            .or_else(|| checks.iter().position(is_cause));
        match cause {
            None => {
                // Nothing reports the cause as a finding: the check's own verdict stands.
                let stage = checks[i].stage;
                let mut own = *verdict;
                own.stage = stage;
                checks[i] = own;
            }
            Some(j) if verdict.status > checks[j].status => {
                let consequence = verdict.message.strip_prefix(&format!("{about}: ")).unwrap_or(&verdict.message);
                let cause = &mut checks[j];
                cause.status = verdict.status;
                cause.raised_by = verdict.code;
                cause.message = format!(
                    "{}; so {consequence} ({}: this makes it a {})",
                    cause.message,
                    verdict.code.unwrap_or("dependent check"),
                    verdict.status.as_str()
                );
            }
            Some(_) => {}
        }
    }
}

fn fmt_dur(d: std::time::Duration) -> String {
    crate::duration::format_go(d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::CONNECTION;

    #[test]
    fn stage_table_is_ordered_and_acyclic() {
        for (i, s) in STAGES.iter().enumerate() {
            for r in s.requires {
                let pos = STAGES.iter().position(|x| x.id == *r).expect("required stage exists");
                assert!(pos < i, "{} requires a later stage", s.name);
            }
            assert!(!s.checks.is_empty(), "{} declares no checks", s.name);
        }
        // `after` may name a stage reported later (health), but never closes a cycle.
        let mut settled: Vec<StageId> = Vec::new();
        while settled.len() < STAGES.len() {
            let before = settled.len();
            for s in STAGES {
                if !settled.contains(&s.id) && s.requires.iter().chain(s.after).all(|r| settled.contains(r)) {
                    settled.push(s.id);
                }
            }
            assert!(settled.len() > before, "a cycle through `after`");
        }
    }

    #[test]
    fn connection_stages_need_nothing_outside_them() {
        for id in CONNECTION {
            let stage = STAGES.iter().find(|s| s.id == *id).expect("in the table");
            assert!(stage.requires.iter().all(|r| CONNECTION.contains(r)), "{} needs a later stage", stage.name);
        }
    }

    #[test]
    fn a_stage_is_left_out_with_those_it_requires() {
        // Reads asked ahead are not asked for such a stage: nobody would read them.
        assert!(left_out(STAGES, StageId::Api, &["api"]));
        assert!(left_out(STAGES, StageId::Duplicates, &["acl"]));
        assert!(left_out(STAGES, StageId::Probe, &["tcp"]));
        assert!(!left_out(STAGES, StageId::Duplicates, &["health", "version"]));
        assert!(!left_out(STAGES, StageId::Sync, &[]));
    }

    fn test_inputs() -> Inputs {
        match crate::cli::parse(["consul-doctor", "check", "--http-addr", "127.0.0.1:1"]) {
            Ok(crate::cli::Parsed::Check(raw)) => Inputs::resolve(*raw).expect("valid inputs"),
            _ => panic!("check arguments parse"),
        }
    }

    /// Runs a synthetic table to the end on a single-threaded runtime, as the commands do; a
    /// runner that waits for the wrong stage never ends, which the 10 s guard turns into `None`.
    fn run_synthetic(table: &'static [Stage]) -> Option<Report> {
        let inputs = test_inputs();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ids: Vec<StageId> = table.iter().map(|s| s.id).collect();
        rt.block_on(async {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            tokio::time::timeout(std::time::Duration::from_secs(10), run_table(table, &inputs, &ids, deadline))
                .await
                .ok()
                .map(|o| o.report)
        })
    }

    /// Until `flag` is set, yields to the other stages of the run.
    async fn until(flag: &std::sync::atomic::AtomicBool) {
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    }

    static SLOW_RELEASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// `root` <- `slow` (waits for `second`) and `root` <- `first` <- `second`. A runner that
    /// starts stages in rounds waits for `slow` before `second`, which never comes.
    static SLOW_BESIDE_A_CHAIN: &[Stage] = &[
        Stage { run: |_| Box::pin(async { vec![CheckResult::pass("t.root", "ok")] }), ..stage_const::ROOT },
        Stage {
            run: |_| {
                Box::pin(async {
                    until(&SLOW_RELEASED).await;
                    vec![CheckResult::pass("t.slow", "released by t.second")]
                })
            },
            ..stage_const::SLOW
        },
        Stage { run: |_| Box::pin(async { vec![CheckResult::pass("t.first", "ok")] }), ..stage_const::FIRST },
        Stage {
            run: |_| {
                Box::pin(async {
                    SLOW_RELEASED.store(true, std::sync::atomic::Ordering::SeqCst);
                    vec![CheckResult::pass("t.second", "ok")]
                })
            },
            ..stage_const::SECOND
        },
    ];

    /// Rows of the synthetic tables, without their run functions.
    mod stage_const {
        use super::super::*;

        const fn row(
            id: StageId,
            name: &'static str,
            requires: &'static [StageId],
            check: &'static [&'static str],
        ) -> Stage {
            Stage {
                id,
                name,
                requires,
                after: &[],
                checks: check,
                soft: &[],
                run: |_| Box::pin(async { Vec::new() }),
                early: &[],
            }
        }
        pub const ROOT: Stage = row(StageId::Config, "root", &[], &["t.root"]);
        pub const SLOW: Stage = row(StageId::Health, "slow", &[StageId::Config], &["t.slow"]);
        pub const FIRST: Stage = row(StageId::Dns, "first", &[StageId::Config], &["t.first"]);
        pub const SECOND: Stage = row(StageId::Tcp, "second", &[StageId::Dns], &["t.second"]);
        pub const FAILING: Stage = row(StageId::Health, "failing", &[StageId::Config], &["t.failing"]);
        pub const READER: Stage =
            Stage { after: &[StageId::Health], ..row(StageId::Sync, "reader", &[StageId::Config], &["t.reader"]) };
        pub const DEPENDENT: Stage = row(StageId::Probe, "dependent", &[StageId::Health], &["t.dependent"]);
    }

    #[test]
    fn a_stage_starts_when_its_own_prerequisites_are_done_not_a_whole_round() {
        let report = run_synthetic(SLOW_BESIDE_A_CHAIN).expect("the run ends: t.second started while t.slow ran");
        let statuses: Vec<(&str, Status)> = report.checks.iter().map(|c| (c.id, c.status)).collect();
        assert_eq!(
            statuses,
            vec![
                ("t.root", Status::Pass),
                ("t.slow", Status::Pass),
                ("t.first", Status::Pass),
                ("t.second", Status::Pass)
            ],
            "results stay in table order"
        );
    }

    /// The `failing` stage of the tables below: lets the other stages be polled first (a runner
    /// that starts the reader too early runs it now), then sets `learned` and fails.
    async fn fail_after_others_ran(learned: &std::sync::atomic::AtomicBool) -> Vec<CheckResult> {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        learned.store(true, std::sync::atomic::Ordering::SeqCst);
        vec![CheckResult::finding(codes::HLT_STATUS, "t.failing", "web: 500", "fix the endpoint")]
    }

    /// The `reader` stage's verdict: passes only when `failing` had already set `learned`.
    fn read_what_failing_learned(learned: &std::sync::atomic::AtomicBool) -> Vec<CheckResult> {
        match learned.load(std::sync::atomic::Ordering::SeqCst) {
            true => vec![CheckResult::pass("t.reader", "saw what t.failing learned")],
            false => vec![CheckResult::finding(codes::RUN_DEADLINE, "t.reader", "judged too early", "")],
        }
    }

    static FAILED_FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// `reader` runs after `failing` (reads what it learned) without depending on its verdict;
    /// `dependent` requires it and is skipped, naming its code.
    static AFTER_A_FAILURE: &[Stage] = &[
        Stage { run: |_| Box::pin(async { vec![CheckResult::pass("t.root", "ok")] }), ..stage_const::ROOT },
        Stage { run: |_| Box::pin(fail_after_others_ran(&FAILED_FIRST)), ..stage_const::FAILING },
        Stage { run: |_| Box::pin(async { read_what_failing_learned(&FAILED_FIRST) }), ..stage_const::READER },
        Stage { run: |_| Box::pin(async { vec![CheckResult::pass("t.dependent", "ran")] }), ..stage_const::DEPENDENT },
    ];

    #[test]
    fn an_after_stage_waits_for_a_failed_stage_without_being_blocked_by_it() {
        let report = run_synthetic(AFTER_A_FAILURE).expect("the run ends");
        let by_id = |id: &str| report.checks.iter().find(|c| c.id == id).expect("reported");
        assert_eq!(by_id("t.failing").status, Status::Fail);
        assert_eq!(by_id("t.reader").status, Status::Pass, "{:?}", by_id("t.reader").message);
        assert_eq!(by_id("t.dependent").status, Status::Skip);
        assert_eq!(by_id("t.dependent").blocked_by, Some(codes::HLT_STATUS.code));
    }

    static PROBED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// `reader` does not wait for `failing` to start; it waits inside, with `Ctx::settled`,
    /// for what `failing` learned, and is not blocked by its failure.
    static SETTLED_INSIDE: &[Stage] = &[
        Stage { run: |_| Box::pin(async { vec![CheckResult::pass("t.root", "ok")] }), ..stage_const::ROOT },
        Stage { run: |_| Box::pin(fail_after_others_ran(&PROBED)), ..stage_const::FAILING },
        Stage {
            after: &[],
            run: |ctx| {
                Box::pin(async move {
                    ctx.settled(StageId::Health).await;
                    read_what_failing_learned(&PROBED)
                })
            },
            ..stage_const::READER
        },
    ];

    #[test]
    fn a_stage_can_wait_inside_for_another_to_settle() {
        let report = run_synthetic(SETTLED_INSIDE).expect("the run ends");
        let by_id = |id: &str| report.checks.iter().find(|c| c.id == id).expect("reported");
        assert_eq!(by_id("t.failing").status, Status::Fail);
        assert_eq!(by_id("t.reader").status, Status::Pass, "{:?}", by_id("t.reader").message);
    }

    fn finding(code: &'static codes::Code, id: &'static str, msg: &str) -> CheckResult {
        CheckResult::finding(code, id, msg, "fix")
    }

    /// A synthetic stage table's results: sync names the cause, discovery skips behind it.
    fn table(cause: CheckResult, dependent: CheckResult) -> Vec<CheckResult> {
        let by = cause.code.unwrap();
        let skip = CheckResult::blocked_with("discovery.health", by, "web: already reported".into(), dependent);
        vec![CheckResult::pass("acl.token", "ok"), cause, skip]
    }

    #[test]
    fn a_worse_dependent_raises_its_cause() {
        let mut checks = table(
            finding(codes::SYN_CHECK_FAILING, "sync.checks", "web: Consul reports service:web critical"),
            finding(codes::DSC_NONE_PASSING, "discovery.health", "web: 1 instance(s): 0 passing"),
        );
        apply_severity_rule(&mut checks);
        assert_eq!(checks[1].status, Status::Fail);
        assert_eq!(checks[1].code, Some("SYN-004"), "the cause keeps its code");
        assert_eq!(checks[1].raised_by, Some("DSC-002"));
        assert!(checks[1].message.contains("1 instance(s): 0 passing"), "{}", checks[1].message);
        assert_eq!(checks[2].status, Status::Skip, "one cause, one finding");
        let report = Report::new("t".into(), vec![], AgentSummary::default(), checks, 0);
        assert_eq!(report.status, Status::Fail);
        assert_eq!(report.root_cause.map(|r| r.code), Some("SYN-004"));
    }

    #[test]
    fn a_milder_or_equal_dependent_changes_nothing() {
        let mut checks = table(
            finding(codes::HLT_STATUS, "health.endpoint", "web: 500"),
            finding(codes::SYN_CHECK_FAILING, "sync.checks", "web: critical"),
        );
        apply_severity_rule(&mut checks);
        assert_eq!(checks[1].status, Status::Fail);
        assert_eq!(checks[1].raised_by, None);
        assert_eq!(checks[2].status, Status::Skip);
        assert!(checks[2].verdict.is_none(), "the verdict is consumed");
    }

    #[test]
    fn an_ignored_or_missing_cause_lets_the_dependent_stand() {
        let mut cause = finding(codes::SYN_CHECK_FAILING, "sync.checks", "web: critical");
        cause.ignore();
        let mut checks = table(cause, finding(codes::DSC_NONE_PASSING, "discovery.health", "web: nothing passes"));
        checks[2].stage = "discovery";
        apply_severity_rule(&mut checks);
        assert_eq!(checks[1].status, Status::Note, "an accepted cause stays accepted");
        assert_eq!(checks[2].status, Status::Fail);
        assert_eq!(checks[2].code, Some("DSC-002"));
        assert_eq!(checks[2].stage, "discovery");
    }

    #[test]
    fn the_cause_of_the_same_subject_is_raised() {
        let mut checks = vec![
            finding(codes::SYN_CHECK_FAILING, "sync.checks", "api: critical"),
            finding(codes::SYN_CHECK_FAILING, "sync.checks", "web: critical"),
            CheckResult::blocked_with(
                "discovery.health",
                "SYN-004",
                "web: already reported".into(),
                finding(codes::DSC_NONE_PASSING, "discovery.health", "web: nothing passes"),
            ),
        ];
        apply_severity_rule(&mut checks);
        assert_eq!(checks[0].status, Status::Warn);
        assert_eq!(checks[1].status, Status::Fail);
    }

    #[test]
    fn every_code_belongs_to_a_stage_in_the_table() {
        for c in codes::ALL {
            let command_stage = COMMAND_STAGES.contains(&c.stage);
            assert!(c.stage == "run" || command_stage || STAGES.iter().any(|s| s.name == c.stage), "{}", c.code);
        }
    }
}
