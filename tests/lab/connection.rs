use std::time::Duration;

use crate::common::*;

#[test]
fn healthy_dev_agent_passes_every_check_in_json() {
    let a = dev();
    let (run, json) = check_json(&["--http-addr", &a.http_addr()], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["status"], "pass");
    assert!(json["root_cause"].is_null());
    assert_eq!(json["tool"]["name"], "consul-doctor");
    assert_eq!(json["agent"]["version"], "1.8.7");
    assert_eq!(json["agent"]["mode"], "server");
    for c in json["checks"].as_array().unwrap() {
        let skipped_for_no_service = c["status"] == "skip" && c["message"].as_str().unwrap().starts_with("no ");
        assert!(c["status"] == "pass" || skipped_for_no_service, "{c:#}");
        for key in ["stage", "id", "status", "code", "message", "fix", "blocked_by", "evidence", "elapsed_ms"] {
            assert!(c.get(key).is_some(), "check lacks {key}: {c:#}");
        }
    }
    let stages: Vec<&str> = json["checks"].as_array().unwrap().iter().map(|c| c["stage"].as_str().unwrap()).collect();
    for s in ["config", "dns", "tcp", "tls", "api", "leader", "acl", "version"] {
        assert!(stages.contains(&s), "stage {s} missing");
    }
    let input = json["inputs"].as_array().unwrap().iter().find(|i| i["name"] == "http_addr").unwrap();
    assert_eq!(input["source"], "flag");
    assert!(result(&json, "leader.status")["message"]
        .as_str()
        .unwrap()
        .contains(&format!("127.0.0.1:{}", a.server_port)));
    assert!(result(&json, "acl.token")["message"].as_str().unwrap().contains("ACLs are disabled"));
}

#[test]
fn address_from_environment_is_reported_with_its_source() {
    let a = dev();
    let (run, json) = check_json(&[], &[("CONSUL_HTTP_ADDR", &format!("http://{}", a.http_addr()))]);
    assert_eq!(run.code, 0, "{json:#}");
    let input = json["inputs"].as_array().unwrap().iter().find(|i| i["name"] == "http_addr").unwrap();
    assert_eq!(input["source"], "env CONSUL_HTTP_ADDR");
    // The flag beats the environment, as in Consul.
    let (run, json) = check_json(&["--http-addr", &a.http_addr()], &[("CONSUL_HTTP_ADDR", "127.0.0.1:1")]);
    assert_eq!(run.code, 0, "{json:#}");
}

#[test]
fn healthy_agent_human_report() {
    let a = dev();
    let run = run_doctor(&["check", "--http-addr", &a.http_addr(), "--color", "never"], &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let out = &run.stdout;
    assert!(out.starts_with("consul-doctor "), "{out}");
    assert!(out.contains(&format!("checking http://{} (flag)", a.http_addr())), "{out}");
    assert!(out.contains("agent: Consul 1.8.7 server"), "{out}");
    // One line per stage: a healthy run fits on one screen.
    for stage in ["config", "dns", "tcp", "tls", "api", "leader", "acl", "version"] {
        assert!(
            out.lines().any(|l| l.split_whitespace().nth(1) == Some(stage)),
            "missing stage line {stage:?} in {out}"
        );
    }
    assert!(out.contains("\n✔ leader      2 passed\n"), "{out}");
    assert!(!out.contains("leader.status"), "passed checks are collapsed: {out}");
    assert!(out.lines().count() <= 20, "fits on one screen: {out}");
    assert!(out.contains("No problems found."), "{out}");
    assert!(out.contains("Result: PASS (16 passed, 0 warnings, 0 failed, 19 skipped)"), "{out}");
    let verbose = run_doctor(&["check", "--http-addr", &a.http_addr(), "--color", "never", "--verbose"], &[]);
    assert!(verbose.stdout.contains("✔ leader.status"), "{}", verbose.stdout);
    assert!(
        verbose.stdout.contains("│ leader     ┆    2 ┆    0 ┆    0 ┆    0 ┆    0 │"),
        "summary table: {}",
        verbose.stdout
    );
    assert!(!out.contains('\u{1b}'), "no colour when --color never");
    let forced = run_doctor(&["check", "--http-addr", &a.http_addr()], &[("CLICOLOR_FORCE", "1")]);
    assert!(forced.stdout.contains('\u{1b}'), "CLICOLOR_FORCE colours even when piped");
    let no_color = run_doctor(&["check", "--http-addr", &a.http_addr()], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!no_color.stdout.contains('\u{1b}'), "NO_COLOR wins");
}

#[test]
fn refused_port_is_the_root_cause_and_blocks_everything_after_tcp() {
    let port = free_port();
    let (run, json) = check_json(&["--http-addr", &format!("127.0.0.1:{port}")], &[]);
    assert_root(&run, &json, "TCP-001", &["tls", "api", "leader", "acl", "version"]);
    assert_eq!(result(&json, "tcp.answer")["blocked_by"], "TCP-001");
    let msg = result(&json, "tcp.connect")["message"].as_str().unwrap();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
}

#[test]
fn refused_port_human_report_names_the_root_cause_and_explain() {
    let port = free_port();
    let run = run_doctor(&["check", "--http-addr", &format!("127.0.0.1:{port}"), "--color", "never"], &[]);
    assert_eq!(run.code, 1);
    let out = &run.stdout;
    assert!(out.contains("✘ tcp.connect"), "{out}");
    assert!(out.contains("TCP-001"), "{out}");
    assert!(out.contains("explain: consul-doctor explain TCP-001"), "{out}");
    assert!(out.contains("\n- api         skipped: blocked by TCP-001\n"), "{out}");
    assert_eq!(out.matches("nothing listens on port").count(), 1, "the root cause is said once: {out}");
    assert!(out.contains("Root cause: TCP-001 (tcp.connect): Connection refused\n"), "{out}");
    assert!(out.contains("Result: FAIL"), "{out}");
}

#[test]
fn refused_port_junit_report() {
    let port = free_port();
    let run = run_doctor(&["check", "--http-addr", &format!("127.0.0.1:{port}"), "--format", "junit"], &[]);
    assert_eq!(run.code, 1);
    let x = &run.stdout;
    assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"consul-doctor\" tests=\"44\" failures=\"1\""), "{x}");
    assert!(x.contains("<testcase classname=\"consul-doctor.tcp\" name=\"tcp.connect\""), "{x}");
    assert!(x.contains("<failure type=\"TCP-001\" message=\"TCP-001 connection refused by 127.0.0.1:"), "{x}");
    assert!(x.contains("<skipped message=\"skipped: blocked by TCP-001\"/>"), "{x}");
    assert!(x.contains(" timestamp=\"20") && x.contains(" hostname=\""), "{x}");
    assert_eq!(x.matches("<testcase ").count(), 44);
}

#[test]
fn junit_failures_agree_with_the_exit_code() {
    let a = dev();
    // A name DNS cannot serve: CFG-021 warns, which fails the run only with --fail-on warn (the
    // missing --service-id is a note, CFG-022, which never does).
    let base = [
        "check",
        "--http-addr",
        &a.http_addr(),
        "--format",
        "junit",
        "--service",
        "junit.agree",
        "--service-port",
        "8080",
    ];
    let mut names = Vec::new();
    for fail_on in ["fail", "warn"] {
        let mut args = base.to_vec();
        args.extend(["--fail-on", fail_on]);
        let run = run_doctor(&args, &[]);
        let x = &run.stdout;
        assert!(x.contains("CFG-021") && x.contains("CFG-022"), "{x}");
        let failures = x.matches("<failure ").count();
        assert_eq!(
            run.code == 1,
            failures > 0,
            "--fail-on {fail_on}: exit {} with {failures} failures:\n{x}",
            run.code
        );
        if fail_on == "warn" {
            assert_eq!(run.code, 1, "{x}");
            assert!(x.contains("<failure type=\"CFG-021\""), "{x}");
            assert!(!x.contains("type=\"CFG-022"), "a note is never a failure: {x}");
        }
        let mut these: Vec<String> = x
            .lines()
            .filter_map(|l| l.split(" name=\"").nth(1))
            .map(|n| n.split('"').next().unwrap().to_string())
            .collect();
        these.retain(|n| n.contains('.'));
        let mut unique = these.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), these.len(), "a check id appears twice: {these:?}");
        names.push(these);
    }
    assert_eq!(names[0], names[1], "testcase names do not depend on the outcome");
}

#[test]
fn consul_dns_interface_resolves_the_agent_name() {
    let a = dev();
    let (run, json) =
        check_json(&["--http-addr", &format!("consul.service.consul:{}", a.http), "--dns-server", &a.dns_addr()], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    let msg = result(&json, "dns.resolve")["message"].as_str().unwrap();
    assert!(msg.contains("consul.service.consul resolves to 127.0.0.1"), "{msg}");
}

#[test]
fn unknown_consul_service_name_is_nxdomain() {
    let a = dev();
    let (run, json) =
        check_json(&["--http-addr", &format!("nosuch.service.consul:{}", a.http), "--dns-server", &a.dns_addr()], &[]);
    assert_root(&run, &json, "DNS-001", &["tcp", "tls", "api", "leader", "acl", "version"]);
    let fix = result(&json, "dns.resolve")["fix"].as_str().unwrap();
    assert!(fix.contains("8600"), "the fix explains .consul forwarding: {fix}");
}

#[test]
fn unknown_datacenter_is_reported_by_the_api_stage() {
    let a = dev();
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--datacenter", "nope"], &[]);
    assert_root(&run, &json, "API-006", &["leader", "acl"]);
    assert!(result(&json, "api.datacenter")["message"].as_str().unwrap().contains("dc1"));
}

#[test]
fn server_waiting_for_bootstrap_expect_has_no_leader() {
    let a = start("noleader", Spec { server: true, bootstrap_expect: Some(3), ..Spec::default() }, false);
    let (run, json) = check_json(&["--http-addr", &a.http_addr()], &[]);
    assert_root(&run, &json, "LDR-001", &["acl"]);
    let r = result(&json, "leader.status");
    assert_eq!(r["evidence"]["bootstrap_expect"], "3", "{r:#}");
    assert!(r["fix"].as_str().unwrap().contains("bootstrap_expect"));
    // The command in the fix reaches this agent, not the CLI's default address.
    let fix = r["fix"].as_str().unwrap();
    assert!(fix.contains(&format!("CONSUL_HTTP_ADDR={} consul operator raft list-peers", a.http_addr())), "{fix}");
    assert_eq!(result(&json, "leader.peers")["blocked_by"], "LDR-001");
    // The version stage does not depend on the leader and still runs.
    assert_eq!(result(&json, "version.members")["status"], "pass");
}

#[test]
fn client_without_servers_knows_no_servers() {
    let c = start("lonely", Spec { server: false, ..Spec::default() }, false);
    let (run, json) = check_json(&["--http-addr", &c.http_addr()], &[]);
    assert_root(&run, &json, "LDR-002", &["acl"]);
    assert_eq!(json["agent"]["mode"], "client");
    assert!(result(&json, "leader.status")["fix"].as_str().unwrap().contains("retry_join"));
}

#[test]
fn client_joined_to_a_server_passes_through_the_client() {
    let server = dev();
    let c = start("joined", Spec { server: false, join: Some(server.serf_addr()), ..Spec::default() }, true);
    let (run, json) = check_json(&["--http-addr", &c.http_addr()], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    assert_eq!(json["agent"]["mode"], "client");
    let v = result(&json, "version.members")["message"].as_str().unwrap().to_string();
    assert!(v.contains("1 server(s) alive on 1.8.7"), "{v}");
}

#[test]
fn killed_agent_is_refused_not_hung() {
    let a = start("killed", Spec { dev: true, ..Spec::default() }, true);
    let addr = a.http_addr();
    a.kill();
    let (run, json) = check_json(&["--http-addr", &addr, "--timeout", "2s"], &[]);
    assert_root(&run, &json, "TCP-001", &["api"]);
    assert!(run.elapsed < Duration::from_secs(3), "took {:?}", run.elapsed);
}

#[test]
fn namespace_from_the_environment_breaks_every_request_on_oss() {
    let a = dev();
    let (status, body) = a.get("/v1/catalog/services?ns=team-a", None);
    assert_eq!(status, 400, "the real 1.8.7 agent refuses ?ns=: {body}");
    assert!(body.contains("Namespaces are a Consul Enterprise feature"), "{body}");
    let (run, json) = check_json(&["--http-addr", &a.http_addr()], &[("CONSUL_NAMESPACE", "team-a")]);
    assert_root(&run, &json, "API-007", &["leader", "acl"]);
    let input = json["inputs"].as_array().unwrap().iter().find(|i| i["name"] == "namespace").unwrap();
    assert_eq!(input["source"], "env CONSUL_NAMESPACE");
}

#[test]
fn agent_listening_on_loopback_only() {
    // The agent binds 127.0.0.1 (client_addr's default); 127.0.0.2 stands in for the host's
    // routable address.
    let a = dev();
    let (run, json) = check_json(&["--http-addr", &format!("127.0.0.2:{}", a.http)], &[]);
    assert_root(&run, &json, "TCP-001", &["api"]);
    let r = result(&json, "tcp.connect");
    assert!(r["message"].as_str().unwrap().contains("listens on loopback only"), "{r:#}");
    assert!(r["fix"].as_str().unwrap().contains("client_addr"), "{r:#}");
}

#[test]
fn agent_that_refuses_writes_from_this_host() {
    let a = start(
        "nowrite",
        Spec {
            dev: true,
            extra_hcl: "http_config { allow_write_http_from = [\"10.0.0.0/8\"] }\n".into(),
            ..Spec::default()
        },
        true,
    );
    let (st, body) = a.put("/v1/agent/service/register", None, r#"{"Name": "web"}"#);
    assert_eq!((st, body.trim()), (403, "Access is restricted"), "the real agent refuses the write");
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service", "web", "--service-id", "web-1"], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("API-008"), "{json:#}");
    assert_eq!(run.code, 1);
    let blocked = start(
        "blocked",
        Spec {
            dev: true,
            extra_hcl: "http_config { block_endpoints = [\"/v1/agent/service/register\"] }\n".into(),
            ..Spec::default()
        },
        true,
    );
    let (st, _) = blocked.put("/v1/agent/service/register", None, r#"{"Name": "web"}"#);
    assert_eq!(st, 403);
    let (_, json) = check_json(&["--http-addr", &blocked.http_addr()], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("API-008"), "{json:#}");
}

#[test]
fn two_server_cluster_has_no_fault_tolerance() {
    let a = start("pair-a", Spec { server: true, bootstrap_expect: Some(2), ..Spec::default() }, false);
    let b = start(
        "pair-b",
        Spec { server: true, bootstrap_expect: Some(2), join: Some(a.serf_addr()), ..Spec::default() },
        true,
    );
    wait_until(
        Duration::from_secs(30),
        || a.get("/v1/status/peers", None).1.matches(':').count() >= 2,
        "two raft peers",
    );
    let (run, json) = check_json(&["--http-addr", &b.http_addr()], &[]);
    assert_eq!(codes(&json), vec!["LDR-006"], "{json:#}");
    assert_eq!(run.code, 0);
    assert!(result(&json, "leader.peers")["message"].as_str().unwrap().contains("2 Raft voters"));
}

#[test]
fn agent_with_two_connections_per_client_is_not_reported_broken() {
    // `limits { http_max_conns_per_client = 2 }`: the doctor must stay within two connections
    // (one keep-alive connection is reused for every request), or the agent resets the rest.
    let a = start(
        "connlimit",
        Spec { dev: true, extra_hcl: "limits {\n  http_max_conns_per_client = 2\n}\n".into(), ..Spec::default() },
        true,
    );
    let (st, body) = a.put(
        "/v1/agent/service/register",
        None,
        r#"{"Name": "limited", "ID": "limited-1", "Port": 7420, "Check": {"TTL": "10m", "Status": "passing", "DeregisterCriticalServiceAfter": "10m"}}"#,
    );
    assert_eq!(st, 200, "{body}");
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("limited.json");
    std::fs::write(&def, r#"{"Name": "limited", "ID": "limited-1", "Port": 7420, "Check": {"TTL": "10m", "DeregisterCriticalServiceAfter": "10m"}}"#).unwrap();
    for _ in 0..3 {
        let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", def.to_str().unwrap()], &[]);
        assert_eq!(run.code, 0, "{json:#}");
        let bad: Vec<String> = codes(&json).into_iter().filter(|c| !c.starts_with("CFG")).collect();
        assert!(bad.is_empty(), "a healthy agent with a connection limit: {bad:?} {json:#}");
    }
}

#[test]
fn wait_follows_a_server_until_it_elects_itself() {
    // A fresh server with bootstrap_expect = 1 answers HTTP before it has a leader.
    let a = start("wait-elect", Spec { server: true, bootstrap_expect: Some(1), ..Default::default() }, false);
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--wait", "30s", "--skip", "health"], &[]);
    assert_eq!(run.code, 0, "{json:#}\n{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let attempts = json["attempts"].as_u64().unwrap();
    let last = lines.last().copied().unwrap_or("");
    assert!(
        last.starts_with(&format!("consul-doctor: attempt {attempts}: ")) && last.ends_with(", nothing fails"),
        "{}",
        run.stderr
    );
    if attempts > 1 {
        assert!(lines[0].starts_with("consul-doctor: attempt 1: root cause "), "{}", run.stderr);
        assert!(lines[0].ends_with("left, retrying"), "{}", run.stderr);
    }
}

#[test]
fn namespace_and_partition_flags_on_oss_are_named_with_their_origin() {
    let a = dev();
    // What the real 1.8.7 does with them: ?ns= (even "default") is refused, ?partition= ignored.
    let (status, body) = a.get("/v1/health/service/consul?ns=default", None);
    assert_eq!(status, 400, "{body}");
    let (status, _) = a.get("/v1/catalog/services?partition=p1", None);
    assert_eq!(status, 200, "1.8.7 ignores ?partition=");
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--namespace", "team-a", "--partition", "p1"], &[]);
    assert_root(&run, &json, "API-007", &["leader", "acl"]);
    let finding = json["checks"].as_array().unwrap().iter().find(|c| c["code"] == "API-007").unwrap();
    let text = finding["message"].as_str().unwrap();
    assert!(text.contains("namespace \"team-a\" (flag;"), "{text}");
    assert!(text.contains("partition \"p1\" (flag; this version ignores ?partition="), "{text}");
    let input = json["inputs"].as_array().unwrap().iter().find(|i| i["name"] == "namespace").unwrap();
    assert_eq!(input["source"], "flag");
}

#[test]
fn a_definitions_own_namespace_on_oss_is_named() {
    let a = dev();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.json");
    std::fs::write(&path, r#"{"Name": "web-ns", "Port": 8080, "Namespace": "team-a"}"#).unwrap();
    let (status, body) =
        a.put("/v1/agent/service/register", None, r#"{"Name": "web-ns", "Port": 8080, "Namespace": "team-a"}"#);
    assert_eq!(status, 400, "the real 1.8.7 refuses a Namespace field: {body}");
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", path.to_str().unwrap()], &[]);
    assert_eq!(run.code, 1);
    let finding = json["checks"].as_array().unwrap().iter().find(|c| c["code"] == "API-007").expect("API-007");
    let text = finding["message"].as_str().unwrap();
    assert!(
        text.contains("(definition service \"web-ns\"") && text.contains("unknown field \"Namespace\""),
        "{finding:#}"
    );
}

#[test]
fn peer_on_an_agent_without_peering() {
    let a = dev();
    // 1.8.7 ignores ?peer= and answers with the local instances.
    let (status, body) = a.get("/v1/health/service/consul?peer=dc2", None);
    assert_eq!(status, 200);
    assert!(body.contains("\"Service\""), "{body}");
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service", "consul", "--peer", "dc2"], &[]);
    assert_root(&run, &json, "API-010", &["leader", "acl"]);
}
