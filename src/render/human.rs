//! Human report: one line per stage (a healthy run fits on one screen), with every note, warning,
//! failure and unjudged check listed under its stage; `--verbose` lists every check and adds the
//! summary table. Coloured by status, wrapped to the terminal width, the root cause named once
//! at the end. Every note/warn/fail line ends with the `consul-doctor explain CODE` pointer.

use std::fmt::Write;

use anstyle::{AnsiColor, Effects, Style};
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};

use super::Options;
use crate::report::{CheckResult, Report, Status};

const PASS: Style = AnsiColor::Green.on_default();
const NOTE: Style = AnsiColor::Cyan.on_default();
const WARN: Style = AnsiColor::Yellow.on_default().effects(Effects::BOLD);
const FAIL: Style = AnsiColor::Red.on_default().effects(Effects::BOLD);
const UNJUDGED: Style = AnsiColor::Yellow.on_default();
const SKIP: Style = Style::new().effects(Effects::DIMMED);
const HEAD: Style = Style::new().effects(Effects::BOLD);

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn mark(c: &CheckResult) -> (&'static str, Style) {
    match c.status {
        Status::Pass => ("✔", PASS),
        Status::Note => ("ℹ", NOTE),
        Status::Warn => ("!", WARN),
        Status::Fail => ("✘", FAIL),
        Status::Skip if c.not_judged => ("?", UNJUDGED),
        Status::Skip => ("-", SKIP),
    }
}

/// `1 warning`, `2 warnings`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn render(report: &Report, opts: &Options) -> String {
    let mut out = String::new();
    let source = report.inputs.iter().find(|i| i.name == "http_addr").map(|i| i.source.clone()).unwrap_or_default();
    let head = format!("{} · checking {} ({source})", report.tool.version, report.target);
    wrapped(&mut out, &format!("{} ", paint(HEAD, "consul-doctor")), &head, 2, opts.width);
    let given: Vec<String> = report
        .inputs
        .iter()
        .filter(|i| i.name != "http_addr" && i.source != "default")
        .map(|i| format!("{} {} ({})", i.name, i.value, i.source))
        .collect();
    if !given.is_empty() {
        wrapped(&mut out, "", &format!("inputs: {}", given.join(" · ")), 2, opts.width);
    }
    let a = &report.agent;
    if let Some(v) = &a.version {
        let text = format!(
            "Consul {v} {} · node {} · datacenter {}{}",
            a.mode.as_deref().unwrap_or(""),
            a.node.as_deref().unwrap_or("?"),
            a.datacenter.as_deref().unwrap_or("?"),
            a.leader.as_deref().map(|l| format!(" · leader {l}")).unwrap_or_default()
        );
        wrapped(&mut out, "agent: ", &text, 2, opts.width);
    }
    out.push('\n');
    if opts.verbose {
        every_check(&mut out, report, opts);
        out.push('\n');
        out.push_str(&summary_table(report));
    } else {
        by_stage(&mut out, report, opts);
    }
    let (ids, rules) = crate::report::read_grants(&report.checks);
    if !rules.is_empty() {
        out.push('\n');
        let text = format!(
            "not judged for lack of read permission: {}; the smallest read-only grant that lets the doctor see them:",
            ids.join(", ")
        );
        let mark = format!("{} ", paint(UNJUDGED, "?"));
        if opts.width.is_some() {
            // Each rule whole on its own line, to paste into a policy.
            wrapped(&mut out, &mark, &text, 2, opts.width);
            for rule in &rules {
                let _ = writeln!(out, "    {rule}");
            }
        } else {
            wrapped(&mut out, &mark, &format!("{text} {}", rules.join(" ")), 2, None);
        }
    }
    out.push('\n');
    match &report.root_cause {
        Some(rc) => {
            let title =
                report.checks.iter().find(|c| c.id == rc.check && c.code == Some(rc.code)).and_then(|c| c.title);
            let text = format!("{} ({}){}", rc.code, rc.check, title.map(|t| format!(": {t}")).unwrap_or_default());
            wrapped(&mut out, &format!("{} ", paint(FAIL, "Root cause:")), &text, 12, opts.width);
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
    let mut parts =
        vec![format!("{} passed", s.pass), count(s.warn, "warning", "warnings"), format!("{} failed", s.fail)];
    if s.note > 0 {
        parts.push(count(s.note, "note", "notes"));
    }
    let unjudged = report.checks.iter().filter(|c| c.status == Status::Skip && c.not_judged).count();
    parts.push(format!("{} skipped", s.skip - unjudged));
    if unjudged > 0 {
        parts.push(format!("{unjudged} not judged"));
    }
    let result = format!(
        "({}) in {} ms{}",
        parts.join(", "),
        report.elapsed_ms,
        if report.attempts > 1 { format!(" (attempt {})", report.attempts) } else { String::new() }
    );
    wrapped(&mut out, &format!("Result: {} ", paint(style, word)), &result, 8, opts.width);
    out
}

/// One line per stage; below it, every check that is not a plain pass or a plain skip.
fn by_stage(out: &mut String, report: &Report, opts: &Options) {
    let stages = report.stages();
    let name_width = stages.iter().map(|s| s.len()).max().unwrap_or(8);
    let id_width = report.checks.iter().filter(|c| shown_alone(c)).map(|c| c.id.len()).max().unwrap_or(10);
    for stage in stages {
        let checks: Vec<&CheckResult> = report.checks.iter().filter(|c| c.stage == stage).collect();
        // A stage's mark: its worst finding; a plain skip beside passes does not darken it.
        let worst = checks.iter().map(|c| c.status).filter(|s| *s != Status::Skip).max().unwrap_or(Status::Skip);
        let blocker = checks.first().and_then(|c| c.blocked_by);
        let all_blocked =
            blocker.is_some() && checks.iter().all(|c| c.status == Status::Skip && c.blocked_by == blocker);
        let name = format!("{stage:<name_width$}");
        if all_blocked {
            let _ = writeln!(
                out,
                "{} {}",
                paint(SKIP, "-"),
                paint(SKIP, &format!("{name}  skipped: blocked by {}", blocker.unwrap_or("")))
            );
            continue;
        }
        let unjudged = checks.iter().any(|c| c.status == Status::Skip && c.not_judged);
        let (sym, style) = match worst {
            Status::Fail => ("✘", FAIL),
            Status::Warn => ("!", WARN),
            _ if unjudged => ("?", UNJUDGED),
            Status::Note => ("ℹ", NOTE),
            Status::Pass => ("✔", PASS),
            Status::Skip => ("-", SKIP),
        };
        let tally = tally(&checks);
        let _ = writeln!(out, "{} {}  {tally}", paint(style, sym), paint(HEAD, &name));
        for c in checks.into_iter().filter(|c| shown_alone(c)) {
            line(out, c, id_width, 2, opts.width, false);
        }
    }
}

/// Checks that get their own line in the short report.
fn shown_alone(c: &CheckResult) -> bool {
    match c.status {
        Status::Pass => false,
        Status::Skip => c.not_judged,
        _ => true,
    }
}

fn tally(checks: &[&CheckResult]) -> String {
    let n = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let mut parts = Vec::new();
    if n(Status::Pass) > 0 {
        parts.push(format!("{} passed", n(Status::Pass)));
    }
    for (s, one, many) in
        [(Status::Fail, "failed", "failed"), (Status::Warn, "warning", "warnings"), (Status::Note, "note", "notes")]
    {
        if n(s) > 0 {
            parts.push(count(n(s), one, many));
        }
    }
    let unjudged = checks.iter().filter(|c| c.status == Status::Skip && c.not_judged).count();
    if unjudged > 0 {
        parts.push(format!("{unjudged} not judged"));
    }
    let blocked = checks.iter().filter(|c| c.status == Status::Skip && c.blocked_by.is_some()).count();
    if blocked > 0 {
        parts.push(format!("{blocked} blocked"));
    }
    let skipped = n(Status::Skip) - unjudged - blocked;
    if skipped > 0 {
        parts.push(format!("{skipped} not applicable"));
    }
    parts.join(", ")
}

fn every_check(out: &mut String, report: &Report, opts: &Options) {
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(10);
    for (n, stage) in report.stages().into_iter().enumerate() {
        let checks: Vec<&CheckResult> = report.checks.iter().filter(|c| c.stage == stage).collect();
        if n > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", paint(HEAD, stage));
        for c in checks {
            line(out, c, width, 2, opts.width, true);
        }
    }
}

fn line(out: &mut String, c: &CheckResult, width: usize, indent: usize, cols: Option<usize>, verbose: bool) {
    let (sym, style) = mark(c);
    let pad = " ".repeat(indent);
    let id = format!("{:<width$}", c.id);
    // Under the message column while that leaves room for a sentence; on a narrow terminal
    // just under the mark, so a UUID or a path still fits.
    let hang = match cols {
        Some(cols) if cols < indent + 2 + width + 2 + MIN_TEXT => indent + 4,
        _ => indent + 2 + width + 2,
    };
    match c.status {
        Status::Pass => wrapped(out, &format!("{pad}{} {id}  ", paint(style, sym)), &c.message, hang, cols),
        Status::Skip => {
            let text = if c.not_judged { format!("not judged: {}", c.message) } else { c.message.clone() };
            let painted = if c.not_judged { text } else { paint(SKIP, &text) };
            wrapped(out, &format!("{pad}{} {id}  ", paint(style, sym)), &painted, hang, cols)
        }
        Status::Note if !verbose => {
            // Advice takes one line; its fix is in the document and the verbose report.
            let code = c.code.unwrap_or("");
            let ignored = if c.ignored { " (ignored with --ignore)" } else { "" };
            wrapped(
                out,
                &format!("{pad}{} {id}  {}  ", paint(style, sym), paint(style, code)),
                &format!("{}{ignored} (consul-doctor explain {code})", c.message),
                hang,
                cols,
            );
        }
        Status::Note | Status::Warn | Status::Fail => {
            let code = c.code.unwrap_or("");
            let ignored = if c.ignored { " (ignored with --ignore)" } else { "" };
            wrapped(
                out,
                &format!("{pad}{} {id}  {}  ", paint(style, sym), paint(style, code)),
                &format!("{}{ignored}", c.message),
                hang,
                cols,
            );
            let sub = " ".repeat(indent + 4);
            if let Some(fix) = &c.fix {
                fix_lines(out, &format!("{sub}fix: "), fix, indent + 9, cols);
            }
            let _ = writeln!(out, "{sub}explain: consul-doctor explain {code}");
        }
    }
}

/// Fewest columns a wrapped line keeps for its text before the hanging indent moves left.
const MIN_TEXT: usize = 44;

/// A fix: its prose wrapped like any text, every command in it on a line of its own, whole (a
/// command broken across lines cannot be pasted). Without a terminal width the fix stays one
/// line, as files and pipes keep lines.
pub fn fix_lines(out: &mut String, prefix: &str, fix: &str, hang: usize, cols: Option<usize>) {
    if cols.is_none() {
        wrapped(out, prefix, fix, hang, cols);
        return;
    }
    let pad = " ".repeat(hang);
    let mut first = true;
    for (is_command, part) in split_commands(fix) {
        // The punctuation that ended a command starts the next line of prose: drop it.
        // Backticks around a command go with it (it has a line of its own).
        // So do the parentheses of a remark that is just the command: "the log (consul monitor)".
        let part =
            if first { part.trim() } else { part.trim().trim_start_matches([',', ';', '.', '`', ')']).trim_start() };
        let part = if is_command { part } else { part.trim_end_matches(['`', '(']).trim_end() };
        if part.is_empty() {
            continue;
        }
        if is_command {
            if first {
                let _ = writeln!(out, "{}", prefix.trim_end());
            }
            let _ = writeln!(out, "{pad}{part}");
        } else if first {
            wrapped(out, prefix, part, hang, cols);
        } else {
            wrapped(out, &pad, part, hang, cols);
        }
        first = false;
    }
}

/// `text` cut into prose and the shell commands in it (`consul …`, `curl …`, `ss -…`, with any
/// `NAME=value` environment in front), in order. A command runs to the end of the text, to a
/// `,` `;` or `.` that ends a word outside quotes, to a `)` it did not open, to a word opening
/// a parenthesis (a remark), or to a backtick.
pub fn split_commands(text: &str) -> Vec<(bool, &str)> {
    let mut parts = Vec::new();
    let mut prose_from = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        let boundary = i == 0 || matches!(bytes[i - 1], b' ' | b'(' | b'`' | b'\n');
        if !boundary || !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let Some(len) = command_at(&text[i..]) else {
            i += 1;
            continue;
        };
        if prose_from < i {
            parts.push((false, &text[prose_from..i]));
        }
        parts.push((true, text[i..i + len].trim_end()));
        i += len;
        prose_from = i;
    }
    if prose_from < text.len() {
        parts.push((false, &text[prose_from..]));
    }
    parts
}

/// The commands of the Consul CLI (`consul --help`, 1.8 and newer), but `agent`: "consul agent …"
/// in a fix names how the agent runs, not a command to paste.
const CONSUL_COMMANDS: &[&str] = &[
    "acl",
    "catalog",
    "config",
    "connect",
    "debug",
    "event",
    "exec",
    "force-leave",
    "info",
    "intention",
    "join",
    "keygen",
    "keyring",
    "kv",
    "leave",
    "lock",
    "login",
    "logout",
    "maint",
    "members",
    "monitor",
    "operator",
    "reload",
    "rtt",
    "services",
    "snapshot",
    "tls",
    "validate",
    "version",
    "watch",
];

/// Words that end a command written inside a sentence (none is an argument of the commands
/// the fixes give; quoted values and `<placeholders>` are not looked at).
const PROSE: &[&str] = &["and", "or", "to", "for", "on", "then", "shows", "lists", "with", "/", "if", "when"];

/// The length of the command that starts `text`, if one does.
fn command_at(text: &str) -> Option<usize> {
    let mut words = text.split(' ');
    let mut program = words.next()?;
    while program
        .split_once('=')
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    {
        program = words.next()?;
    }
    let next = words.next()?.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
    let command = match program {
        "consul" => CONSUL_COMMANDS.contains(&next),
        "curl" => next.starts_with('-') || next.starts_with("http") || next.starts_with('"'),
        "ss" | "journalctl" => next.starts_with('-'),
        _ => false,
    };
    if !command {
        return None;
    }
    let (mut quote, mut depth) = (None::<u8>, 0usize);
    let b = text.as_bytes();
    let ends_word = |at: usize| at + 1 >= b.len() || b[at + 1] == b' ';
    for (at, &c) in b.iter().enumerate() {
        // A word of prose after the arguments ends the command: "consul members -wan shows …".
        if quote.is_none() && c == b' ' {
            let word = text[at + 1..].split(' ').next().unwrap_or("");
            if PROSE.contains(&word) {
                return Some(at);
            }
        }
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(c),
            (None, b'<') => quote = Some(b'>'),
            (None, b'(') if at > 0 && b[at - 1] == b' ' => return Some(at),
            (None, b'(') => depth += 1,
            (None, b')') if depth == 0 => return Some(at),
            (None, b')') => depth -= 1,
            (None, b'`') => return Some(at),
            (None, b',' | b';' | b'.') if ends_word(at) => return Some(at),
            _ => {}
        }
    }
    Some(text.len())
}

/// Writes `prefix` + `text`, wrapping `text` at word boundaries to `cols` columns with later
/// lines indented by `hang`; no wrapping without a terminal width (files and pipes keep lines).
pub fn wrapped(out: &mut String, prefix: &str, text: &str, hang: usize, cols: Option<usize>) {
    let Some(cols) = cols else {
        let _ = writeln!(out, "{prefix}{text}");
        return;
    };
    let mut used = visible_len(prefix);
    out.push_str(prefix);
    let mut at_line_start = true;
    for word in text.split(' ') {
        let len = visible_len(word);
        if !at_line_start && used + 1 + len > cols && used > hang {
            out.push('\n');
            out.push_str(&" ".repeat(hang));
            used = hang;
            at_line_start = true;
        }
        if !at_line_start {
            out.push(' ');
            used += 1;
        }
        out.push_str(word);
        used += len;
        at_line_start = false;
    }
    out.push('\n');
}

/// Display width of text without ANSI escapes (one column per char).
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_esc = false;
    for ch in s.chars() {
        match (in_esc, ch) {
            (false, '\u{1b}') => in_esc = true,
            (true, 'm') => in_esc = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

fn summary_table(report: &Report) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec!["stage", "pass", "note", "warn", "fail", "skip"]);
    let stages = report.stages();
    for stage in stages {
        let count = |s: Status| report.checks.iter().filter(|c| c.stage == stage && c.status == s).count();
        table.add_row(vec![
            Cell::new(stage),
            Cell::new(count(Status::Pass)).set_alignment(CellAlignment::Right),
            Cell::new(count(Status::Note)).set_alignment(CellAlignment::Right),
            Cell::new(count(Status::Warn)).set_alignment(CellAlignment::Right),
            Cell::new(count(Status::Fail)).set_alignment(CellAlignment::Right),
            Cell::new(count(Status::Skip)).set_alignment(CellAlignment::Right),
        ]);
    }
    format!("{table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_word_boundaries_with_a_hanging_indent() {
        let mut out = String::new();
        wrapped(&mut out, "  ! id  ", "alpha beta gamma delta epsilon zeta eta theta iota kappa", 8, Some(30));
        for l in out.lines() {
            assert!(visible_len(l) <= 30, "{l:?} too long");
        }
        assert!(out.lines().count() > 1);
        assert!(out.lines().skip(1).all(|l| l.starts_with("        ") && !l[8..].starts_with(' ')));
        let mut flat = String::new();
        wrapped(&mut flat, "x ", "a b c", 2, None);
        assert_eq!(flat, "x a b c\n");
    }

    #[test]
    fn commands_are_cut_out_of_a_fix_whole() {
        let fix = "grant it (as an operator): CONSUL_HTTP_ADDR=http://127.0.0.1:1 consul acl policy create -name w -rules 'service \"w\" { policy = \"write\" }', then consul acl token update -id 9b -merge-policies (or create a token with -service-identity w)";
        let parts = split_commands(fix);
        let commands: Vec<&str> = parts.iter().filter(|(c, _)| *c).map(|(_, t)| *t).collect();
        assert_eq!(
            commands,
            vec![
                "CONSUL_HTTP_ADDR=http://127.0.0.1:1 consul acl policy create -name w -rules 'service \"w\" { policy = \"write\" }'",
                "consul acl token update -id 9b -merge-policies"
            ]
        );
        let parts = split_commands("read the log (consul monitor -log-level=debug); then `consul reload`. Done");
        let commands: Vec<&str> = parts.iter().filter(|(c, _)| *c).map(|(_, t)| *t).collect();
        assert_eq!(commands, vec!["consul monitor -log-level=debug", "consul reload"]);
        assert!(split_commands("the consul_doctor meta and name.service.consul, consul or curl")
            .iter()
            .all(|(c, _)| !c));
        let prose = "check with consul members and consul operator raft list-peers on a server; consul force-leave <node> for a node that is gone; consul acl set-agent-token default <token with service_prefix> now";
        assert_eq!(
            commands_of(prose),
            vec![
                "consul members",
                "consul operator raft list-peers",
                "consul force-leave <node>",
                "consul acl set-agent-token default <token with service_prefix> now"
            ]
        );
        let mut out = String::new();
        fix_lines(&mut out, "    fix: ", fix, 9, Some(60));
        assert!(out.lines().any(|l| l.trim() == commands_of(fix)[0]), "{out}");
    }

    fn commands_of(fix: &str) -> Vec<&str> {
        split_commands(fix).into_iter().filter(|(c, _)| *c).map(|(_, t)| t).collect()
    }

    #[test]
    fn counts_are_plural_aware() {
        assert_eq!(count(1, "warning", "warnings"), "1 warning");
        assert_eq!(count(0, "warning", "warnings"), "0 warnings");
    }
}
