//! The human reports as an operator sees them: in a real terminal (a pseudo-terminal from
//! `script`), at 100 and at 60 columns. Text wraps to the width; every command in a fix stays
//! whole on a line of its own, so it can be pasted.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

/// Runs the doctor in a pseudo-terminal of `cols` columns; its output, without carriage returns.
fn in_terminal(args: &[&str], cols: usize) -> String {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_consul-doctor"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let out = std::process::Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .env("COLUMNS", cols.to_string())
        .env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CONSUL_HTTP_TOKEN")
        .env_remove("CONSUL_HTTP_TOKEN_FILE")
        .output()
        .expect("script(1) from util-linux");
    // What the terminal shows: a line redrawn after a carriage return (the progress line on
    // standard error) shows only its last drawing. Each drawing must fit, or the terminal wraps
    // it and clearing it leaves its first part on the screen.
    let text = String::from_utf8_lossy(&out.stdout).replace("\x1b[2K", "");
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        let Some((drawings, _)) = line.rsplit_once('\r') else { continue };
        for drawing in drawings.split('\r') {
            let visible: String = strip_styles(drawing);
            assert!(visible.chars().count() <= cols, "a progress line wider than {cols} columns: {visible:?}");
        }
    }
    text.lines().map(|l| l.trim_end_matches('\r').rsplit('\r').next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// Text without ANSI style sequences.
fn strip_styles(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, c) if c.is_ascii_alphabetic() => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// The commands in every fix of a JSON report's results.
fn commands(fixes: &[&Value]) -> Vec<String> {
    fixes
        .iter()
        .filter_map(|f| f.as_str())
        .flat_map(|f| {
            consul_doctor::render::human::split_commands(f)
                .into_iter()
                .filter(|(c, _)| *c)
                .map(|(_, t)| t.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every command is one whole line; every other line fits the width.
fn assert_laid_out(text: &str, cols: usize, commands: &[String]) {
    assert!(!commands.is_empty(), "no command to look for:\n{text}");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for c in commands {
        assert!(
            lines.contains(&c.as_str()),
            "command {c:?} is not whole on a line of its own at {cols} columns:\n{text}"
        );
    }
    for line in text.lines() {
        let is_command = commands.iter().any(|c| c == line.trim());
        assert!(is_command || line.chars().count() <= cols, "wider than {cols} columns: {line:?}\n{text}");
    }
}

#[test]
fn check_fixes_keep_their_commands_whole_at_100_and_60_columns() {
    let a = acl();
    let (_, secret) = a.acl_token("narrow-deploy", r#"service "payments" { policy = "write" }"#, "");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("deploy.token");
    std::fs::write(&token, &secret).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let args = [
        "check",
        "--color",
        "never",
        "--http-addr",
        &a.http_addr(),
        "--token-file",
        token.to_str().unwrap(),
        "--service",
        "web",
    ];
    let (_, json) = check_json(&args[3..], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("ACL-006"), "{json:#}");
    let fixes: Vec<&Value> = json["checks"].as_array().unwrap().iter().map(|c| &c["fix"]).collect();
    let cmds = commands(&fixes);
    assert!(cmds.iter().any(|c| c.contains("consul acl policy create")), "{cmds:?}");
    for cols in [100, 60] {
        let text = in_terminal(&args, cols);
        assert!(text.contains("ACL-006"), "{text}");
        assert_laid_out(&text, cols, &cmds);
        // The read grant's rules, whole, one a line.
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        assert!(lines.contains(&r#"agent_prefix "" { policy = "read" }"#), "{text}");
    }
}

#[test]
fn scan_report_fits_60_columns_with_whole_commands() {
    let a = start("narrow-scan", Spec { dev: true, ..Spec::default() }, true);
    let register = |body: Value| {
        let (st, text) = a.put("/v1/agent/service/register", None, &body.to_string());
        assert_eq!(st, 200, "{text}");
    };
    // One address:port under two IDs (SCN-004, removed on the agent), one without a check.
    register(json!({"Name": "web-frontend-with-a-long-name", "ID": "web-old", "Port": 8080, "Check": {"TTL": "10m"}}));
    register(json!({"Name": "web-frontend-with-a-long-name", "ID": "web-new", "Port": 8080, "Check": {"TTL": "10m"}}));
    let (st, _) = a.put("/v1/agent/check/pass/service:web-new", None, "");
    assert_eq!(st, 200);
    register(json!({"Name": "nocheck", "ID": "nocheck-1", "Port": 9001}));
    wait_until(
        Duration::from_secs(30),
        || a.get("/v1/health/service/web-frontend-with-a-long-name", None).1.contains("web-new"),
        "synced",
    );
    let run = run_doctor(&["scan", "--format", "json", "--http-addr", &a.http_addr()], &[]);
    let json = run.json();
    let mut fixes: Vec<&Value> = json["findings"].as_array().unwrap().iter().map(|f| &f["fix"]).collect();
    let agent_side: Vec<&Value> =
        json["prune"]["agent_side"].as_array().unwrap().iter().map(|a| &a["command"]).collect();
    assert!(!agent_side.is_empty(), "{json:#}");
    fixes.extend(agent_side.iter().copied());
    let mut cmds = commands(&fixes);
    cmds.extend(agent_side.iter().map(|c| c.as_str().unwrap().to_string()));
    for cols in [100, 60] {
        let text = in_terminal(&["scan", "--color", "never", "--http-addr", &a.http_addr()], cols);
        assert!(text.contains("SCN-004"), "{text}");
        assert_laid_out(&text, cols, &cmds);
    }
}

#[test]
fn wait_reports_fit_60_columns_with_whole_commands() {
    let a = dev();
    let (st, text) = a.put(
        "/v1/agent/service/register",
        None,
        r#"{"Name": "narrow-wait-service", "ID": "narrow-wait-1", "Port": 7601, "Tags": ["canary", "v2"]}"#,
    );
    assert_eq!(st, 200, "{text}");
    let met = [
        "wait",
        "--color",
        "never",
        "--http-addr",
        &a.http_addr(),
        "--service",
        "narrow-wait-service",
        "--tag",
        "canary",
        "--tag",
        "v2",
    ];
    let text = in_terminal(&met, 60);
    assert!(text.contains("matching instance(s) passing"), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 60, "wider than 60 columns: {line:?}\n{text}");
    }
    // At the deadline: the diagnosis, its fix commands whole.
    let args = [
        "wait",
        "--http-addr",
        &a.http_addr(),
        "--service",
        "narrow-wait-service",
        "--tag",
        "nope",
        "--deadline",
        "1s",
    ];
    let run = run_doctor(&[&args[..], &["--format", "json"]].concat(), &[]);
    let json = run.json();
    let fixes: Vec<&Value> = json["diagnosis"]["checks"].as_array().unwrap().iter().map(|c| &c["fix"]).collect();
    let cmds = commands(&fixes);
    let text = in_terminal(&[&args[..], &["--color", "never"]].concat(), 60);
    assert!(text.contains("WAIT-001"), "{text}");
    assert_laid_out(&text, 60, &cmds);
    a.put("/v1/agent/service/deregister/narrow-wait-1", None, "");
}
