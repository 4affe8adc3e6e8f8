//! `consul-doctor wait` against real agents: blocking queries that return the moment the
//! condition holds, each failure mode's finding at the deadline, reconnects, Ctrl-C.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

fn spawn_wait(args: &[&str], env: &[(&str, &str)]) -> (Child, Instant) {
    let mut cmd = doctor_cmd();
    cmd.arg("wait").args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    (cmd.spawn().expect("spawn consul-doctor wait"), started)
}

/// Waits for the process to exit (at most `limit`), returning the run and when it exited.
fn finish(mut child: Child, started: Instant, limit: Duration) -> (Run, Instant) {
    let exited = loop {
        if child.try_wait().unwrap().is_some() {
            break Instant::now();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("wait did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let status = child.wait().unwrap();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let run = Run { code: status.code().unwrap_or(-1), stdout, stderr, elapsed: started.elapsed() };
    (run, exited)
}

fn wait_json(args: &[&str], env: &[(&str, &str)], limit: Duration) -> (Run, Value) {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let (child, started) = spawn_wait(&all, env);
    let (run, _) = finish(child, started, limit);
    let json = run.json();
    (run, json)
}

fn register(agent: &Agent, token: Option<&str>, body: &str) -> Instant {
    let (st, text) = agent.put("/v1/agent/service/register", token, body);
    assert_eq!(st, 200, "register {body}: {text}");
    Instant::now()
}

fn diagnosis_root(json: &Value) -> Option<String> {
    json["root_cause"]["code"].as_str().map(str::to_string)
}

#[test]
fn returns_within_half_a_second_of_registration_using_blocking_queries() {
    let a = dev();
    let addr = a.http_addr();
    let (child, started) = spawn_wait(&["--format", "json", "--http-addr", &addr, "--service", "late-web"], &[]);
    std::thread::sleep(Duration::from_millis(2500));
    let registered = register(a, None, r#"{"Name": "late-web", "ID": "late-web-1", "Port": 7501}"#);
    let (run, exited) = finish(child, started, Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let reaction = exited.duration_since(registered);
    assert!(reaction < Duration::from_millis(500), "exited {reaction:?} after registration");
    let json = run.json();
    assert_eq!(json["command"], "wait");
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["outcome"], "met");
    assert_eq!(json["passing"], 1);
    // Connection stages (a handful), the read check, then two or three health queries: polling
    // every 100 ms for 2.5 s would be 25 or more.
    let requests = json["requests"].as_u64().unwrap();
    assert!(requests <= 12, "{requests} requests: {json:#}");
    let t = &json["timeline"][0];
    assert_eq!(
        (t["instance"].as_str(), t["from"].as_str(), t["to"].as_str()),
        (Some("late-web-1"), Some("absent"), Some("passing"))
    );
    assert!(json["diagnosis"].is_null());
    a.put("/v1/agent/service/deregister/late-web-1", None, "");
}

#[test]
fn a_check_turning_from_critical_to_passing() {
    let a = dev();
    register(
        a,
        None,
        r#"{"Name": "ttl-web", "ID": "ttl-web-1", "Port": 7502, "Check": {"CheckID": "ttl-web-ttl", "TTL": "30s", "Status": "critical"}}"#,
    );
    let addr = a.http_addr();
    let (child, started) = spawn_wait(&["--format", "json", "--http-addr", &addr, "--service", "ttl-web"], &[]);
    std::thread::sleep(Duration::from_millis(1200));
    let (st, body) = a.put("/v1/agent/check/pass/ttl-web-ttl?note=ready", None, "");
    assert_eq!(st, 200, "{body}");
    let (run, _) = finish(child, started, Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    let tl: Vec<(String, String)> = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["from"].as_str().unwrap().to_string(), c["to"].as_str().unwrap().to_string()))
        .collect();
    // The state the wait started from (critical) is not a change; the turn to passing is.
    assert_eq!(tl, vec![("critical".into(), "passing".into())], "{json:#}");
    let human = run_doctor(&["wait", "--http-addr", &addr, "--service", "ttl-web", "--deadline", "5s"], &[]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(!human.stdout.contains("timeline:") && !human.stdout.contains("absent →"), "{}", human.stdout);
    a.put("/v1/agent/service/deregister/ttl-web-1", None, "");
}

#[test]
fn min_passing_waits_for_the_second_instance_and_reports_too_few_at_the_deadline() {
    let a = dev();
    let addr = a.http_addr();
    register(a, None, r#"{"Name": "pair", "ID": "pair-1", "Port": 7503}"#);
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "pair", "--min-passing", "2", "--deadline", "1500ms"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-003"), "{json:#}");
    let (child, started) =
        spawn_wait(&["--format", "json", "--http-addr", &addr, "--service", "pair", "--min-passing", "2"], &[]);
    std::thread::sleep(Duration::from_millis(1000));
    register(a, None, r#"{"Name": "pair", "ID": "pair-2", "Port": 7504}"#);
    let (run, _) = finish(child, started, Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.json()["passing"], 2);
    for id in ["pair-1", "pair-2"] {
        a.put(&format!("/v1/agent/service/deregister/{id}"), None, "");
    }
}

#[test]
fn tags_filter_instances() {
    let a = dev();
    let addr = a.http_addr();
    register(a, None, r#"{"Name": "tagged", "ID": "tagged-v1", "Port": 7505, "Tags": ["v1"]}"#);
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "tagged", "--tag", "v2", "--deadline", "1s"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-001"), "{json:#}");
    let msg = json["root_cause"]["message"].as_str().unwrap();
    assert!(msg.contains("do not match: tagged-v1") && msg.contains("[v1]"), "{msg}");
    // The service exists (with other tags): the title must not say it is registered nowhere.
    let title = json["diagnosis"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "WAIT-001")
        .map(|c| c["title"].as_str().unwrap().to_string())
        .unwrap();
    assert!(!title.contains("not registered on any agent") && title.contains("matching"), "{title}");
    register(a, None, r#"{"Name": "tagged", "ID": "tagged-v2", "Port": 7506, "Tags": ["v2", "canary"]}"#);
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "tagged", "--tag", "v2", "--tag", "canary"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 0, "{json:#}");
    assert_eq!(json["matching"], 1);
    for id in ["tagged-v1", "tagged-v2"] {
        a.put(&format!("/v1/agent/service/deregister/{id}"), None, "");
    }
}

#[test]
fn gone_returns_after_deregistration_and_reports_a_lingering_instance() {
    let a = dev();
    let addr = a.http_addr();
    register(a, None, r#"{"Name": "leaving", "ID": "leaving-1", "Port": 7507}"#);
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "leaving", "--id", "leaving-1", "--gone", "--deadline", "1s"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-005"), "{json:#}");
    let (child, started) = spawn_wait(
        &["--format", "json", "--http-addr", &addr, "--service", "leaving", "--id", "leaving-1", "--gone"],
        &[],
    );
    std::thread::sleep(Duration::from_millis(1000));
    let (st, _) = a.put("/v1/agent/service/deregister/leaving-1", None, "");
    assert_eq!(st, 200);
    let gone_at = Instant::now();
    let (run, exited) = finish(child, started, Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(exited.duration_since(gone_at) < Duration::from_millis(500));
    let last = run.json()["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["to"], "absent");
    // Success in words that fit --gone (not "0 of 0 matching instance(s) passing").
    let run = run_doctor(&["wait", "--http-addr", &addr, "--service", "leaving", "--id", "leaving-1", "--gone"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = run.stdout.lines().next().unwrap_or("");
    assert!(first.contains("gone from the catalog: no matching instance left in the catalog after"), "{first}");
    assert!(!run.stdout.contains("0 of 0"), "{}", run.stdout);
    // --gone without an instance to watch is a usage error.
    let run = run_doctor(&["wait", "--http-addr", &addr, "--service", "leaving", "--gone"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn id_of_an_instance_on_another_node() {
    let a = dev();
    let addr = a.http_addr();
    let body = r#"{"Node": "external-db-1", "Address": "127.0.0.2", "Service": {"Service": "extdb", "ID": "extdb-a", "Port": 5432}}"#;
    let (st, text) = a.put("/v1/catalog/register", None, body);
    assert_eq!(st, 200, "{text}");
    let (run, json) =
        wait_json(&["--http-addr", &addr, "--service", "extdb", "--id", "extdb-a"], &[], Duration::from_secs(20));
    assert_eq!(run.code, 0, "{json:#}");
    assert_eq!(json["matching"], 1, "{json:#}");
    assert_eq!(json["timeline"], serde_json::json!([]), "found at once: no change to report");
    a.put("/v1/catalog/deregister", None, r#"{"Node": "external-db-1"}"#);
}

#[test]
fn never_registered_fails_at_the_deadline_with_the_diagnosis() {
    let a = dev();
    let addr = a.http_addr();
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "never-there", "--deadline", "2s"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 1);
    assert_eq!(json["outcome"], "deadline");
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-001"), "{json:#}");
    assert!(run.elapsed >= Duration::from_secs(2) && run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    let d = &json["diagnosis"];
    assert_eq!(d["schema_version"], 1);
    assert!(d["checks"].as_array().unwrap().iter().any(|c| c["id"] == "leader.status" && c["status"] == "pass"));
    // Requests during a 2 s wait with no change: the connection stages, then one or two queries.
    assert!(json["requests"].as_u64().unwrap() <= 12, "{json:#}");
    // JUnit carries the same finding.
    let run = run_doctor(
        &["wait", "--format", "junit", "--http-addr", &addr, "--service", "never-there", "--deadline", "1s"],
        &[],
    );
    assert_eq!(run.code, 1);
    assert!(run.stdout.starts_with("<?xml") && run.stdout.contains("type=\"WAIT-001\""), "{}", run.stdout);
}

#[test]
fn anti_entropy_blocked_is_the_sync_finding_not_not_found() {
    let a = acl();
    let master = a.master_token.as_deref().unwrap();
    let (accessor, secret) = a.acl_token("wait-lost", r#"service "wait-lost" { policy = "write" }"#, "");
    register(a, Some(&secret), r#"{"Name": "wait-lost", "ID": "wait-lost-1", "Port": 7508}"#);
    wait_until(
        Duration::from_secs(10),
        || a.get("/v1/catalog/service/wait-lost", Some(master)).1.contains("wait-lost-1"),
        "catalog sync",
    );
    let (st, _) = http_request("DELETE", a.http, &format!("/v1/acl/token/{accessor}"), Some(master), None);
    assert_eq!(st, 200);
    let (st, body) = a.put(
        "/v1/catalog/deregister",
        Some(master),
        &format!(r#"{{"Node": "{}", "ServiceID": "wait-lost-1"}}"#, a.name),
    );
    assert_eq!(st, 200, "{body}");
    let addr = a.http_addr();
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "wait-lost", "--deadline", "2s"],
        &[("CONSUL_HTTP_TOKEN", master)],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("SYN-001"), "{json:#}");
    assert!(!run.stdout.contains(master) && !run.stderr.contains(master), "the token is never printed");
    a.put("/v1/agent/service/deregister/wait-lost-1", Some(master), "");
}

#[test]
fn token_without_service_read_fails_fast_with_the_acl_finding() {
    let a = acl();
    let (_, secret) = a.acl_token("wait-noread", r#"node_prefix "" { policy = "read" }"#, "");
    let addr = a.http_addr();
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "hidden", "--deadline", "60s", "--token", &secret],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 1);
    assert_eq!(json["outcome"], "failed");
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-004"), "{json:#}");
    assert!(json["requests"].as_u64().unwrap() >= 3, "the connection stages' requests count: {json:#}");
    assert!(run.elapsed < Duration::from_secs(5), "took {:?}", run.elapsed);
    assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret));
}

#[test]
fn minimal_deploy_token_without_node_read_fails_fast_with_the_acl_finding() {
    // `service "web" { policy = "read" }` only: no agent:read (the node is unknown), no
    // node:read (the health list is filtered to [] although the instance is there and passing).
    let a = acl();
    let master = a.master_token.as_deref().unwrap();
    register(
        a,
        Some(master),
        r#"{"Name": "wait-minimal", "ID": "wait-minimal-1", "Port": 7531, "Check": {"TTL": "10m", "Status": "passing"}}"#,
    );
    let (_, secret) = a.acl_token("wait-minimal", r#"service "wait-minimal" { policy = "read" }"#, "");
    assert_eq!(a.get("/v1/agent/self", Some(&secret)).0, 403, "no agent:read");
    assert_eq!(a.get("/v1/health/service/wait-minimal", Some(&secret)).1.trim(), "[]", "filtered by node:read");
    let addr = a.http_addr();
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "wait-minimal", "--deadline", "60s", "--token", &secret],
        &[],
        Duration::from_secs(40),
    );
    a.put("/v1/agent/service/deregister/wait-minimal-1", Some(master), "");
    assert_eq!(run.code, 1);
    assert_eq!(json["outcome"], "failed", "before waiting, not at the deadline: {json:#}");
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-004"), "{json:#}");
    let acl = json["diagnosis"]["checks"].as_array().unwrap().iter().find(|c| c["id"] == "wait.acl").unwrap().clone();
    assert!(acl["message"].as_str().unwrap().contains(&format!("node:read on {:?}", a.name)), "{acl:#}");
    assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret));
}

#[test]
fn instances_on_nodes_the_token_cannot_read_are_named_as_hidden_at_the_deadline() {
    // The token reads the service, this agent and its node, but not every node: an instance on
    // another node is filtered out of the health answer, so "none registered" is not known.
    let a = acl();
    let master = a.master_token.as_deref().unwrap();
    let body = r#"{"Node": "wait-remote-node", "Address": "10.20.30.41",
        "Service": {"ID": "wait-hidden-1", "Service": "wait-hidden", "Port": 7541},
        "Check": {"CheckID": "wait-hidden-1-ok", "Name": "ok", "ServiceID": "wait-hidden-1", "Status": "passing"}}"#;
    let (st, text) = a.put("/v1/catalog/register", Some(master), body);
    assert_eq!(st, 200, "{text}");
    let rules = format!(
        r#"service "wait-hidden" {{ policy = "read" }} node "{n}" {{ policy = "read" }} agent "{n}" {{ policy = "read" }}"#,
        n = a.name
    );
    let (_, secret) = a.acl_token("wait-hidden", &rules, "");
    assert_eq!(a.get("/v1/health/service/wait-hidden", Some(&secret)).1.trim(), "[]", "filtered by node:read");
    assert!(a.get("/v1/health/service/wait-hidden", Some(master)).1.contains("wait-hidden-1"));
    let addr = a.http_addr();
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "wait-hidden", "--deadline", "2s", "--token", &secret],
        &[],
        Duration::from_secs(30),
    );
    a.put("/v1/catalog/deregister", Some(master), r#"{"Node": "wait-remote-node"}"#);
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-004"), "{json:#}");
    let msg = json["root_cause"]["message"].as_str().unwrap();
    assert!(msg.contains("may not read every node"), "{msg}");
    assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret));
}

#[test]
fn agent_restarted_mid_wait_is_reconnected_with_backoff() {
    let a = start("restart", Spec { dev: true, ..Spec::default() }, true);
    let addr = a.http_addr();
    let (child, started) = spawn_wait(&["--format", "json", "--http-addr", &addr, "--service", "phoenix"], &[]);
    std::thread::sleep(Duration::from_millis(1000));
    a.kill();
    std::thread::sleep(Duration::from_millis(2000));
    a.restart();
    wait_until(Duration::from_secs(30), || a.get("/v1/status/leader", None).1.len() > 4, "leader after restart");
    register(&a, None, r#"{"Name": "phoenix", "ID": "phoenix-1", "Port": 7509}"#);
    let (run, _) = finish(child, started, Duration::from_secs(60));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("retrying in"), "says it retries: {}", run.stderr);
    // Backoff, not a tight loop: a few dozen requests at most over the outage.
    assert!(run.json()["requests"].as_u64().unwrap() < 40, "{}", run.stdout);
}

#[test]
fn agent_that_never_comes_back_ends_with_the_connection_diagnosis() {
    let a = start("vanish", Spec { dev: true, ..Spec::default() }, true);
    let addr = a.http_addr();
    let (child, started) =
        spawn_wait(&["--format", "json", "--http-addr", &addr, "--service", "ghost", "--deadline", "4s"], &[]);
    std::thread::sleep(Duration::from_millis(800));
    a.kill();
    let (run, _) = finish(child, started, Duration::from_secs(30));
    assert_eq!(run.code, 1);
    let json = run.json();
    assert_eq!(diagnosis_root(&json).as_deref(), Some("TCP-001"), "{json:#}");
    assert!(run.elapsed < Duration::from_secs(7), "{:?}", run.elapsed);
    assert!(run.stderr.contains("retrying in"), "{}", run.stderr);
}

#[test]
fn unreachable_from_the_start_and_silent_ports_are_bounded() {
    let dead = format!("127.0.0.1:{}", free_port());
    let (run, json) =
        wait_json(&["--http-addr", &dead, "--service", "x", "--deadline", "2s"], &[], Duration::from_secs(20));
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("TCP-001"), "{json:#}");
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    let silent = crate::common::fault::FaultServer::silent();
    let addr = silent.addr.to_string();
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "x", "--deadline", "2s", "--timeout", "1s"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("TCP-005"), "{json:#}");
    assert!(run.elapsed < Duration::from_secs(8), "{:?}", run.elapsed);
}

#[test]
fn ctrl_c_exits_130_promptly() {
    let a = dev();
    let addr = a.http_addr();
    let (child, started) = spawn_wait(&["--http-addr", &addr, "--service", "interrupted", "--deadline", "60s"], &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let sent = Instant::now();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let (run, exited) = finish(child, started, Duration::from_secs(10));
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(exited.duration_since(sent) < Duration::from_millis(500));
}

#[test]
fn requests_count_the_connection_stages_when_they_stop_the_wait() {
    // An unknown token stops the wait in the acl stage, after the connection stages asked the
    // agent several questions: those requests are counted.
    let a = acl();
    let (run, json) = wait_json(
        &[
            "--http-addr",
            &a.http_addr(),
            "--service",
            "web",
            "--token",
            "00000000-1111-4222-8333-444444444444",
            "--deadline",
            "10s",
        ],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 1);
    assert_eq!(json["outcome"], "failed", "{json:#}");
    assert_eq!(diagnosis_root(&json).as_deref(), Some("ACL-002"), "{json:#}");
    assert!(json["requests"].as_u64().unwrap() > 0, "{json:#}");
}

#[test]
fn no_instance_where_consul_k8s_registers_pods_points_at_the_controller() {
    // A catalog as consul-k8s's endpoints controller writes it with consul-dataplane (no client
    // agent): the pod of "shop-api" on a synthetic node, written with PUT /v1/catalog/register
    // (control-plane/connect-inject/controllers/endpoints/endpoints_controller.go,
    // createServiceRegistrations: node "<k8s node>-virtual", node and service meta, the
    // readiness check). A dedicated agent: the shared ones must not see a synthetic node.
    let a = start("k8s-catalog", Spec { dev: true, ..Spec::default() }, true);
    let addr = a.http_addr();
    let (st, body) = a.put(
        "/v1/catalog/register",
        None,
        r#"{"Node": "gke-node-1-virtual", "Address": "127.0.0.1", "NodeMeta": {"synthetic-node": "true"},
            "Service": {"ID": "shop-api-5f7d-x9z-shop-api", "Service": "shop-api", "Address": "10.42.0.9", "Port": 8080, "Tags": ["v1"],
                        "Meta": {"managed-by": "consul-k8s-endpoints-controller", "synthetic-node": "true", "k8s-namespace": "shop",
                                 "pod-name": "shop-api-5f7d-x9z", "k8s-service-name": "shop-api"}},
            "Check": {"CheckID": "shop/shop-api-5f7d-x9z-shop-api", "Name": "Kubernetes Readiness Check", "Type": "kubernetes-readiness",
                      "Status": "passing", "Output": "Kubernetes health checks passing", "ServiceID": "shop-api-5f7d-x9z-shop-api"}}"#,
    );
    assert_eq!(st, 200, "{body}");
    // No pod registered as "web" at all: the synthetic nodes tell whose registrations these are.
    let (run, json) =
        wait_json(&["--http-addr", &addr, "--service", "web", "--deadline", "1s"], &[], Duration::from_secs(20));
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-017"), "{json:#}");
    let msg = json["root_cause"]["message"].as_str().unwrap();
    assert!(msg.contains("1 synthetic node(s)") && msg.contains("gke-node-1-virtual"), "{msg}");
    let finding = |json: &Value| {
        json["diagnosis"]["checks"].as_array().unwrap().iter().find(|c| c["code"] == "WAIT-017").cloned().unwrap()
    };
    let fix = finding(&json)["fix"].as_str().unwrap().to_string();
    assert!(fix.contains("kubectl get endpoints -A --field-selector metadata.name=web"), "{fix}");
    assert!(!fix.contains("consul services register"), "no agent advice: {fix}");
    // The pod exists, without the tag asked for: the pod's namespace and where tags come from.
    let (run, json) = wait_json(
        &["--http-addr", &addr, "--service", "shop-api", "--tag", "canary", "--deadline", "1s"],
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-017"), "{json:#}");
    let fix = finding(&json)["fix"].as_str().unwrap().to_string();
    assert!(
        fix.contains("kubectl get endpoints -n shop") && fix.contains("consul.hashicorp.com/service-tags"),
        "{fix}"
    );
    // Without the synthetic node, the same question is about an agent's registration (WAIT-001).
    let (st, _) = a.put("/v1/catalog/deregister", None, r#"{"Node": "gke-node-1-virtual"}"#);
    assert_eq!(st, 200);
    let (run, json) =
        wait_json(&["--http-addr", &addr, "--service", "web", "--deadline", "1s"], &[], Duration::from_secs(20));
    assert_eq!(run.code, 1);
    assert_eq!(diagnosis_root(&json).as_deref(), Some("WAIT-001"), "{json:#}");
}
