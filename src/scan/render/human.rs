//! Human scan report: one summary table (worst services first), the findings grouped by
//! service, the prune plan or its outcome, and the result line. `--verbose` lists instances.

use std::fmt::Write;

use anstyle::{AnsiColor, Effects, Style};
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};

use crate::report::Status;
use crate::scan::prune::Outcome;
use crate::scan::report::ScanReport;

const PASS: Style = AnsiColor::Green.on_default();
const WARN: Style = AnsiColor::Yellow.on_default().effects(Effects::BOLD);
const FAIL: Style = AnsiColor::Red.on_default().effects(Effects::BOLD);
const HEAD: Style = Style::new().effects(Effects::BOLD);
const DIM: Style = Style::new().effects(Effects::DIMMED);

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

pub fn render(r: &ScanReport, list_instances: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} · scan of {} · datacenter {}",
        paint(HEAD, "consul-doctor"),
        r.tool.version,
        r.target,
        r.scanned.datacenter.as_deref().unwrap_or("?")
    );
    if let Some(v) = &r.agent.version {
        let _ = writeln!(out, "agent: Consul {v} · node {}", r.agent.node.as_deref().unwrap_or("?"));
    }
    let _ = writeln!(
        out,
        "scanned {} services, {} instances on {} nodes{} ({})",
        r.scanned.services,
        r.scanned.instances,
        r.scanned.nodes,
        if r.scanned.complete { "" } else { " — incomplete, see below" },
        r.scanned.endpoints.join(", ")
    );
    for c in r.connection.iter().filter(|c| matches!(c.status, Status::Warn | Status::Fail)) {
        let _ = writeln!(out, "  {} {}  {}", paint(WARN, "!"), c.code.unwrap_or(""), c.message);
    }

    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec!["service", "instances", "passing", "warning", "critical", "stale", "findings"]);
    // Services without findings take rows only with --verbose (a healthy 2,000-service
    // catalog is one line).
    let mut hidden = 0;
    for s in &r.services {
        if s.findings == 0 && !list_instances {
            hidden += 1;
            continue;
        }
        let n = |v: usize| Cell::new(v).set_alignment(CellAlignment::Right);
        table.add_row(vec![
            Cell::new(&s.name),
            n(s.instances),
            n(s.passing),
            n(s.warning),
            n(s.critical),
            n(s.stale),
            n(s.findings),
        ]);
    }
    if table.row_count() > 0 {
        let _ = writeln!(out, "\n{table}");
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "{}",
            paint(DIM, &format!("{hidden} service(s) without findings not shown (--verbose lists them)"))
        );
    }

    let mut current: Option<&str> = None;
    for f in &r.findings {
        if current != Some(f.service.as_str()) {
            current = Some(f.service.as_str());
            let title = if f.service.is_empty() { "catalog".to_string() } else { format!("service {}", f.service) };
            let _ = writeln!(out, "\n{}", paint(HEAD, &title));
        }
        let (sym, style) = if f.result.status == Status::Fail { ("✘", FAIL) } else { ("!", WARN) };
        let code = f.result.code.unwrap_or("");
        let _ = writeln!(out, "  {} {}  {}  {}", paint(style, sym), f.result.id, paint(style, code), f.result.message);
        if let Some(fix) = &f.result.fix {
            let _ = writeln!(out, "      fix: {fix}");
        }
        let _ = writeln!(out, "      explain: consul-doctor explain {code}");
    }

    if let Some(instances) = &r.instances {
        let _ = writeln!(out, "\n{}", paint(HEAD, "instances"));
        for i in instances {
            let _ = writeln!(
                out,
                "  {:<24} {:<28} {:<20} {:<22} {:<8} {} ({} checks)",
                i.service, i.service_id, i.node, i.address, i.status, i.node_state, i.checks
            );
        }
    }

    let p = &r.prune;
    if !p.actions.is_empty() || !p.agent_side.is_empty() || !p.kept.is_empty() || p.blocked.is_some() {
        let _ = writeln!(out);
    }
    if let Some(why) = &p.blocked {
        let _ = writeln!(out, "{}", paint(HEAD, &format!("prune: nothing can be pruned: {why}")));
    }
    if !p.actions.is_empty() {
        let head = match p.mode {
            "dry-run" => format!("prune (dry run): --prune would deregister {} instance(s)", p.planned),
            "declined" => {
                format!("prune: not confirmed, nothing deregistered ({} instance(s) were planned)", p.planned)
            }
            _ => format!(
                "prune: {} removed, {} skipped, {} failed, {} unknown, {} not attempted",
                p.removed, p.skipped, p.failed, p.unknown, p.not_attempted
            ),
        };
        let _ = writeln!(out, "{}", paint(HEAD, &head));
        for a in &p.actions {
            let mark = match (p.mode, a.outcome) {
                ("declined", _) => "not confirmed",
                (_, Outcome::Planned) => "would",
                (_, Outcome::Removed) => "removed",
                (_, Outcome::Skipped) => "skipped",
                (_, Outcome::Failed) => "FAILED",
                (_, Outcome::Unknown) => "unknown",
                (_, Outcome::NotAttempted) => "not attempted",
            };
            let _ = writeln!(
                out,
                "  {mark}: {} {} {}   # {} {} on {}: {}{}",
                a.request.method,
                a.request.path,
                a.request.body,
                a.service,
                a.service_id,
                a.node,
                a.reason,
                a.detail.as_deref().map(|d| format!(" — {d}")).unwrap_or_default()
            );
        }
        if p.mode == "dry-run" {
            let _ = writeln!(
                out,
                "  run again with --prune (and --yes when standard input is not a terminal) to deregister them; each is re-checked right before its deregistration"
            );
        }
    }
    if !p.kept.is_empty() {
        let total: usize = p.kept_by_clause.values().sum();
        let _ = writeln!(
            out,
            "{}",
            paint(HEAD, &format!("kept by the prune contract ({total} instance(s) that looked stale):"))
        );
        const SHOWN: usize = 50;
        for k in p.kept.iter().take(SHOWN) {
            let _ = writeln!(out, "  {} {} on {} ({}): {}", k.service, k.service_id, k.node, k.address, k.reason);
        }
        if total > SHOWN {
            let by: Vec<String> = p.kept_by_clause.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let _ = writeln!(
                out,
                "  … and {} more (--format json lists the first {}; by clause: {})",
                total - SHOWN,
                crate::scan::prune::KEPT_LISTED,
                by.join(", ")
            );
        }
    }
    if !p.agent_side.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint(
                HEAD,
                "on live agents (deregister there; the agent's anti-entropy would undo a catalog deregistration):"
            )
        );
        for a in &p.agent_side {
            let _ = writeln!(out, "  {}   # {} {} on {} ({})", a.command, a.service, a.service_id, a.node, a.code);
        }
    }

    let s = &r.summary;
    let (word, style) = match r.status {
        Status::Fail => ("FAIL", FAIL),
        Status::Warn => ("WARN", WARN),
        _ => ("PASS", PASS),
    };
    if s.findings == 0 {
        let _ = writeln!(out, "\n{}", paint(PASS, "No problems found."));
    }
    let _ = writeln!(
        out,
        "\nResult: {} ({} findings: {} warnings, {} failures) in {} ms{}",
        paint(style, word),
        s.findings,
        s.warn,
        s.fail,
        r.elapsed_ms,
        if r.interrupted { " (interrupted)" } else { "" }
    );
    out
}
