//! The binary without any agent: config findings, explain/codes, usage errors, and the code
//! catalogue kept in sync with its documents and the tests.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// A port nothing listens on, so network stages stop at TCP-001 and config findings stand out.
fn dead_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn unknown_scheme_is_a_config_failure_that_blocks_every_network_stage() {
    let (run, json) = check_json(&[], &[("CONSUL_HTTP_ADDR", "tcp://127.0.0.1:8500")]);
    assert_root(&run, &json, "CFG-001", &["dns", "tcp", "tls", "api", "leader", "acl", "version"]);
    let msg = result(&json, "config.address")["message"].as_str().unwrap();
    assert!(msg.contains("Unknown protocol scheme: tcp"), "{msg}");
    assert!(msg.contains("env CONSUL_HTTP_ADDR"), "{msg}");
}

#[test]
fn bad_port_is_a_config_failure() {
    let (run, json) = check_json(&["--http-addr", "127.0.0.1:99999"], &[]);
    assert_root(&run, &json, "CFG-001", &["dns"]);
}

#[test]
fn address_without_port_warns_about_port_80() {
    let (_, json) = check_json(&["--http-addr", "127.0.0.1", "--timeout", "1s"], &[]);
    assert_eq!(codes(&json)[0], "CFG-012", "{json:#}");
    assert!(result(&json, "tcp.connect")["message"].as_str().unwrap().contains(":80"));
}

#[test]
fn missing_token_file_fails_like_consul() {
    let (run, json) = check_json(&["--http-addr", &dead_addr()], &[("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token")]);
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-002"));
    assert_eq!(run.code, 1);
}

#[test]
fn token_file_permissions_and_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let loose = dir.path().join("loose");
    std::fs::write(&loose, "6a1b2c3d-0000-0000-0000-000000000001").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, json) = check_json(&["--http-addr", &dead_addr(), "--token-file", loose.to_str().unwrap()], &[]);
    assert_eq!(codes(&json)[0], "CFG-003", "{json:#}");
    assert!(result(&json, "config.token")["message"].as_str().unwrap().contains("0644"));

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, json) = check_json(&["--http-addr", &dead_addr(), "--token-file", empty.to_str().unwrap()], &[]);
    assert_eq!(codes(&json)[0], "CFG-004", "{json:#}");
}

#[test]
fn tls_file_problems() {
    let dir = tempfile::tempdir().unwrap();
    let (run, json) =
        check_json(&["--http-addr", &format!("https://{}", dead_addr()), "--ca-file", "/nonexistent/ca.pem"], &[]);
    assert_root(&run, &json, "CFG-006", &["dns", "tcp"]);

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let (run, json) =
        check_json(&["--http-addr", &format!("https://{}", dead_addr()), "--ca-file", junk.to_str().unwrap()], &[]);
    assert_root(&run, &json, "CFG-007", &["dns"]);

    let (run, json) =
        check_json(&["--http-addr", &format!("https://{}", dead_addr()), "--client-cert", junk.to_str().unwrap()], &[]);
    assert_root(&run, &json, "CFG-008", &["dns"]);
}

#[test]
fn tls_settings_with_a_plain_http_address_warn() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    // Any PEM certificate will do for this check: make one with Consul's own tooling.
    let out = std::process::Command::new(consul_bin())
        .args(["tls", "ca", "create"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::rename(dir.path().join("consul-agent-ca.pem"), &ca).unwrap();
    let (_, json) = check_json(&["--http-addr", &dead_addr(), "--ca-file", ca.to_str().unwrap()], &[]);
    assert_eq!(codes(&json)[0], "CFG-009", "{json:#}");
}

#[test]
fn environment_booleans_and_proxies() {
    let (_, json) = check_json(&["--http-addr", &dead_addr()], &[("CONSUL_HTTP_SSL", "yes")]);
    assert_eq!(codes(&json)[0], "CFG-011", "{json:#}");
    // A proxy applies to a remote name (resolved through a silent test DNS server, so no traffic).
    let d = common::fakedns::FakeDns::records(vec![("consul.lab.test", vec!["127.0.0.1".parse().unwrap()])]);
    let (_, json) = check_json(
        &["--http-addr", &format!("consul.lab.test:{}", free_port()), "--dns-server", &d.addr.to_string()],
        &[("HTTP_PROXY", "http://user:pw@proxy.lab.test:3128")],
    );
    assert_eq!(codes(&json)[0], "CFG-013", "{json:#}");
    let msg = result(&json, "config.environment")["message"].as_str().unwrap();
    assert!(!msg.contains("pw@"), "proxy credentials are hidden: {msg}");
    // Loopback is never proxied, as in Go.
    let (_, json) = check_json(&["--http-addr", &dead_addr()], &[("HTTP_PROXY", "http://proxy.lab.test:3128")]);
    assert!(!codes(&json).contains(&"CFG-013".to_string()));
}

#[test]
fn cleartext_token_to_a_remote_host_warns() {
    let s = common::fault::FaultServer::http(vec![]);
    let d = common::fakedns::FakeDns::records(vec![("consul.lab.test", vec!["127.0.0.1".parse().unwrap()])]);
    let (_, json) = check_json(
        &[
            "--http-addr",
            &format!("consul.lab.test:{}", s.addr.port()),
            "--dns-server",
            &d.addr.to_string(),
            "--token",
            "tok-secret-123456",
        ],
        &[],
    );
    assert_eq!(codes(&json), vec!["TLS-008", "API-001"], "{json:#}");
}

#[test]
fn unix_socket_that_does_not_exist() {
    let (run, json) = check_json(&["--http-addr", "unix:///nonexistent/consul.sock"], &[]);
    assert_root(&run, &json, "TCP-008", &["tls", "api"]);
    assert_eq!(result(&json, "dns.resolve")["status"], "pass");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run_doctor(&["check", "--timeout", "5"], &[]).code, 2, "Go durations need a unit");
    assert_eq!(run_doctor(&["check", "--format", "yaml"], &[]).code, 2);
    assert_eq!(run_doctor(&["check", "--dns-server", "dns.example"], &[]).code, 2);
    assert_eq!(run_doctor(&["frobnicate"], &[]).code, 2);
    let unwritable =
        run_doctor(&["check", "--http-addr", &dead_addr(), "--output", "/nonexistent/dir/report.json"], &[]);
    assert_eq!(unwritable.code, 2, "{}", unwritable.stderr);
}

#[test]
fn output_file_gets_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.xml");
    let run =
        run_doctor(&["check", "--http-addr", &dead_addr(), "--format", "junit", "-o", out.to_str().unwrap()], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    assert!(std::fs::read_to_string(&out).unwrap().contains("<failure type=\"TCP-001\""));
}

#[test]
fn explain_accepts_loose_spellings() {
    for spelling in ["ACL-002", "acl-002", "ACL002", "acl_2"] {
        let run = run_doctor(&["explain", spelling], &[]);
        assert_eq!(run.code, 0, "{spelling}");
        assert!(run.stdout.starts_with("# ACL-002: "), "{spelling}: {}", run.stdout);
    }
}

#[test]
fn explain_unknown_code_suggests_near_ones() {
    let run = run_doctor(&["explain", "ACL-020"], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("similar name"), "{}", run.stderr);
    assert!(run.stderr.contains("ACL-002"), "{}", run.stderr);
}

#[test]
fn explain_says_a_code_does_not_exist_before_suggesting() {
    let run = run_doctor(&["explain", "ACL-999"], &[]);
    assert_eq!(run.code, 2);
    let first = run.stderr.lines().next().unwrap_or("");
    assert_eq!(first, "consul-doctor: code \"ACL-999\" does not exist", "{}", run.stderr);
    assert!(run.stderr.contains("similar name: ACL-0"), "{}", run.stderr);
}

#[test]
fn codes_lists_the_catalogue() {
    let run = run_doctor(&["codes", "--format", "json"], &[]);
    assert_eq!(run.code, 0);
    let v = run.json();
    assert_eq!(v["schema_version"], 1);
    let list = v["codes"].as_array().unwrap();
    assert!(list.iter().any(|c| c["code"] == "TCP-001" && c["stage"] == "tcp" && c["severity"] == "fail"));
    let human = run_doctor(&["codes"], &[]);
    assert!(human.stdout.lines().any(|l| l.starts_with("LDR-001") && l.contains("no leader")));
}

#[test]
fn token_with_a_pasted_newline_or_space() {
    let (run, json) =
        check_json(&["--http-addr", &dead_addr()], &[("CONSUL_HTTP_TOKEN", "6a1b2c3d-0000-4000-8000-000000000001\n")]);
    assert_root(&run, &json, "CFG-034", &["dns", "tcp", "api"]);
    assert!(!run.stdout.contains("6a1b2c3d-0000-4000-8000-000000000001"), "the secret stays hidden");
    let (_, json) = check_json(&["--http-addr", &dead_addr(), "--token", " 6a1b2c3d-0000-4000-8000-000000000001"], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-034"));
}

fn catalogue() -> Vec<serde_json::Value> {
    run_doctor(&["codes", "--format", "json"], &[]).json()["codes"].as_array().unwrap().clone()
}

#[test]
fn every_code_has_a_document_with_the_skeleton_and_no_document_is_orphaned() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let codes: Vec<String> = catalogue().iter().map(|c| c["code"].as_str().unwrap().to_string()).collect();
    for c in catalogue() {
        let code = c["code"].as_str().unwrap();
        let doc = std::fs::read_to_string(root.join("checks").join(format!("{code}.md"))).unwrap();
        assert_eq!(
            doc.lines().next().unwrap(),
            format!("# {code}: {}", c["title"].as_str().unwrap()),
            "{code} heading"
        );
        let sev = c["severity"].as_str().unwrap();
        assert!(
            doc.contains(&format!("Stage: `{}` · Severity: {sev}", c["stage"].as_str().unwrap())),
            "{code} stage/severity line"
        );
        let mut at = 0;
        for h in ["## What it checks", "## Why it matters", "## How to fix", "## Example", "## See also"] {
            let pos = doc[at..].find(h).unwrap_or_else(|| panic!("{code}: missing or misplaced {h}"));
            at += pos + h.len();
        }
        let mark = match sev {
            "fail" => "✘",
            "note" => "ℹ",
            _ => "!",
        };
        assert!(doc.contains(&format!("{mark} ")) && doc.contains(&format!("  {code}  ")), "{code}: example line");
        assert!(doc.contains(&format!("explain: consul-doctor explain {code}")), "{code}: example explain line");
    }
    for entry in std::fs::read_dir(root.join("checks")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let code = name.trim_end_matches(".md");
        assert!(codes.iter().any(|c| c == code), "orphan document checks/{name}");
    }
}

#[test]
fn every_active_code_is_asserted_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut text = String::new();
    for dir in [root.clone(), root.join("lab")] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rs") && p.file_name().unwrap() != "cli.rs" {
                text.push_str(&std::fs::read_to_string(p).unwrap());
            }
        }
    }
    // Unit tests inside src count too (codes a loopback lab cannot produce, such as TCP-003).
    for e in walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")) {
        let src = std::fs::read_to_string(e).unwrap();
        if let Some((_, tests)) = src.split_once("#[cfg(test)]") {
            text.push_str(tests);
        }
    }
    // This file's own assertions count too, except the catalogue test itself.
    let own = std::fs::read_to_string(root.join("cli.rs")).unwrap();
    text.push_str(own.split("fn catalogue()").next().unwrap());
    let missing: Vec<String> = catalogue()
        .iter()
        .filter(|c| !c["retired"].as_bool().unwrap())
        .map(|c| c["code"].as_str().unwrap().to_string())
        .filter(|code| !text.contains(&format!("\"{code}\"")))
        .collect();
    assert!(missing.is_empty(), "codes no test asserts: {missing:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn codes_of_one_stage() {
    let run = run_doctor(&["codes", "--stage", "acl"], &[]);
    assert_eq!(run.code, 0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| l.starts_with("ACL-")), "{}", run.stdout);
    let json = run_doctor(&["codes", "--stage", "health", "--format", "json"], &[]).json();
    let list = json["codes"].as_array().unwrap();
    assert!(
        list.iter().all(|c| c["stage"] == "health")
            && list.iter().any(|c| c["code"] == "HLT-009" && c["severity"] == "note")
    );
    let bad = run_doctor(&["codes", "--stage", "nope"], &[]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("acl"), "{}", bad.stderr);
}

#[test]
fn human_report_wraps_to_the_terminal_width() {
    // `script` gives the doctor a terminal; COLUMNS sets its width.
    let cmd = format!("{} check --color never --http-addr {}", env!("CARGO_BIN_EXE_consul-doctor"), dead_addr());
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("COLUMNS", "60")
        .env_remove("CONSUL_HTTP_ADDR")
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.contains("TCP-001"), "{text}");
    for line in text.lines() {
        // A single word longer than the width may overflow; nothing else does.
        assert!(line.chars().count() <= 60 || !line.trim().contains(' '), "too wide: {line:?}\n{text}");
    }
    // Piped, the same report keeps its long lines.
    let piped = run_doctor(&["check", "--color", "never", "--http-addr", &dead_addr()], &[("COLUMNS", "60")]);
    assert!(piped.stdout.lines().any(|l| l.chars().count() > 60), "{}", piped.stdout);
}

/// Consul's documents write flags with one dash, as Go's flag package reads them.
#[test]
fn consul_style_single_dash_flags_are_the_long_flags() {
    let addr = dead_addr();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "6a1b2c3d-0000-4000-8000-000000000001").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let report = dir.path().join("x.json");
    let run = run_doctor(
        &[
            "check",
            &format!("-http-addr={addr}"),
            "-token-file",
            token.to_str().unwrap(),
            "-service=web",
            "-format=json",
            &format!("-output={}", report.display()),
            "-verbose",
            "-pre-start=true",
            "-timeout",
            "1s",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "a report, not help or a usage error: {}", run.stderr);
    assert!(!dir.path().join("utput=x.json").exists());
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["target"], format!("http://{addr}"), "{json:#}");
    let input = |name: &str| json["inputs"].as_array().unwrap().iter().find(|i| i["name"] == name).cloned();
    assert_eq!(input("token_file").unwrap()["source"], "flag", "{json:#}");
    assert_eq!(input("service").unwrap()["value"], "web");
    assert_eq!(input("pre_start").unwrap()["value"], "true");
    assert_eq!(root_cause(&json).as_deref(), Some("TCP-001"));
    assert!(run.stderr.contains("debug:"), "-verbose logs: {}", run.stderr);
    // `-flag value` for wait, and the exact short flags keep their meaning.
    let wait = run_doctor(&["wait", "-service", "web", "-http-addr", &addr, "-deadline=1s", "-format", "json"], &[]);
    assert_eq!(wait.code, 1, "{}", wait.stderr);
    assert_eq!(wait.json()["condition"]["service"], "web");
    let short = run_doctor(&["check", "--http-addr", &addr, "-o", report.to_str().unwrap(), "-v"], &[]);
    assert_eq!(short.code, 1, "{}", short.stderr);
    // A boolean written -flag=false is off, as in Go.
    let (_, json) = check_json(&["--http-addr", &addr, "-pre-start=false"], &[]);
    assert!(!json["inputs"].as_array().unwrap().iter().any(|i| i["name"] == "pre_start"), "{json:#}");
    // A misspelt single-dash flag is named as the long flag it resembles, never read as -h.
    let typo = run_doctor(&["check", "-htt-addr=127.0.0.1:1"], &[]);
    assert_eq!(typo.code, 2);
    assert!(typo.stderr.contains("'--htt-addr'") && typo.stderr.contains("--http-addr"), "{}", typo.stderr);
}

/// Help or version with any other argument is a usage error: a deploy gate must never pass.
#[test]
fn help_with_other_arguments_exits_2_and_alone_exits_0() {
    for args in [
        &["check", "--http-addr", "127.0.0.1:1", "--help"][..],
        &["wait", "--service", "web", "-h"],
        &["check", "-vh"],
        &["scan", "--service", "web", "--help"],
        &["--version", "check"],
        &["help", "check", "--service", "web"],
    ] {
        let run = run_doctor(args, &[]);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(run.stderr.contains("nothing ran") || args[0] == "help", "{args:?}: {}", run.stderr);
    }
    for args in [&["--help"][..], &["help"], &["-h"], &["check", "--help"], &["help", "wait"], &["--version"]] {
        let run = run_doctor(args, &[]);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(!run.stdout.is_empty());
    }
}

/// `-o json` (kubectl's habit) would write the report to a file named `json`.
#[test]
fn a_format_name_as_output_path_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    for (cmd, value, format) in [("check", "json", "json"), ("wait", "junit", "junit"), ("scan", "xml", "junit")] {
        let mut args = vec![cmd, "-o", value];
        if cmd == "wait" {
            args.extend(["--service", "web"]);
        }
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_consul-doctor"))
            .args(&args)
            .current_dir(dir.path())
            .env("CONSUL_HTTP_ADDR", dead_addr())
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(&format!("--format {format}")) && err.contains(&format!("./{value}")), "{err}");
        assert!(!dir.path().join(value).exists(), "{value} written");
    }
    // ./json is a file name like any other.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_consul-doctor"))
        .args(["check", "-o", "./json", "--http-addr", &dead_addr()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(dir.path().join("json").is_file());
}

/// Every flag's help is its own: no description carried by the wrong flag, none missing.
#[test]
fn every_flag_has_its_own_unique_help() {
    let root = consul_doctor::cli::command();
    for sub in root.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut seen: Vec<(String, String)> = Vec::new();
        for arg in sub.get_arguments().filter(|a| a.get_long().is_some() && !a.is_hide_set()) {
            let long = arg.get_long().unwrap();
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            if long == "help" || long == "version" {
                continue;
            }
            assert!(!help.trim().is_empty(), "{} --{long} has no help", sub.get_name());
            if let Some((other, _)) = seen.iter().find(|(_, h)| *h == help) {
                panic!("{} --{long} and --{other} share the help {help:?}", sub.get_name());
            }
            seen.push((long.to_string(), help));
        }
    }
    // The two that once traded places.
    let check = root.find_subcommand("check").unwrap();
    let help =
        |l: &str| check.get_arguments().find(|a| a.get_long() == Some(l)).unwrap().get_help().unwrap().to_string();
    assert!(help("deadline").starts_with("Deadline of the whole invocation"), "{}", help("deadline"));
    assert!(help("consul-dns").starts_with("Consul DNS to ask"), "{}", help("consul-dns"));
    let run = run_doctor(&["check", "--help"], &[]);
    let text = run.stdout.replace('\n', " ");
    assert!(text.contains("--consul-dns <IP:PORT>") && text.contains("--deadline <DURATION>"), "{}", run.stdout);
}

/// JUnit readers take a timestamp without a zone for local time: the doctor's are UTC and say so.
#[test]
fn junit_timestamps_carry_the_utc_zone() {
    let run = run_doctor(&["check", "--http-addr", &dead_addr(), "--format", "junit"], &[]);
    assert_eq!(run.code, 1);
    let stamps: Vec<&str> = run.stdout.split(" timestamp=\"").skip(1).map(|s| &s[..s.find('"').unwrap()]).collect();
    assert!(!stamps.is_empty(), "{}", run.stdout);
    for t in stamps {
        let b = t.as_bytes();
        assert!(t.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z', "timestamp {t:?}");
    }
}

/// The JSON inputs say where each value came from, the timeout included.
#[test]
fn timeout_provenance_is_the_flag_or_the_default() {
    let addr = dead_addr();
    let timeout = |json: &serde_json::Value| {
        json["inputs"].as_array().unwrap().iter().find(|i| i["name"] == "timeout").cloned().unwrap()
    };
    let (_, json) = check_json(&["--http-addr", &addr, "--timeout", "3s"], &[]);
    assert_eq!(timeout(&json)["source"], "flag", "{json:#}");
    assert_eq!(timeout(&json)["value"], "3s");
    let (_, json) = check_json(&["--http-addr", &addr], &[]);
    assert_eq!(timeout(&json)["source"], "default", "{json:#}");
    let scan = run_doctor(&["scan", "--http-addr", &addr, "-timeout=2s", "--format", "json"], &[]).json();
    assert_eq!(timeout(&scan)["source"], "flag", "{scan:#}");
}

/// `codes` on a narrow terminal: titles wrap under themselves; piped, one code per line.
#[test]
fn codes_fit_a_60_column_terminal() {
    let cmd = format!("{} codes", env!("CARGO_BIN_EXE_consul-doctor"));
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("COLUMNS", "60")
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.contains("ACL-001"), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 60, "too wide: {line:?}");
    }
    let piped = run_doctor(&["codes"], &[("COLUMNS", "60")]);
    assert!(piped.stdout.lines().all(|l| l.len() > 24 && l.as_bytes()[0].is_ascii_uppercase()), "{}", piped.stdout);
}
