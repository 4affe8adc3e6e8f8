//! Human report: grouped by stage, coloured by status, a summary table, and the root cause last.
//! Every warn/fail line ends with the `consul-doctor explain CODE` pointer.

use std::fmt::Write;

use anstyle::{AnsiColor, Effects, Style};
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};

use crate::report::{CheckResult, Report, Status};

const PASS: Style = AnsiColor::Green.on_default();
const WARN: Style = AnsiColor::Yellow.on_default().effects(Effects::BOLD);
const FAIL: Style = AnsiColor::Red.on_default().effects(Effects::BOLD);
const SKIP: Style = Style::new().effects(Effects::DIMMED);
const HEAD: Style = Style::new().effects(Effects::BOLD);

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn mark(s: Status) -> (&'static str, Style) {
    match s {
        Status::Pass => ("✔", PASS),
        Status::Warn => ("!", WARN),
        Status::Fail => ("✘", FAIL),
        Status::Skip => ("-", SKIP),
    }
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let source = report.inputs.iter().find(|i| i.name == "http_addr").map(|i| i.source.clone()).unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {} · checking {} ({source})",
        paint(HEAD, "consul-doctor"),
        report.tool.version,
        report.target
    );
    let given: Vec<String> = report
        .inputs
        .iter()
        .filter(|i| i.name != "http_addr" && i.name != "timeout" && i.source != "default")
        .map(|i| format!("{} {} ({})", i.name, i.value, i.source))
        .collect();
    if !given.is_empty() {
        let _ = writeln!(out, "inputs: {}", given.join(" · "));
    }
    let a = &report.agent;
    if let Some(v) = &a.version {
        let _ = writeln!(
            out,
            "agent: Consul {v} {} · node {} · datacenter {}{}",
            a.mode.as_deref().unwrap_or(""),
            a.node.as_deref().unwrap_or("?"),
            a.datacenter.as_deref().unwrap_or("?"),
            a.leader.as_deref().map(|l| format!(" · leader {l}")).unwrap_or_default()
        );
    }
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(10);
    let stages = report.stages();
    for stage in stages {
        let checks: Vec<&CheckResult> = report.checks.iter().filter(|c| c.stage == stage).collect();
        let _ = writeln!(out, "\n{}", paint(HEAD, stage));
        // A stage skipped whole because of one blocker takes one line, not one per check.
        let blocker = checks.first().and_then(|c| c.blocked_by);
        if checks.len() > 1
            && blocker.is_some()
            && checks.iter().all(|c| c.status == Status::Skip && c.blocked_by == blocker)
        {
            let ids = checks.iter().map(|c| c.id).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                out,
                "  {} {}",
                paint(SKIP, "-"),
                paint(SKIP, &format!("{ids}: skipped, blocked by {}", blocker.unwrap_or("")))
            );
            continue;
        }
        for c in checks {
            line(&mut out, c, width);
        }
    }
    out.push('\n');
    out.push_str(&summary_table(report));
    out.push('\n');
    match &report.root_cause {
        Some(rc) => {
            let _ = writeln!(out, "{} {} ({}): {}", paint(FAIL, "Root cause:"), rc.code, rc.check, rc.message);
        }
        None if report.summary.warn > 0 => {
            let _ = writeln!(out, "{}", paint(WARN, "No failures; see the warnings above."));
        }
        None => {
            let _ = writeln!(out, "{}", paint(PASS, "No problems found."));
        }
    }
    let s = &report.summary;
    let (word, style) = match report.status {
        Status::Fail => ("FAIL", FAIL),
        Status::Warn => ("WARN", WARN),
        _ => ("PASS", PASS),
    };
    let _ = writeln!(
        out,
        "Result: {} ({} passed, {} warnings, {} failed, {} skipped) in {} ms{}",
        paint(style, word),
        s.pass,
        s.warn,
        s.fail,
        s.skip,
        report.elapsed_ms,
        if report.attempts > 1 { format!(" (attempt {})", report.attempts) } else { String::new() }
    );
    out
}

fn line(out: &mut String, c: &CheckResult, width: usize) {
    let (sym, style) = mark(c.status);
    let id = format!("{:<width$}", c.id);
    match c.status {
        Status::Pass => {
            let _ = writeln!(out, "  {} {id}  {}", paint(style, sym), c.message);
        }
        Status::Skip => {
            let _ = writeln!(out, "  {} {}", paint(style, sym), paint(SKIP, &format!("{id}  {}", c.message)));
        }
        Status::Warn | Status::Fail => {
            let code = c.code.unwrap_or("");
            let _ = writeln!(out, "  {} {id}  {}  {}", paint(style, sym), paint(style, code), c.message);
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
            let _ = writeln!(out, "      explain: consul-doctor explain {code}");
        }
    }
}

fn summary_table(report: &Report) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec!["stage", "pass", "warn", "fail", "skip"]);
    let stages = report.stages();
    for stage in stages {
        let count = |s: Status| report.checks.iter().filter(|c| c.stage == stage && c.status == s).count();
        table.add_row(vec![
            Cell::new(stage),
            Cell::new(count(Status::Pass)).set_alignment(CellAlignment::Right),
            Cell::new(count(Status::Warn)).set_alignment(CellAlignment::Right),
            Cell::new(count(Status::Fail)).set_alignment(CellAlignment::Right),
            Cell::new(count(Status::Skip)).set_alignment(CellAlignment::Right),
        ]);
    }
    format!("{table}\n")
}
