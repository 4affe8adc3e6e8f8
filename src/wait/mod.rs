//! `wait`: the deploy gate. Watches `/v1/health/service/<name>` with Consul blocking queries
//! until the condition holds (exit 0) or the deadline passes (exit 1, with the diagnosis: the
//! connection stages of `check`, then what wait saw, root cause first).
//!
//! [`condition`] is the model and its pure judgement, [`query`] the blocking-query rules
//! (index, wait, backoff), [`live`] the progress on standard error, [`diagnose`] the findings,
//! [`report`] the final report.

pub mod condition;
pub mod diagnose;
pub mod live;
pub mod query;
pub mod report;

use std::io::Write;
use std::time::{Duration, Instant};

use condition::{Change, Condition, Goal, Instance, Tally};
use report::{Outcome, WaitReport};

use crate::consul::SharedClient;
use crate::diagnosis::stages::mesh::{CliFlags, ProxyKind};
use crate::diagnosis::{self, Connected};
use crate::inputs::{Inputs, RawInputs};
use crate::report::{CheckResult, Report, Status};
use crate::{log, secret, ExitStatus};

/// `wait`'s command line, unvalidated.
pub struct RawWait {
    pub inputs: RawInputs,
    pub service: String,
    pub id: Option<String>,
    pub tags: Vec<String>,
    pub node: Option<String>,
    pub min_passing: usize,
    pub registered: bool,
    pub gone: bool,
    /// `--connect`: the sidecar must pass too, and the mesh list the instance.
    pub connect: bool,
}

/// Connection stages whose failure waiting can fix (an agent still starting, a leader still
/// being elected); any other failure (configuration, TLS, ACL) stops the wait at once.
const TRANSIENT_STAGES: &[&str] = &["dns", "tcp", "api", "leader"];

pub fn condition_of(raw: &RawWait) -> Result<Condition, String> {
    if raw.service.trim().is_empty() {
        return Err("--service must not be empty".into());
    }
    if raw.gone && raw.id.is_none() && raw.node.is_none() {
        return Err("--gone needs --id ID or --node NODE (which instance should leave?)".into());
    }
    if raw.connect && (raw.gone || raw.registered) {
        return Err("--connect waits for passing instances: it cannot be combined with --gone or --registered".into());
    }
    if raw.min_passing == 0 {
        return Err("--min-passing must be at least 1".into());
    }
    let goal = if raw.gone {
        Goal::Gone
    } else if raw.registered {
        Goal::Registered
    } else {
        Goal::Passing(raw.min_passing)
    };
    Ok(Condition {
        service: raw.service.clone(),
        id: raw.id.clone(),
        tags: raw.tags.clone(),
        node: raw.node.clone(),
        goal,
        connect: raw.connect,
        peer: raw.inputs.consul.peer.as_ref().map(|p| p.value.clone()),
    })
}

pub fn run(raw: RawWait) -> ExitStatus {
    let cond = match condition_of(&raw) {
        Ok(c) => c,
        Err(message) => return usage(&message),
    };
    let mut inputs = match Inputs::resolve(raw.inputs) {
        Ok(inputs) => inputs,
        Err(message) => return usage(&message),
    };
    inputs.access = crate::inputs::Access::ReadService(cond.service.clone());
    let runtime = match crate::command_runtime(&inputs) {
        Ok(rt) => rt,
        Err(message) => return usage(&message),
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            report = wait(&mut inputs, &cond) => Some(report),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    runtime.shutdown_background();
    let Some(mut report) = outcome else {
        let _ = writeln!(std::io::stderr(), "\nconsul-doctor: interrupted");
        return ExitStatus::Interrupted;
    };
    if let Some(d) = report.diagnosis.as_mut() {
        crate::consul_cli::ConsulCli::new(&inputs.consul).apply(&mut d.checks);
    }
    let opts = crate::render::Options::new(inputs.verbose, inputs.fail_on, inputs.output.as_deref());
    let text = secret::redact(&report.render(inputs.format, &opts));
    let status = if report.outcome == Outcome::Met { ExitStatus::Clean } else { ExitStatus::Findings };
    match crate::render::emit(&text, inputs.output.as_deref()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            let _ = writeln!(std::io::stderr(), "consul-doctor: cannot write the report: {e}");
            ExitStatus::Usage
        }
        _ => status,
    }
}

fn usage(message: &str) -> ExitStatus {
    let _ = writeln!(std::io::stderr(), "consul-doctor: {message}");
    ExitStatus::Usage
}

/// What the watch loop ended with.
struct Watched {
    met: bool,
    last: condition::Seen,
    tally: Tally,
    timeline: Vec<Change>,
    /// The last failed request (shown when the wait ends without the condition).
    last_error: Option<String>,
    failures: u32,
    /// Changes left out of the timeline beyond [`MAX_TIMELINE`].
    dropped: usize,
    /// Why blocking queries did not work through this path (answers paced as polls instead).
    not_blocking: Option<&'static str>,
    /// Answers that did not block, in all and in a row (the pace of the next poll).
    polls: u32,
    consecutive_polls: u32,
    /// An answer came: the first one is the state the wait started from, not a change.
    answered: bool,
}

/// The part of `--deadline` kept for the diagnosis at its end, so that the report, connection
/// diagnosis included, is out by the deadline even when the agent has gone silent: a quarter of
/// the deadline, at most one `--timeout` and at most 5 s.
pub fn diagnosis_reserve(total: Duration, step: Duration) -> Duration {
    (total / 4).min(step).min(Duration::from_secs(5))
}

/// Most state changes kept in the report's timeline (a catalog of thousands of instances
/// would otherwise make its first answer thousands of "absent → passing" entries).
pub const MAX_TIMELINE: usize = 500;

async fn wait(inputs: &mut Inputs, cond: &Condition) -> WaitReport {
    let started = Instant::now();
    let total = inputs.deadline;
    let step = inputs.timeout;
    // Everything ends by `hard`; watching ends `reserve` earlier, so the diagnosis fits in.
    let hard = tokio::time::Instant::now() + total;
    let reserve = diagnosis_reserve(total, step);
    let deadline = hard - reserve;
    let mut progress = live::Progress::new(cond.describe(), deadline);
    progress.redraw();
    let mut jitter = query::Jitter::seeded();
    let mut target = inputs.consul.http_addr.value.clone();

    // Connect (again, with backoff, while the failure is one time can fix).
    let mut attempt = 0;
    // Requests of connection attempts whose client was dropped (an agent still starting).
    let mut earlier_requests = 0u64;
    // The last whole diagnosis of a failed attempt: if the final attempt is cut short by the
    // deadline (a silent port needs a whole --timeout to be named), this one tells the cause.
    let mut previous: Option<Report> = None;
    let (client, agent_node, connection) = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // The last attempt, at the end of watching, gets the reserve so its report is whole.
        let last_attempt = left.is_zero();
        inputs.deadline = if last_attempt { hard.saturating_duration_since(tokio::time::Instant::now()) } else { left };
        match diagnosis::connect(inputs).await {
            Connected::Ready { client, outcome } => {
                let node = outcome.facts.agent.as_ref().map(|a| a.node.clone());
                target = outcome.report.target.clone();
                break (client, node, outcome.report);
            }
            Connected::Failed(outcome) => {
                // The client as built (by the api stage or a read asked ahead of it): a failed
                // attempt may have asked before the stage that failed.
                earlier_requests += outcome.facts.early_client.as_ref().map_or(0, |c| c.requests());
                let root = outcome.report.checks.iter().find(|c| c.status == Status::Fail);
                let transient = root.is_some_and(|c| TRANSIENT_STAGES.contains(&c.stage));
                let why = root.map(|c| format!("{} {}", c.code.unwrap_or(""), c.message)).unwrap_or_default();
                attempt += 1;
                let pause = query::backoff(attempt, jitter.unit());
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if transient && !last_attempt && left <= pause {
                    // Sleep to the deadline, then one last attempt with the diagnosis budget.
                    progress.retrying(&format!("agent not usable yet: {why}"), left);
                    tokio::time::sleep_until(deadline).await;
                    continue;
                }
                let cut_short =
                    |r: &Report| r.root_cause.as_ref().is_some_and(|c| c.code == crate::codes::RUN_DEADLINE.code);
                if !transient || last_attempt {
                    progress.finish();
                    let waited = started.elapsed();
                    let outcome_kind = if transient { Outcome::Deadline } else { Outcome::Failed };
                    let report = match previous {
                        Some(p) if cut_short(&outcome.report) && !cut_short(&p) => p,
                        _ => outcome.report,
                    };
                    return finish(
                        &target,
                        cond,
                        outcome_kind,
                        waited,
                        earlier_requests,
                        (Vec::new(), 0),
                        Tally::default(),
                        Some(report),
                    );
                }
                if !cut_short(&outcome.report) {
                    previous = Some(outcome.report);
                }
                progress.retrying(&format!("agent not usable yet: {why}"), pause);
                tokio::time::sleep(pause).await;
            }
        }
    };

    let dc = inputs.consul.datacenter.as_ref().map(|d| d.value.clone());
    let read = diagnose::read_permission(&client, &cond.service, agent_node.as_deref()).await;
    if let Some(r) = read.as_ref().filter(|r| r.status == Status::Fail) {
        progress.finish();
        let diagnosis = diagnosis_report(connection, r.clone(), started);
        return finish(
            &target,
            cond,
            Outcome::Failed,
            started.elapsed(),
            earlier_requests + client.requests(),
            (Vec::new(), 0),
            Tally::default(),
            Some(diagnosis),
        );
    }

    let mut watched = Watched {
        met: false,
        last: condition::Seen::new(),
        tally: Tally::default(),
        timeline: Vec::new(),
        last_error: None,
        failures: 0,
        dropped: 0,
        not_blocking: None,
        polls: 0,
        consecutive_polls: 0,
        answered: false,
    };
    watch(&client, cond, dc.as_deref(), deadline, step, &mut progress, started, &mut jitter, &mut watched).await;
    let mut diagnosis = None;
    if !watched.met {
        // Diagnose in the reserve, then watch on to the deadline with whatever it left: the
        // report is out by the deadline, and an instance that passes in its last seconds counts.
        diagnosis = Some(diagnose_at_deadline(inputs, cond, dc.as_deref(), read, &watched, started, hard, step).await);
        watch(&client, cond, dc.as_deref(), hard, step, &mut progress, started, &mut jitter, &mut watched).await;
    }
    progress.finish();
    watched.last = condition::Seen::new();
    let blocking_queries = watched.not_blocking.map(|why| not_blocking_note(why, watched.polls).message);
    // Met in the last seconds after all: the diagnosis made in the reserve is dropped.
    let (outcome, diagnosis) = if watched.met { (Outcome::Met, None) } else { (Outcome::Deadline, diagnosis) };
    let mut report = finish(
        &target,
        cond,
        outcome,
        started.elapsed(),
        earlier_requests + client.requests(),
        (watched.timeline, watched.dropped),
        watched.tally,
        diagnosis,
    );
    report.blocking_queries = blocking_queries;
    report
}

/// The diagnosis when the condition did not hold in time, root cause first: a fresh connection
/// diagnosis, then what wait saw and this agent's own services; all of it by `hard`.
#[allow(clippy::too_many_arguments)]
async fn diagnose_at_deadline(
    inputs: &mut Inputs,
    cond: &Condition,
    dc: Option<&str>,
    read: Option<CheckResult>,
    watched: &Watched,
    started: Instant,
    hard: tokio::time::Instant,
    step: Duration,
) -> Report {
    let waited = started.elapsed();
    inputs.deadline = hard.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(1));
    match diagnosis::connect(inputs).await {
        Connected::Failed(outcome) => outcome.report,
        Connected::Ready { client: fresh, outcome } => {
            let node = outcome.facts.agent.as_ref().map(|a| a.node.clone()).unwrap_or_default();
            let mut checks = outcome.report.checks.clone();
            let read_answer = read.clone();
            if let Some(r) = read {
                checks.push(r);
            }
            let cli = crate::diagnosis::stages::mesh::cli_flags(inputs);
            let own = wait_checks(&fresh, cond, dc, &node, watched, waited, step, &cli);
            match tokio::time::timeout_at(hard, own).await {
                Ok(own) => checks.extend(own),
                Err(_) => checks.push(unanswered_at_deadline(cond, dc, &fresh, watched)),
            }
            // Too few seen, with a token that cannot see every node: say they may be hidden.
            if let (Some(read), Some(at)) = (&read_answer, checks.iter().position(|c| c.id == "wait.condition")) {
                if let Some(hidden) = diagnose::hidden_elsewhere(read, &checks[at], &cond.service) {
                    checks[at] = hidden;
                }
            }
            checks.iter_mut().filter(|c| c.stage.is_empty()).for_each(|c| c.stage = "wait");
            let report = outcome.report;
            Report::new(report.target, report.inputs, report.agent, checks, started.elapsed().as_millis() as u64)
        }
    }
}

/// The health query did not answer again before the hard deadline (an agent that went silent).
fn unanswered_at_deadline(cond: &Condition, dc: Option<&str>, client: &SharedClient, watched: &Watched) -> CheckResult {
    let path = query::query(&cond.service, dc, 0, Duration::ZERO);
    let last =
        watched.last_error.clone().map(|e| format!("; the last failure seen while waiting: {e}")).unwrap_or_default();
    CheckResult::finding(
        crate::codes::WAIT_QUERY_FAILING,
        "wait.query",
        format!("GET {path} had no answer before the deadline: the agent accepted the request and went silent{last}"),
        "query it by hand: curl -sv --max-time 10 \"<agent>/v1/health/service/<name>\"; read the agent log (consul monitor -log-level=debug): an agent that accepts connections and never answers is overloaded, paused or stuck",
    )
    .with("request", format!("GET {}", client.url(&path)))
}

/// `/v1/health/connect/<name>` with the same parameters as the service query `path`.
fn mesh_path(path: &str) -> String {
    path.replacen("/v1/health/service/", "/v1/health/connect/", 1)
}

/// wait's own checks at the deadline: the health query, then the condition.
#[allow(clippy::too_many_arguments)]
async fn wait_checks(
    client: &SharedClient,
    cond: &Condition,
    dc: Option<&str>,
    node: &str,
    watched: &Watched,
    waited: Duration,
    step: Duration,
    cli: &CliFlags,
) -> Vec<CheckResult> {
    let waited_text = crate::duration::format_go(Duration::from_millis(waited.as_millis() as u64).as_nanos() as i64);
    let path = query::query(&cond.service, dc, 0, Duration::ZERO);
    let fresh = client.get_json_streamed_within::<Vec<Instance>>(&path, step).await;
    let mut out = Vec::new();
    if let Some(why) = watched.not_blocking {
        out.push(not_blocking_note(why, watched.polls));
    }
    let mut instances = match fresh {
        Ok(Ok((list, _))) => {
            out.push(CheckResult::pass("wait.query", format!("GET {path} answers ({} instance(s))", list.len())));
            list
        }
        other => {
            let now = describe_failure(&path, &other, step);
            let last = watched.last_error.clone().unwrap_or(now);
            out.push(
                CheckResult::finding(
                    crate::codes::WAIT_QUERY_FAILING,
                    "wait.query",
                    format!("{last} ({} failed attempt(s) during the wait, retried with backoff)", watched.failures.max(1)),
                    "query it by hand: curl -sv \"<agent>/v1/health/service/<name>?index=1&wait=30s\"; read the agent log (consul monitor -log-level=debug); a proxy in front of the agent must allow requests longer than the blocking wait",
                )
                .with("request", format!("GET {}", client.url(&path))),
            );
            return out;
        }
    };
    let local = match client.get("/v1/agent/services").await {
        Ok(r) if r.status == 200 => r.json::<serde_json::Map<String, serde_json::Value>>().ok(),
        _ => None,
    };
    let local = local.map(|m| diagnose::local_matches(cond, node, &m));
    // The owning agent's view of its own instances' checks (fresher than the catalog's).
    if let Ok(r) = client.get("/v1/agent/checks").await {
        if let Some(m) =
            (r.status == 200).then(|| r.json::<serde_json::Map<String, serde_json::Value>>().ok()).flatten()
        {
            diagnose::overlay_agent_view(&mut instances, node, &m);
        }
    }
    let tally = condition::judge(cond, &instances);
    let mut r = diagnose::judge_condition(cond, &tally, &instances, local.as_deref(), node, &waited_text);
    if r.code == Some(crate::codes::WAIT_NOT_REGISTERED.code) {
        // Registrations here may not come from agents at all (consul-k8s with consul-dataplane):
        // the service's other instances say so, or the catalog's synthetic nodes do.
        // Instances registered by agents say the opposite: the catalog is asked only when the
        // service has no instance at all.
        let owned = match diagnose::siblings_owner(&instances) {
            Some(e) => Some(e),
            None if !instances.is_empty() => None,
            None => match diagnose::synthetic_nodes(client, dc).await {
                (_, 0) => None,
                (names, count) => Some(diagnose::OwnerEvidence::SyntheticNodes { names, count }),
            },
        };
        if let Some(evidence) = owned {
            r = diagnose::not_registered_by_owner(cond, &instances, &evidence, &waited_text);
        } else {
            // Never registered, or registered and lost with a restarted agent's data directory?
            let bound = diagnose::agent_uptime_bound(client).await;
            if let Some(lost) = diagnose::judge_lost(cond, &instances, node, bound, &waited_text) {
                r = lost;
            }
        }
    }
    if r.code == Some(crate::codes::SYN_MISSING.code) {
        // On the agent, not in the catalog: a node name held by another node ID explains it.
        if let Some(cause) = crate::diagnosis::stages::sync::node_identity_cause(client, dc).await {
            let code = cause.code.unwrap_or_default();
            let mut blocked = CheckResult::blocked("wait.condition", code);
            blocked.message = format!("{}; the cause: {code}", r.message);
            out.push(cause);
            r = blocked;
        }
    }
    if cond.connect && tally.met {
        // The service passes: what its sidecars say.
        let path = mesh_path(&query::query(&cond.service, dc, 0, Duration::ZERO));
        if let Ok(Ok((mesh, _))) = client.get_json_streamed_within::<Vec<Instance>>(&path, step).await {
            let start = |id: &str| crate::diagnosis::stages::mesh::proxy_command(ProxyKind::BuiltIn, id, cli, None);
            if let Some(m) = diagnose::judge_mesh_condition(cond, &instances, &mesh, &waited_text, &start) {
                r = m.with("mesh_request", format!("GET {}", client.url(&path)));
            }
        }
    }
    r = r.with("request", format!("GET {}", client.url(&path)));
    if watched.failures > 0 {
        r = r.with("failed_requests", watched.failures.to_string());
    }
    out.push(r);
    out
}

/// WAIT-007: the health query could not block through this path, so wait polled instead.
pub fn not_blocking_note(why: &str, polls: u32) -> CheckResult {
    CheckResult::finding(
        crate::codes::WAIT_NOT_BLOCKING,
        "wait.blocking",
        format!(
            "blocking queries are not working through this path: {why}, so wait polled with a {}–{} s pause instead of blocking ({polls} answer(s) did not block)",
            query::POLL_FLOOR.as_secs(),
            query::POLL_CAP.as_secs()
        ),
        "a proxy or load balancer in front of the agent probably strips the X-Consul-Index header or the index/wait parameters; point wait at the agent itself, or let the proxy pass them through (curl -si \"<agent>/v1/health/service/<name>\" | grep -i x-consul-index)",
    )
    .with("reason", why.to_string())
    .with("polls", polls.to_string())
}

fn describe_failure<T>(
    path: &str,
    r: &Result<Result<T, (crate::consul::Reply, String)>, crate::consul::HttpFailure>,
    step: Duration,
) -> String {
    match r {
        Ok(Ok(_)) => format!("GET {path} answered"),
        Ok(Err((reply, e))) if reply.status == 200 => {
            format!("GET {path} returned a body that is not Consul's JSON ({e}): \"{}\"", reply.snippet())
        }
        Ok(Err((reply, _))) => format!("GET {path} answered {} \"{}\"", reply.status, reply.snippet()),
        Err(f) => format!("GET {path}: {}", f.describe(step)),
    }
}

/// The connection stages' report with wait's own finding appended (for an early stop).
fn diagnosis_report(connection: Report, finding: CheckResult, started: Instant) -> Report {
    let mut checks = connection.checks;
    let mut finding = finding;
    finding.stage = "wait";
    checks.push(finding);
    Report::new(connection.target, connection.inputs, connection.agent, checks, started.elapsed().as_millis() as u64)
}

#[allow(clippy::too_many_arguments)]
async fn watch(
    client: &SharedClient,
    cond: &Condition,
    dc: Option<&str>,
    deadline: tokio::time::Instant,
    step: Duration,
    progress: &mut live::Progress,
    started: Instant,
    jitter: &mut query::Jitter,
    w: &mut Watched,
) {
    let mut index = 0u64;
    let mut consecutive_failures = 0u32;
    loop {
        let now = tokio::time::Instant::now();
        let remaining = deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return;
        }
        let wait = query::wait_for(remaining);
        let mut path = query::query(&cond.service, dc, index, wait);
        if cond.connect {
            // The sidecars' list is what changes last (its aliasing check follows the service),
            // so that is the list to block on; the service's own list is read with each answer.
            path = mesh_path(&path);
        }
        let timeout = if index == 0 { step } else { query::request_timeout(wait, step) };
        let sent = Instant::now();
        let request = client.get_json_streamed_within::<Vec<Instance>>(&path, timeout);
        tokio::pin!(request);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let answer = loop {
            tokio::select! {
                a = &mut request => break Some(a),
                _ = tokio::time::sleep_until(deadline) => break None,
                _ = tick.tick(), if progress.is_live() => progress.redraw(),
            }
        };
        let Some(answer) = answer else { return };
        let took = sent.elapsed();
        let mut failed = path.clone();
        let answer = match answer {
            Ok(Ok((mesh, headers))) if cond.connect => {
                let plain = query::query(&cond.service, dc, 0, Duration::ZERO);
                match client.get_json_streamed_within::<Vec<Instance>>(&plain, step).await {
                    Ok(Ok((list, _))) => Ok(Ok((list, headers, Some(mesh)))),
                    // The failure names the request that failed.
                    Ok(Err(e)) => {
                        failed = plain;
                        Ok(Err(e))
                    }
                    Err(f) => {
                        failed = plain;
                        Err(f)
                    }
                }
            }
            Ok(Ok((list, headers))) => Ok(Ok((list, headers, None))),
            Ok(Err(e)) => Ok(Err(e)),
            Err(f) => Err(f),
        };
        let failure = match answer {
            Ok(Ok((list, headers, mesh))) => {
                consecutive_failures = 0;
                let at = started.elapsed().as_millis() as u64;
                let seen = condition::snapshot(cond, &list);
                w.tally = match &mesh {
                    Some(mesh) => condition::judge_mesh(cond, &list, mesh),
                    None => condition::judge(cond, &list),
                };
                drop(list);
                let changes = if w.answered { condition::changes(&w.last, &seen, at) } else { Vec::new() };
                w.answered = true;
                progress.changes(&changes);
                let room = MAX_TIMELINE.saturating_sub(w.timeline.len());
                w.dropped += changes.len().saturating_sub(room);
                w.timeline.extend(changes.into_iter().take(room));
                w.last = seen;
                progress.tally(w.tally);
                if w.tally.met {
                    w.met = true;
                    return;
                }
                let answered = query::Answered::parse(headers.get("x-consul-index").and_then(|v| v.to_str().ok()));
                let sent = index;
                index = query::next_index(sent, answered.index());
                match query::not_blocking(sent, answered, took) {
                    Some(why) => {
                        // Not a blocking query after all: poll, paced, never in a tight loop.
                        w.consecutive_polls += 1;
                        w.polls += 1;
                        w.not_blocking = Some(why);
                        let pause = query::poll_pause(w.consecutive_polls);
                        log::debug(format!("{why}; polling again in {} ms", pause.as_millis()));
                        tokio::time::sleep(pause.min(deadline.saturating_duration_since(tokio::time::Instant::now())))
                            .await;
                    }
                    // Only a blocking request that behaved shows the path works again (the
                    // immediate re-baselining query after a reset proves nothing).
                    None if sent > 0 => w.consecutive_polls = 0,
                    None => {}
                }
                None
            }
            Ok(Err((reply, e))) if reply.status == 200 => {
                Some(format!("GET {failed} returned a body that is not Consul's JSON ({e}): \"{}\"", reply.snippet()))
            }
            Ok(Err((reply, _))) => Some(format!("GET {failed} answered {} \"{}\"", reply.status, reply.snippet())),
            Err(f) => Some(format!("GET {failed}: {}", f.describe(timeout))),
        };
        if let Some(why) = failure {
            consecutive_failures += 1;
            w.failures += 1;
            w.last_error = Some(why.clone());
            // After a failure the agent may have restarted with a smaller index: start over
            // with an immediate query rather than block on an index it may never reach.
            index = 0;
            let pause = query::backoff(consecutive_failures, jitter.unit());
            progress.retrying(&why, pause);
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(tokio::time::Instant::now()))).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    target: &str,
    cond: &Condition,
    outcome: Outcome,
    waited: Duration,
    requests: u64,
    (timeline, timeline_dropped): (Vec<Change>, usize),
    tally: Tally,
    diagnosis: Option<Report>,
) -> WaitReport {
    let status = if outcome == Outcome::Met { Status::Pass } else { Status::Fail };
    let root_cause = diagnosis.as_ref().and_then(|d| d.root_cause.clone());
    WaitReport {
        schema_version: report::WAIT_SCHEMA_VERSION,
        command: "wait",
        tool: crate::report::Tool { name: "consul-doctor", version: env!("CARGO_PKG_VERSION") },
        target: diagnosis.as_ref().map(|d| d.target.clone()).unwrap_or_else(|| target.to_string()),
        description: cond.describe(),
        condition: cond.clone(),
        outcome,
        status,
        waited_ms: waited.as_millis() as u64,
        requests,
        matching: tally.matching,
        passing: tally.passing,
        timeline,
        timeline_dropped,
        root_cause,
        blocking_queries: None,
        diagnosis,
    }
}
