//! Human scan report: one summary table (worst services first), the findings grouped by
//! service, the prune plan or its outcome, and the result line. `--verbose` lists instances.
//! On a terminal everything is laid out in its width (down to 60 columns: short table headings,
//! wrapped text, every command on a line of its own, whole); files and pipes keep long lines.

use std::fmt::Write;

use anstyle::{AnsiColor, Effects, Style};
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};

use crate::render::human::{fix_lines, wrapped};
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

/// Terminal widths below this get the table's short headings.
const NARROW: usize = 80;

pub fn render(r: &ScanReport, list_instances: bool, width: Option<usize>) -> String {
    let mut out = String::new();
    let head = format!(
        "{} · scan of {} · datacenter {}",
        r.tool.version,
        r.target,
        r.scanned.datacenter.as_deref().unwrap_or("?")
    );
    wrapped(&mut out, &format!("{} ", paint(HEAD, "consul-doctor")), &head, 2, width);
    if let Some(v) = &r.agent.version {
        let _ = writeln!(out, "agent: Consul {v} · node {}", r.agent.node.as_deref().unwrap_or("?"));
    }
    let scanned = format!(
        "{} services, {} instances on {} nodes{} ({})",
        r.scanned.services,
        r.scanned.instances,
        r.scanned.nodes,
        if r.scanned.complete { "" } else { " — incomplete, see below" },
        r.scanned.endpoints.join(", ")
    );
    wrapped(&mut out, "scanned ", &scanned, 2, width);
    for c in r.connection.iter().filter(|c| matches!(c.status, Status::Warn | Status::Fail)) {
        let prefix = format!("  {} {}  ", paint(WARN, "!"), c.code.unwrap_or(""));
        wrapped(&mut out, &prefix, &c.message, 6, width);
    }

    let mut table = Table::new();
    let narrow = width.is_some_and(|w| w < NARROW);
    let headings = if narrow {
        vec!["service", "inst", "pass", "warn", "crit", "stale", "found"]
    } else {
        vec!["service", "instances", "passing", "warning", "critical", "stale", "findings"]
    };
    table.load_style(presets::UTF8_FULL_CONDENSED).set_header(headings);
    match width {
        // Long service names wrap inside their cell; the table never exceeds the terminal.
        Some(w) => {
            table.set_content_arrangement(ContentArrangement::Dynamic).set_width(w.min(u16::MAX as usize) as u16)
        }
        None => table.set_content_arrangement(ContentArrangement::Disabled),
    };
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
        let text = format!("{hidden} service(s) without findings not shown (--verbose lists them)");
        wrapped(&mut out, "", &paint(DIM, &text), 2, width);
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
        let prefix = format!("  {} {}  {}  ", paint(style, sym), f.result.id, paint(style, code));
        wrapped(&mut out, &prefix, &f.result.message, 6, width);
        if let Some(fix) = &f.result.fix {
            fix_lines(&mut out, "      fix: ", fix, 11, width);
        }
        let _ = writeln!(out, "      explain: consul-doctor explain {code}");
    }

    if let Some(instances) = &r.instances {
        let _ = writeln!(out, "\n{}", paint(HEAD, "instances"));
        for i in instances {
            if width.is_some_and(|w| w < 130) {
                let text = format!(
                    "{} on node {} ({}): {}, node {}, {} checks",
                    i.service_id, i.node, i.address, i.status, i.node_state, i.checks
                );
                wrapped(&mut out, &format!("  {} ", i.service), &text, 4, width);
                continue;
            }
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
        wrapped(&mut out, "", &paint(HEAD, &format!("prune: nothing can be pruned: {why}")), 2, width);
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
            let text = format!(
                "{} {} {}   # {} {} on {}: {}{}",
                a.request.method,
                a.request.path,
                a.request.body,
                a.service,
                a.service_id,
                a.node,
                a.reason,
                a.detail.as_deref().map(|d| format!(" — {d}")).unwrap_or_default()
            );
            wrapped(&mut out, &format!("  {mark}: "), &text, 4, width);
        }
        if p.mode == "dry-run" {
            wrapped(
                &mut out,
                "  ",
                "run again with --prune (and --yes when standard input is not a terminal) to deregister them; each is re-checked right before its deregistration",
                4,
                width,
            );
        }
    }
    if !p.kept.is_empty() {
        let total: usize = p.kept_by_clause.values().sum();
        wrapped(
            &mut out,
            "",
            &paint(HEAD, &format!("kept by the prune contract ({total} instance(s) that looked stale):")),
            2,
            width,
        );
        const SHOWN: usize = 50;
        for k in p.kept.iter().take(SHOWN) {
            let text = format!("{} on {} ({}): {}", k.service_id, k.node, k.address, k.reason);
            wrapped(&mut out, &format!("  {} ", k.service), &text, 4, width);
        }
        if total > SHOWN {
            let by: Vec<String> = p.kept_by_clause.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let text = format!(
                "… and {} more (--format json lists the first {}; by clause: {})",
                total - SHOWN,
                crate::scan::prune::KEPT_LISTED,
                by.join(", ")
            );
            wrapped(&mut out, "  ", &text, 4, width);
        }
    }
    if !p.agent_side.is_empty() {
        let head = "on live agents (deregister there; the agent's anti-entropy would undo a catalog deregistration):";
        wrapped(&mut out, "", &paint(HEAD, head), 2, width);
        for a in &p.agent_side {
            if width.is_some() {
                // The command alone on its line, whole; what it is for on the line above.
                let what = format!("{} {} on {} ({}):", a.service, a.service_id, a.node, a.code);
                wrapped(&mut out, "  # ", &what, 4, width);
                let _ = writeln!(out, "  {}", a.command);
                continue;
            }
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
