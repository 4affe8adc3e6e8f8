//! The man pages in man/ are generated from the clap definition (plus the sections clap has no
//! notion of: ENVIRONMENT, EXIT STATUS, EXAMPLES, SEE ALSO); this test fails when they are
//! stale. Regenerate them with: UPDATE_MAN=1 cargo test --test man

use std::io::Write;
use std::path::Path;

use clap::Command;

/// Text made safe for roff: backslashes, hyphens and a leading control character.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// SYNOPSIS with each option's value placeholder, which clap_mangen leaves out.
fn synopsis(cmd: &Command, page: &str) -> String {
    // The command as typed: `consul-doctor check`, though its page is consul-doctor-check(1).
    let typed = page.replacen("consul-doctor-", "consul-doctor ", 1);
    let mut parts = vec![format!("\\fB{}\\fR", roff(&typed))];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let repeat = matches!(arg.get_action(), clap::ArgAction::Append);
        let values: String = match (arg.get_action().takes_values(), arg.get_value_names()) {
            (true, Some(names)) => names.iter().map(|n| format!(" \\fI<{}>\\fR", roff(n))).collect(),
            (true, None) => format!(" \\fI<{}>\\fR", roff(&arg.get_id().as_str().to_uppercase())),
            _ => String::new(),
        };
        let dots = if repeat { "...".to_string() } else { String::new() };
        if arg.is_positional() {
            let name = arg.get_value_names().and_then(|n| n.first()).map(|n| n.to_string()).unwrap_or_default();
            parts.push(format!("\\fI<{}>\\fR{dots}", roff(&name)));
            continue;
        }
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR|\\fB\\-\\-{}\\fR", roff(l)),
            (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", roff(l)),
            (Some(s), None) => format!("\\fB\\-{s}\\fR"),
            (None, None) => continue,
        };
        parts.push(format!("[{flag}{values}]{dots}"));
    }
    if cmd.has_subcommands() {
        parts.push("\\fI<COMMAND>\\fR".into());
    }
    format!(".SH SYNOPSIS\n{}\n", parts.join(" "))
}

/// What each page shows under EXAMPLES and EXIT STATUS.
fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "consul-doctor" | "consul-doctor-check" => &[
            ("consul-doctor check", "Diagnose the local agent at 127.0.0.1:8500 with the token from CONSUL_HTTP_TOKEN."),
            (
                "consul-doctor check --http-addr https://consul.example:8501 --ca-file ca.pem --service-file web.json",
                "Diagnose a TLS agent and whether web.json can register there.",
            ),
            (
                "consul-doctor check --wait 60s --deadline 90s --format junit -o consul-doctor.xml",
                "In CI right after the agents start: retry until clean for up to 60 s, JUnit report to a file, a summary line on stderr.",
            ),
            ("consul-doctor explain ACL-002", "Show what a code means and how to fix it."),
        ],
        "consul-doctor-explain" => &[("consul-doctor explain acl-002", "Show the document of ACL-002 (loose spellings are accepted).")],
        "consul-doctor-codes" => &[("consul-doctor codes --format json", "Every code with its stage, severity and title, as JSON.")],
        "consul-doctor-wait" => &[
            ("consul-doctor wait --service web --deadline 2m", "Deploy gate: return once at least one instance of web passes every check, or explain why not after two minutes."),
            ("consul-doctor wait --service web --id web-1 --gone --deadline 30s", "Shutdown hook: return once web-1 has left the catalog."),
        ],
        "consul-doctor-scan" => &[
            ("consul-doctor scan", "Every service in the catalog: stale, duplicate, unhealthy and unreachable registrations."),
            ("consul-doctor scan --service payments --expect payments=3 --prune --yes", "Remove what is safe to remove (failed or left nodes, critical catalog-only entries) of payments."),
        ],
        "consul-doctor-completions" => &[
            ("consul-doctor completions bash > /etc/bash_completion.d/consul-doctor", "Install bash completion system-wide."),
            ("consul-doctor completions zsh > \"${fpath[1]}/_consul-doctor\"", "Install zsh completion."),
        ],
        _ => &[],
    }
}

fn exit_status(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "consul-doctor" | "consul-doctor-check" => &[
            ("0", "No check failed (warnings allowed unless \\-\\-fail\\-on warn)."),
            ("1", "At least one check failed, or warned with \\-\\-fail\\-on warn."),
            ("2", "The doctor could not run as asked: a usage error, or the report could not be written."),
            ("130", "Interrupted (SIGINT)."),
        ],
        "consul-doctor-explain" => &[("0", "The code was found."), ("2", "No such code (near codes are suggested).")],
        "consul-doctor-wait" => &[
            ("0", "The condition holds."),
            ("1", "The deadline passed first (the report says why, root cause first)."),
            ("2", "A usage error, or the report could not be written."),
            ("130", "Interrupted (SIGINT)."),
        ],
        "consul-doctor-scan" => &[
            ("0", "No finding failed (warnings allowed unless \\-\\-fail\\-on warn)."),
            ("1", "At least one finding failed, or warned with \\-\\-fail\\-on warn, or a prune step failed."),
            ("2", "A usage error, or the report could not be written."),
            ("130", "Interrupted (SIGINT)."),
        ],
        _ => &[("0", "Success."), ("2", "A usage error, or the output could not be written.")],
    }
}

fn section_tp(out: &mut Vec<u8>, title: &str, items: &[(String, String)]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, ".SH \"{title}\"");
    for (k, v) in items {
        let _ = writeln!(out, ".TP\n{k}\n{v}");
    }
}

/// Environment variables of a page: every flag's fallback, and those read besides.
fn environment(cmd: &Command, all: bool) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut add = |c: &Command| {
        for arg in c.get_arguments() {
            if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
                let name = env.to_string_lossy().into_owned();
                if !vars.iter().any(|(n, _)| *n == format!("\\fB{}\\fR", roff(&name))) {
                    vars.push((
                        format!("\\fB{}\\fR", roff(&name)),
                        format!("The same as \\fB\\-\\-{}\\fR.", roff(long)),
                    ));
                }
            }
        }
    };
    add(cmd);
    if all {
        cmd.get_subcommands().for_each(&mut add);
    }
    for (name, what) in consul_doctor::cli::ENVIRONMENT {
        vars.push((format!("\\fB{}\\fR", roff(name)), roff(what)));
    }
    vars
}

fn render(cmd: Command, page: &str, subpages: &[(String, String)], see_also: &[String]) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    out.extend(synopsis(&cmd, page).into_bytes());
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    // Only subcommands that have a page: clap's `help` has none.
    section_tp(&mut out, "SUBCOMMANDS", subpages);
    let is_check = page == "consul-doctor" || page == "consul-doctor-check";
    if is_check {
        section_tp(&mut out, "ENVIRONMENT", &environment(&cmd, page == "consul-doctor"));
    }
    let status: Vec<(String, String)> = exit_status(page).iter().map(|(c, w)| (c.to_string(), w.to_string())).collect();
    section_tp(&mut out, "EXIT STATUS", &status);
    let ex: Vec<(String, String)> =
        examples(page).iter().map(|(c, w)| (format!("\\fB{}\\fR", roff(c)), roff(w))).collect();
    section_tp(&mut out, "EXAMPLES", &ex);
    man.render_version_section(&mut out).unwrap();
    let refs: Vec<String> = see_also.iter().map(|p| format!("\\fB{}\\fR(1)", roff(p))).collect();
    if !refs.is_empty() {
        let _ = writeln!(out, ".SH \"SEE ALSO\"\n{}", refs.join(", "));
    }
    out
}

/// Every page: file name and content.
fn pages() -> Vec<(String, Vec<u8>)> {
    let root = consul_doctor::cli::command();
    let subs: Vec<&Command> = root.get_subcommands().filter(|s| s.get_name() != "help").collect();
    let names: Vec<String> = subs.iter().map(|s| format!("consul-doctor-{}", s.get_name())).collect();
    let subpages: Vec<(String, String)> = subs
        .iter()
        .zip(&names)
        .map(|(s, n)| {
            (format!("\\fB{}\\fR(1)", roff(n)), roff(&s.get_about().map(|a| a.to_string()).unwrap_or_default()))
        })
        .collect();
    let mut pages = vec![("consul-doctor.1".to_string(), render(root.clone(), "consul-doctor", &subpages, &names))];
    for (sub, name) in subs.iter().zip(&names) {
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        let cmd = (*sub).clone().name(leaked).version(env!("CARGO_PKG_VERSION"));
        let mut see: Vec<String> = vec!["consul-doctor".into()];
        if name != "consul-doctor-check" {
            see.push("consul-doctor-check".into());
        }
        pages.push((format!("{name}.1"), render(cmd, name, &[], &see)));
    }
    pages
}

#[test]
fn man_pages_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = pages();
    let update = std::env::var_os("UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for (file, content) in &pages {
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            stale.push(file.clone());
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(pages.iter().any(|(f, _)| *f == name), "man/{name} belongs to no command; delete it");
    }
    assert!(stale.is_empty(), "stale man pages {stale:?}: run UPDATE_MAN=1 cargo test --test man");
}

fn page(name: &str) -> String {
    let (_, content) = pages().into_iter().find(|(f, _)| f == name).unwrap_or_else(|| panic!("no page {name}"));
    String::from_utf8(content).unwrap()
}

#[test]
fn every_page_has_the_sections_an_operator_looks_for() {
    for (file, content) in pages() {
        let text = String::from_utf8(content).unwrap();
        for section in [".SH SYNOPSIS", ".SH \"EXIT STATUS\"", ".SH \"EXAMPLES\"", ".SH \"SEE ALSO\""] {
            assert!(text.contains(section), "{file} lacks {section}");
        }
        // Every page referred to exists.
        for (i, _) in text.match_indices("(1)") {
            let start = text[..i].rfind("\\fB").expect("a bold page name before (1)") + 3;
            let name = text[start..i].trim_end_matches("\\fR").replace("\\-", "-");
            assert!(
                pages().iter().any(|(f, _)| *f == format!("{name}.1")),
                "{file} refers to {name}(1), which does not exist"
            );
        }
    }
    let check = page("consul-doctor-check.1");
    assert!(check.contains("[\\fB\\-\\-http\\-addr\\fR \\fI<ADDR>\\fR]"), "no value placeholder in the synopsis");
    assert!(check.contains("[\\fB\\-\\-service\\-file\\fR \\fI<PATH>\\fR]..."), "repeatable flags are marked");
    assert!(page("consul-doctor-explain.1").contains("\\fI<CODE>\\fR"));
    assert!(
        check.contains(".SH SYNOPSIS\n\\fBconsul\\-doctor check\\fR ["),
        "the synopsis is the command as typed: {}",
        &check[check.find(".SH SYNOPSIS").unwrap()..][..60]
    );
    for code in ["0", "1", "2", "130"] {
        assert!(check.contains(&format!(".TP\n{code}\n")), "exit status {code} undocumented");
    }
}

#[test]
fn environment_lists_every_variable_the_program_reads() {
    let root = page("consul-doctor.1");
    let env = &root[root.find(".SH \"ENVIRONMENT\"").expect("ENVIRONMENT section")..];
    // Every CONSUL_* name in the sources, and every name given to std::env::var / env_var.
    let mut names = std::collections::BTreeSet::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split('"').skip(1).step_by(2) {
                if piece.starts_with("CONSUL_") && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    names.insert(piece.to_string());
                }
            }
            for marker in ["env::var(\"", "env_var(\""] {
                for (i, _) in text.match_indices(marker) {
                    let rest = &text[i + marker.len()..];
                    names.insert(rest[..rest.find('"').unwrap()].to_string());
                }
            }
        }
    }
    names.remove("COMPUTERNAME"); // Windows only, for the JUnit hostname
    for name in ["HTTP_PROXY", "NO_COLOR", "CLICOLOR_FORCE"] {
        names.insert(name.to_string());
    }
    for name in &names {
        assert!(env.contains(&roff(name)), "{name} is read but not in ENVIRONMENT");
    }
    let check = page("consul-doctor-check.1");
    assert!(check.contains(".SH \"ENVIRONMENT\""));
}

#[test]
fn check_help_names_every_stage_of_the_table() {
    let mut cmd = consul_doctor::cli::command();
    let help = cmd.find_subcommand_mut("check").unwrap().render_long_help().to_string();
    for stage in consul_doctor::diagnosis::pipeline::STAGES {
        assert!(help.contains(stage.name), "check --help does not name the {} stage", stage.name);
    }
    assert!(help.contains("--deadline bounds the whole invocation"), "{help}");
}
