//! The stage table and its runner. `check` runs the whole table; the other commands run the
//! connection rows through [`crate::diagnosis::connect`].
//!
//! Stages run in dependency order; stages whose prerequisites are all done run concurrently.
//! When a prerequisite fails, every check of the dependent stage is reported `skip` with
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
use crate::join::join_all;
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
    /// Check ids this stage reports, used to list them when the stage is skipped.
    pub checks: &'static [&'static str],
    /// Checks whose failure does not block dependent stages (they gate per service instead).
    pub soft: &'static [&'static str],
    pub run: for<'a> fn(&'a Ctx<'a>) -> StageFuture<'a>,
}

/// The whole program, in report order. Stages run as soon as what they require is done (the
/// health probes start right after config, beside dns), but results are listed in this order,
/// so a broken connection is named as the root cause before a failing health endpoint.
pub const STAGES: &[Stage] = &[
    Stage {
        id: StageId::Config,
        name: "config",
        requires: &[],
        checks: stages::config::CHECKS,
        soft: stages::config::SOFT,
        run: stages::config::run,
    },
    Stage {
        id: StageId::Dns,
        name: "dns",
        requires: &[StageId::Config],
        checks: stages::dns::CHECKS,
        soft: &[],
        run: stages::dns::run,
    },
    Stage {
        id: StageId::Tcp,
        name: "tcp",
        requires: &[StageId::Dns],
        checks: stages::tcp::CHECKS,
        soft: &[],
        run: stages::tcp::run,
    },
    Stage {
        id: StageId::Tls,
        name: "tls",
        requires: &[StageId::Tcp],
        checks: stages::tls::CHECKS,
        soft: &[],
        run: stages::tls::run,
    },
    Stage {
        id: StageId::Api,
        name: "api",
        requires: &[StageId::Tls],
        checks: stages::api::CHECKS,
        soft: &[],
        run: stages::api::run,
    },
    Stage {
        id: StageId::Leader,
        name: "leader",
        requires: &[StageId::Api],
        checks: stages::leader::CHECKS,
        soft: &[],
        run: stages::leader::run,
    },
    Stage {
        id: StageId::Acl,
        name: "acl",
        requires: &[StageId::Leader],
        checks: stages::acl::CHECKS,
        soft: &[],
        run: stages::acl::run,
    },
    Stage {
        id: StageId::Duplicates,
        name: "duplicates",
        requires: &[StageId::Acl],
        checks: stages::duplicates::CHECKS,
        soft: &[],
        run: stages::duplicates::run,
    },
    Stage {
        id: StageId::Sync,
        name: "sync",
        requires: &[StageId::Duplicates],
        checks: stages::sync::CHECKS,
        soft: &[],
        run: stages::sync::run,
    },
    Stage {
        id: StageId::Version,
        name: "version",
        requires: &[StageId::Api],
        checks: stages::version::CHECKS,
        soft: &[],
        run: stages::version::run,
    },
    Stage {
        id: StageId::Discovery,
        name: "discovery",
        requires: &[StageId::Sync],
        checks: stages::discovery::CHECKS,
        // What consumers see never blocks the probe: it asks another question.
        soft: stages::discovery::CHECKS,
        run: stages::discovery::run,
    },
    Stage {
        id: StageId::Mesh,
        name: "mesh",
        // After sync: the sidecar is judged once its service is known to be in the catalog.
        requires: &[StageId::Sync],
        checks: stages::mesh::CHECKS,
        soft: &[],
        run: stages::mesh::run,
    },
    Stage {
        id: StageId::Probe,
        name: "probe",
        requires: &[StageId::Discovery],
        checks: stages::probe::CHECKS,
        soft: &[],
        run: stages::probe::run,
    },
    Stage {
        id: StageId::Health,
        name: "health",
        requires: &[StageId::Config],
        checks: stages::health::CHECKS,
        soft: &[],
        run: stages::health::run,
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
    /// Every finished stage's results (check id, code, blocked_by, message), for later stages
    /// that must not report a cause an earlier stage already named.
    pub reported: Vec<(&'static str, Option<&'static str>, Option<&'static str>, String)>,
}

/// Shared state of one run.
pub struct Ctx<'a> {
    pub inputs: &'a Inputs,
    pub facts: Mutex<Facts>,
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

    pub fn datacenter(&self) -> Option<&str> {
        self.inputs.consul.datacenter.as_ref().map(|d| d.value.as_str())
    }
}

/// Stage names of the commands other than `check` (their codes' `stage`): `wait`.
pub const COMMAND_STAGES: &[&str] = &["wait", "scan"];

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
    let started = Instant::now();
    let ctx = Ctx { inputs, facts: Mutex::new(Facts::default()) };
    let mut outcome: HashMap<StageId, Option<&'static str>> = HashMap::new();
    let mut results: Vec<Option<Vec<CheckResult>>> = STAGES.iter().map(|_| None).collect();
    let mut skipped_by_flag: Vec<StageId> = Vec::new();
    let wanted_count = STAGES.iter().filter(|s| wanted.contains(&s.id)).count();

    while outcome.len() < wanted_count {
        let ready: Vec<usize> = STAGES
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                wanted.contains(&s.id)
                    && !outcome.contains_key(&s.id)
                    && s.requires.iter().all(|r| outcome.contains_key(r) || !wanted.contains(r))
            })
            .map(|(i, _)| i)
            .collect();
        if ready.is_empty() {
            break; // a cycle in the table; the table test rules this out
        }
        let mut runnable = Vec::new();
        for i in ready {
            let stage = &STAGES[i];
            let blocker = stage.requires.iter().find_map(|r| outcome.get(r).copied().flatten());
            let asked_to_skip =
                inputs.skip.contains(&stage.name) || stage.requires.iter().any(|r| skipped_by_flag.contains(r));
            if blocker.is_none() && asked_to_skip {
                let mut skipped: Vec<CheckResult> = stage
                    .checks
                    .iter()
                    .map(|id| {
                        CheckResult::skipped(id, format!("skipped: the {} stage was left out with --skip", stage.name))
                    })
                    .collect();
                skipped.iter_mut().for_each(|c| c.stage = stage.name);
                results[i] = Some(skipped);
                outcome.insert(stage.id, None);
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
                }
                None => runnable.push(i),
            }
        }
        let futures: Vec<_> = runnable
            .iter()
            .map(|&i| {
                let stage = &STAGES[i];
                let fut = (stage.run)(&ctx);
                Box::pin(async move {
                    crate::log::debug(format!("stage {}: started", stage.name));
                    let t0 = Instant::now();
                    let res = tokio::time::timeout_at(deadline, fut).await;
                    (res, t0.elapsed())
                })
            })
            .collect();
        let finished = join_all(futures).await;
        for (&i, (res, took)) in runnable.iter().zip(finished) {
            let stage = &STAGES[i];
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
            ctx.facts().reported.extend(checks.iter().map(|c| (c.id, c.code, c.blocked_by, c.message.clone())));
            results[i] = Some(checks);
        }
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
    }

    #[test]
    fn connection_stages_need_nothing_outside_them() {
        for id in CONNECTION {
            let stage = STAGES.iter().find(|s| s.id == *id).expect("in the table");
            assert!(stage.requires.iter().all(|r| CONNECTION.contains(r)), "{} needs a later stage", stage.name);
        }
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
