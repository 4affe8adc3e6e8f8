//! `scan`: fleet hygiene across the catalog. It connects the way `check` does (the connection
//! stages of [`crate::diagnosis`]; a broken connection is reported in `check`'s shape),
//! then [`gather`] reads the catalog, [`judge`] turns it into coded findings, [`prune`] plans
//! (and with `--prune` makes) the one write, and `render/` prints the [`report`].

pub mod agent_view;
pub mod args;
pub mod gather;
pub mod judge;
pub mod mesh;
pub mod model;
pub mod prune;
pub mod render;
pub mod report;

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::diagnosis::{self, Connected};
use crate::report::{Status, Tool};
use crate::{inputs, secret, ExitStatus};

fn usage(message: &str) -> ExitStatus {
    let _ = writeln!(std::io::stderr(), "consul-doctor: {message}");
    ExitStatus::Usage
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM: both stop a scan or a prune the same way.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub fn run(raw: args::ScanRaw) -> ExitStatus {
    let args::ScanRaw { raw, options } = raw;
    let mut inputs = match inputs::Inputs::resolve(raw) {
        Ok(inputs) => inputs,
        Err(message) => return usage(&message),
    };
    inputs.access = inputs::Access::ReadCatalog;
    let grace = match crate::duration::parse_go_duration(&options.grace) {
        Ok(n) if n >= 0 => std::time::Duration::from_nanos(n as u64),
        Ok(_) => return usage(&format!("--grace {:?} must not be negative", options.grace)),
        Err(e) => return usage(&format!("--grace {:?}: {e}", options.grace)),
    };
    // The question is read from standard input and asked on standard error: both must be a
    // terminal (standard output may be piped, e.g. --format json | jq).
    let stdin_tty = std::io::stdin().is_terminal();
    let interactive = stdin_tty && std::io::stderr().is_terminal();
    if options.prune && !options.yes && !interactive {
        return usage(if stdin_tty {
            "--prune deregisters instances: standard error is not a terminal, so the question cannot be shown; add --yes to confirm"
        } else {
            "--prune deregisters instances: add --yes to confirm when standard input is not a terminal"
        });
    }
    let runtime = match crate::command_runtime(&inputs) {
        Ok(rt) => rt,
        Err(message) => return usage(&message),
    };
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + inputs.deadline;
    // Drawn on standard error only when it is a terminal (also with `--format json | jq`).
    let progress = gather::Progress::new(true);
    let scanned = runtime.block_on(async {
        tokio::select! {
            r = scan(&inputs, &options, grace, deadline, &progress) => Some(r),
            _ = interrupted() => None,
        }
    });
    progress.clear();
    let (mut report, client) = match scanned {
        None => {
            runtime.shutdown_background();
            let _ = writeln!(std::io::stderr(), "consul-doctor: interrupted");
            return ExitStatus::Interrupted;
        }
        Some(Scanned::Connection(check_report)) => {
            runtime.shutdown_background();
            let opts = crate::render::Options::new(inputs.verbose, inputs.fail_on, inputs.output.as_deref());
            let text = secret::redact(&crate::render::render(&check_report, inputs.format, &opts));
            return emit(&text, &inputs, check_report.exit_status(inputs.fail_on));
        }
        Some(Scanned::Done(report, client)) => (*report, client),
    };
    if options.prune && report.prune.planned > 0 {
        // The terminal question is asked inside the runtime, so an interrupt there is seen too.
        let asked = report.prune.clone();
        let go = options.yes
            || runtime.block_on(async {
                tokio::select! {
                    answer = tokio::task::spawn_blocking(move || confirm(&asked)) => answer.unwrap_or(false),
                    _ = interrupted() => {
                        report.interrupted = true;
                        false
                    }
                }
            });
        if go {
            // Every instance is re-read (consistently) and re-judged right before its write, so
            // the plan shown at the question is re-checked whatever time the answer took. Time
            // spent at the question is a person's, not the network's: --deadline starts again.
            let deadline = if options.yes { deadline } else { tokio::time::Instant::now() + inputs.deadline };
            let (failures, interrupted) =
                runtime.block_on(prune::execute(&client, &mut report.prune, deadline, interrupted()));
            report.findings.extend(failures);
            report.interrupted = interrupted;
            report.forget_removed();
        } else {
            report.prune.mode = "declined";
            let _ = writeln!(std::io::stderr(), "\nconsul-doctor: nothing deregistered (not confirmed)");
        }
    } else if options.prune {
        report.prune.mode = "prune";
    }
    runtime.shutdown_background();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report.finish();
    let width = crate::render::Options::new(false, inputs.fail_on, inputs.output.as_deref()).width;
    let text = secret::redact(&render::render(&report, inputs.format, options.list_instances, inputs.fail_on, width));
    emit(&text, &inputs, report.exit_status(inputs.fail_on))
}

fn emit(text: &str, inputs: &inputs::Inputs, status: ExitStatus) -> ExitStatus {
    match crate::render::emit(text, inputs.output.as_deref()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => usage(&format!("cannot write the report: {err}")),
        _ => status,
    }
}

/// Asks on the terminal before the write.
fn confirm(plan: &prune::PruneReport) -> bool {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "consul-doctor scan --prune will deregister {} instance(s) from the catalog:", plan.planned);
    for a in &plan.actions {
        let _ = writeln!(err, "  {} {} on node {} ({}): {}", a.service, a.service_id, a.node, a.address, a.reason);
    }
    let _ = writeln!(
        err,
        "Each one is read again (consistent read) right before its deregistration and skipped if anything changed."
    );
    let _ = write!(err, "Deregister them? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

enum Scanned {
    /// The connection failed: `check`'s report of it.
    Connection(Box<crate::report::Report>),
    Done(Box<report::ScanReport>, crate::consul::SharedClient),
}

async fn scan(
    inputs: &inputs::Inputs,
    options: &args::ScanOptions,
    grace: std::time::Duration,
    deadline: tokio::time::Instant,
    progress: &gather::Progress,
) -> Scanned {
    let started = Instant::now();
    let (client, outcome) = match diagnosis::connect(inputs).await {
        Connected::Ready { client, outcome } => (client, outcome),
        Connected::Failed(outcome) => return Scanned::Connection(Box::new(outcome.report)),
    };
    let agent_dc = outcome.facts.summary.datacenter.clone();
    // Enterprise: every namespace and partition the token can list is scanned (consul_facts).
    let enterprise = outcome.facts.agent.as_ref().and_then(|a| {
        let mut v = crate::consul_facts::ConsulVersion::parse(&a.version)?;
        v.enterprise = crate::consul_facts::edition_of(&a.version, a.tags.get("build").map(String::as_str))
            == crate::consul_facts::Edition::Enterprise;
        v.enterprise.then_some(gather::Enterprise { partitions: v.at_least((1, 11, 0)) })
    });
    let datacenter = inputs.consul.datacenter.as_ref().map(|d| d.value.clone());
    let same_dc = datacenter.is_none() || datacenter == agent_dc;
    let gather_options =
        gather::GatherOptions { datacenter: datacenter.clone(), same_dc, wanted: options.services.clone(), enterprise };
    // The connected agent's own view of its node (issue 15: catalog writes it will undo,
    // check output the catalog has not caught up with), read while the catalog streams in.
    let own_node = outcome.facts.agent.as_ref().map(|a| a.node.clone()).filter(|_| same_dc);
    let (gathered, own) =
        tokio::join!(tokio::time::timeout_at(deadline, gather::gather(&client, &gather_options, progress)), async {
            match &own_node {
                Some(node) => tokio::time::timeout_at(deadline, agent_view::read(&client, node)).await.ok().flatten(),
                None => None,
            }
        });
    let gathered = match gathered {
        Ok(g) => g,
        Err(_) => gather::Gathered {
            catalog: model::Catalog::default(),
            problems: vec![judge::Finding::service_wide(
                "",
                crate::report::CheckResult::finding(
                    crate::codes::RUN_DEADLINE,
                    "scan.catalog",
                    format!(
                        "reading the catalog did not finish before the {} run deadline",
                        crate::duration::format_go(inputs.deadline.as_nanos() as i64)
                    ),
                    "re-run with a larger --deadline (and --timeout for a very large catalog), or scan part of it with --service",
                ),
            )],
            endpoints: Vec::new(),
            complete: false,
        },
    };
    let mut gathered = gathered;
    if let Some(v) = &own {
        agent_view::overlay(&mut gathered.catalog, v);
    }
    let target = outcome.report.target.clone();
    let judge_options = judge::JudgeOptions {
        wanted: options.services.clone(),
        expect: options.expect.clone(),
        target: if target.contains("://") { target.clone() } else { format!("http://{target}") },
        datacenter: datacenter.clone(),
        consul: crate::consul_cli::ConsulCli::new(&inputs.consul),
        token_from_env: inputs
            .consul
            .token
            .as_ref()
            .is_some_and(|t| t.source == inputs::Source::Env("CONSUL_HTTP_TOKEN")),
    };
    let cat = &gathered.catalog;
    let judged = judge::judge(cat, &judge_options);
    let incomplete = (!gathered.complete).then(|| {
        let mut codes: Vec<&str> = gathered.problems.iter().filter_map(|f| f.result.code).collect();
        codes.dedup();
        format!("see {}", codes.join(", "))
    });
    let plan = prune::plan(
        cat,
        &judged,
        &prune::PlanOptions {
            dc: datacenter.as_deref(),
            same_dc,
            incomplete,
            grace,
            grace_text: options.grace.clone(),
            observed: tokio::time::Instant::now(),
            deadline,
            cli: &judge_options.consul,
        },
    );
    let instances = options.list_instances.then(|| {
        cat.instances()
            .map(|i| report::InstanceRow {
                service: i.service.to_string(),
                service_id: i.id.to_string(),
                node: cat.node(i.node).key(),
                address: i.endpoint(),
                status: judge::instance_health(cat, &i).as_str(),
                node_state: match judged.states[i.node] {
                    judge::NodeState::Alive => "alive",
                    judge::NodeState::Gone(_) => "gone",
                    judge::NodeState::CatalogOnly => "catalog-only",
                },
                checks: i.check_count() as usize,
            })
            .collect()
    });
    let sidecars = mesh::scan(&client, &gathered, datacenter.as_deref(), &options.services, deadline).await;
    let mut findings = gathered.problems;
    findings.extend(judged.findings);
    findings.extend(own.as_ref().map(|v| agent_view::judge(cat, v)).unwrap_or_default());
    findings.extend(sidecars.findings);
    for f in &mut findings {
        judge_options.consul.apply(std::slice::from_mut(&mut f.result));
    }
    let report = report::ScanReport {
        schema_version: report::SCAN_SCHEMA_VERSION,
        command: "scan",
        tool: Tool { name: "consul-doctor", version: env!("CARGO_PKG_VERSION") },
        target,
        inputs: outcome.report.inputs.clone(),
        agent: outcome.report.agent.clone(),
        status: Status::Pass,
        connection: outcome.report.checks.clone(),
        scanned: report::Scanned {
            datacenter: datacenter.or(agent_dc),
            scope: if options.services.is_empty() { "catalog" } else { "services" },
            services: judged.services.len(),
            instances: cat.instance_count(),
            nodes: cat.node_count(),
            complete: gathered.complete,
            endpoints: gathered.endpoints.into_iter().chain(sidecars.endpoints).collect(),
        },
        services: judged.services,
        findings,
        instances,
        prune: plan,
        summary: report::ScanSummary::default(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        interrupted: false,
    };
    Scanned::Done(Box::new(report), client)
}
