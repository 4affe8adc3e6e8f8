//! `check --probe-register` against real agents, and the proof that `check` without it writes
//! nothing (the agent's own request log lists every method it served).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// (method, url) of every "Request finished" line the agent logged after `from` bytes.
fn requests_since(a: &Agent, from: usize) -> Vec<(String, String)> {
    let log = a.log();
    log[from.min(log.len())..]
        .lines()
        .filter(|l| l.contains("agent.http: Request finished"))
        .filter_map(|l| {
            let method = l.split("method=").nth(1)?.split_whitespace().next()?.to_string();
            let url = l.split("url=").nth(1)?.split_whitespace().next()?.to_string();
            Some((method, url))
        })
        .collect()
}

fn probe_ids(a: &Agent, token: Option<&str>) -> Vec<String> {
    let (st, body) = a.get("/v1/agent/services", token);
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v.as_object().unwrap().keys().filter(|k| k.starts_with("consul-doctor-probe-")).cloned().collect()
}

#[test]
fn check_without_probe_register_makes_no_write() {
    let a = start("readonly", Spec { dev: true, ..Spec::default() }, true);
    let (st, _) = a.put("/v1/agent/service/register", None, r#"{"Name":"web","ID":"web-1","Port":80}"#);
    assert_eq!(st, 200);
    wait_until(Duration::from_secs(10), || a.log().contains("url=/v1/agent/service/register"), "log line");
    let args = ["--http-addr", &a.http_addr(), "--service", "web", "--service-id", "web-1", "--service-port", "80"];
    let from = a.log().len();
    let (_, json) = check_json(&args, &[]);
    assert_eq!(result(&json, "discovery.dns")["status"], "pass", "the discovery stage ran: {json:#}");
    std::thread::sleep(Duration::from_millis(300));
    let seen = requests_since(&a, from);
    let methods: std::collections::BTreeSet<&str> = seen.iter().map(|(m, _)| m.as_str()).collect();
    eprintln!("methods the agent served to check: {methods:?}");
    assert!(!seen.is_empty(), "the agent logs its requests");
    for (m, url) in &seen {
        assert!(m == "GET" || (m == "POST" && url.starts_with("/v1/internal/acl/authorize")), "a write: {m} {url}");
    }
    // The same log shows the probe's writes when it is asked for: the test can see a write.
    let from = a.log().len();
    let mut with_probe = args.to_vec();
    with_probe.push("--probe-register");
    let (run, json) = check_json(&with_probe, &[]);
    assert_eq!(run.code, 0, "{json:#}");
    std::thread::sleep(Duration::from_millis(300));
    let seen = requests_since(&a, from);
    assert!(seen.iter().any(|(m, u)| m == "PUT" && u == "/v1/agent/service/register"), "{seen:?}");
    assert!(seen.iter().any(|(m, u)| m == "PUT" && u.starts_with("/v1/agent/service/deregister/consul-doctor-probe-")));
}

#[test]
fn probe_reaches_the_catalog_reports_latency_and_leaves_nothing() {
    let a = start("probe-ok", Spec { dev: true, ..Spec::default() }, true);
    let dump = || {
        let (_, services) = a.get("/v1/catalog/services", None);
        let (_, web) = a.get("/v1/catalog/service/web", None);
        let (_, local) = a.get("/v1/agent/services", None);
        (services, web, local)
    };
    // The agent's own "consul" service syncs shortly after the election: start from a settled catalog.
    wait_until(
        Duration::from_secs(20),
        || a.get("/v1/catalog/services", None).1.contains("\"consul\""),
        "consul service",
    );
    let before = dump();
    let (run, json) = check_json(
        &["--http-addr", &a.http_addr(), "--service", "web", "--service-port", "8080", "--probe-register"],
        &[],
    );
    assert_eq!(run.code, 0, "{json:#}");
    let reg = result(&json, "probe.register");
    assert_eq!(reg["status"], "pass", "{json:#}");
    let id = reg["evidence"]["probe_id"].as_str().unwrap();
    assert!(id.starts_with("consul-doctor-probe-") && id.len() > "consul-doctor-probe-".len() + 8, "{id}");
    let cat = result(&json, "probe.catalog");
    assert_eq!(cat["status"], "pass", "{cat:#}");
    let latency: u64 = cat["evidence"]["latency_ms"].as_str().unwrap().parse().unwrap();
    assert!(latency < 5000, "{latency}");
    assert_eq!(result(&json, "probe.cleanup")["status"], "pass");
    assert_eq!(dump(), before, "the catalog and the agent are exactly as before");
    // It really was there: the agent logged the registration of that ID and its removal.
    let log = a.log();
    assert!(log.contains(&format!("Synced service: service={id}")), "anti-entropy synced the probe");
    assert!(log.contains(&format!("Deregistered service: service={id}")), "and removed it");
}

#[test]
fn token_that_may_not_write_the_name_is_refused_before_any_write() {
    let a = acl();
    let (_, secret) = a.acl_token(
        "probe-limited",
        r#"service "probe-allowed" { policy = "write" } service_prefix "" { policy = "read" } node_prefix "" { policy = "read" }"#,
        "",
    );
    // The real name is not writable: the acl stage's ACL-006 blocks the probe.
    let (run, json) = check_json(
        &["--http-addr", &a.http_addr(), "--token", &secret, "--service", "probe-denied", "--probe-register"],
        &[],
    );
    assert_eq!(root_cause(&json).as_deref(), Some("ACL-006"), "{json:#}");
    assert_eq!(result(&json, "probe.register")["blocked_by"], "ACL-006", "{json:#}");
    assert_eq!(run.code, 1);
    // --probe-name another name: the probe asks itself and refuses with the ACL finding.
    let (run, json) = check_json(
        &[
            "--http-addr",
            &a.http_addr(),
            "--token",
            &secret,
            "--service",
            "probe-allowed",
            "--probe-register",
            "--probe-name",
            "probe-denied",
        ],
        &[],
    );
    let reg = result(&json, "probe.register");
    assert_eq!(reg["code"], "ACL-006", "{json:#}");
    assert!(reg["message"].as_str().unwrap().contains("nothing written"), "{reg:#}");
    assert_eq!(result(&json, "probe.cleanup")["blocked_by"], "ACL-006");
    assert_eq!(run.code, 1);
    let (_, listed) = a.get("/v1/catalog/service/probe-denied", Some(MASTER_TOKEN));
    assert_eq!(listed.trim(), "[]", "nothing registered under the refused name");
    assert!(probe_ids(a, Some(MASTER_TOKEN)).is_empty());
    assert!(!run.stdout.contains(&secret));
}

/// A server and a client agent where the client still allows a registration the servers now
/// refuse: the token's policy was cut to read on the server after the client cached it
/// (`policy_ttl = "10m"`), so the client answers 200 and anti-entropy is blocked by ACLs.
fn blocked_sync() -> (Agent, Agent, String) {
    let server = start(
        "ae-srv",
        Spec { server: true, bootstrap_expect: Some(1), acl_master: Some(MASTER_TOKEN.into()), ..Spec::default() },
        true,
    );
    let client = start(
        "ae-cli",
        Spec {
            join: Some(server.serf_addr()),
            extra_hcl: format!(
                "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  down_policy = \"extend-cache\"\n  policy_ttl = \"10m\"\n  token_ttl = \"10m\"\n  tokens {{\n    agent = \"{MASTER_TOKEN}\"\n  }}\n}}\n"
            ),
            ..Spec::default()
        },
        true,
    );
    let (_, secret) =
        server.acl_token("ae-web", r#"service "web" { policy = "write" } node_prefix "" { policy = "read" }"#, "");
    // The client resolves (and caches) the token's policy.
    let ask = r#"[{"Resource":"service","Segment":"web","Access":"write"}]"#;
    let (st, body) = http_request("POST", client.http, "/v1/internal/acl/authorize", Some(&secret), Some(ask));
    assert!(st == 200 && body.contains("\"Allow\":true"), "{st} {body}");
    let (_, policy) = server.get("/v1/acl/policy/name/ae-web-policy", Some(MASTER_TOKEN));
    let pid = serde_json::from_str::<Value>(&policy).unwrap()["ID"].as_str().unwrap().to_string();
    let cut = json!({"Name": "ae-web-policy", "Rules": r#"service "web" { policy = "read" } node_prefix "" { policy = "read" }"#});
    let (st, body) = server.put(&format!("/v1/acl/policy/{pid}"), Some(MASTER_TOKEN), &cut.to_string());
    assert_eq!(st, 200, "{body}");
    (server, client, secret)
}

fn probe_args(client: &Agent, secret: &str, timeout: &str) -> Vec<String> {
    ["--http-addr", &client.http_addr(), "--token", secret, "--service", "web", "--service-port", "80"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--probe-register".into(), "--timeout".into(), timeout.into()])
        .collect()
}

#[test]
fn blocked_anti_entropy_is_found_and_the_leftover_is_named() {
    let (server, client, secret) = blocked_sync();
    let args = probe_args(&client, &secret, "2s");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (run, json) = check_json(&args, &[]);
    assert_eq!(result(&json, "probe.register")["status"], "pass", "the agent accepted it: {json:#}");
    let cat = result(&json, "probe.catalog");
    assert_eq!(cat["code"], "PRB-002", "{json:#}");
    assert!(client.log().contains("Service registration blocked by ACLs"), "the agent log agrees");
    let (_, listed) = server.get("/v1/catalog/service/web", Some(MASTER_TOKEN));
    assert_eq!(listed.trim(), "[]", "it never reached the catalog");
    // Consul 1.8.7: once the sync was refused the client re-resolves the policy, so the
    // deregistration with the same token is refused too; the doctor says which ID is left.
    let cleanup = results(&json, "probe.cleanup");
    assert_eq!(cleanup.len(), 1, "reported once: {cleanup:#?}");
    let left = probe_ids(&client, Some(MASTER_TOKEN));
    match cleanup[0]["code"].as_str() {
        None => assert!(left.is_empty(), "cleaned up: nothing left on the agent"),
        Some(code) => {
            assert_eq!(code, "PRB-003", "{json:#}");
            assert!(cleanup[0]["message"].as_str().unwrap().contains("403"), "{json:#}");
            assert_eq!(left, vec![cleanup[0]["evidence"]["leftover_id"].as_str().unwrap().to_string()]);
            // Left critical: no consumer is ever routed to it.
            let (_, passing) = client.get("/v1/health/service/web?passing", Some(MASTER_TOKEN));
            assert_eq!(passing.trim(), "[]");
            let _ = client.put(&format!("/v1/agent/service/deregister/{}", left[0]), Some(MASTER_TOKEN), "");
        }
    }
    assert_eq!(run.code, 1);
    assert!(!run.stdout.contains(&secret));
}

/// Starts the doctor and waits until the agent logged the probe's registration.
fn start_probe_and_wait_for_register(client: &Agent, secret: &str) -> std::process::Child {
    let from = client.log().len();
    let mut cmd = doctor_cmd();
    cmd.arg("check").arg("--format").arg("json").args(probe_args(client, secret, "10s"));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn doctor");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !requests_since(client, from).iter().any(|(m, u)| m == "PUT" && u == "/v1/agent/service/register") {
        assert!(Instant::now() < deadline, "the doctor never registered its probe");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn sigint_mid_probe_leaves_the_catalog_clean() {
    let (_server, client, secret) = blocked_sync();
    let child = start_probe_and_wait_for_register(&client, &secret);
    assert!(!probe_ids(&client, Some(MASTER_TOKEN)).is_empty(), "the probe is registered right now");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("deregistered"), "says what it cleaned up: {stderr}");
    assert!(probe_ids(&client, Some(MASTER_TOKEN)).is_empty(), "nothing left after Ctrl-C");
}

#[test]
fn a_probe_left_by_a_killed_doctor_is_reaped_by_its_agent_within_two_minutes() {
    // kill -9: no cleanup runs. The probe's TTL check expires after 10 s, which starts Consul's
    // deregister-critical clock (1m); the agent's reaper runs every 30 s. PRB-003 promises about
    // 100 s (measured 87-90 s); before, a check created critical with a 10m TTL lived 690 s.
    let (_server, client, secret) = blocked_sync();
    let child = start_probe_and_wait_for_register(&client, &secret);
    let registered = Instant::now();
    let id = probe_ids(&client, Some(MASTER_TOKEN)).pop().expect("registered");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait_with_output();
    assert_eq!(probe_ids(&client, Some(MASTER_TOKEN)), vec![id.clone()], "left behind by the kill");
    while probe_ids(&client, Some(MASTER_TOKEN)).contains(&id) {
        assert!(registered.elapsed() < Duration::from_secs(125), "{id} still registered after 125 s");
        std::thread::sleep(Duration::from_secs(1));
    }
    // The agent's own reaper removed it (1.8.7's log line), not anything else.
    let reaped = format!("Check for service has been critical for too long; deregistered service: service={id}");
    assert!(client.log().contains(&reaped), "{}", client.log());
}

#[test]
fn agent_killed_mid_probe_names_the_leftover_id() {
    let (_server, client, secret) = blocked_sync();
    let child = start_probe_and_wait_for_register(&client, &secret);
    let id = probe_ids(&client, Some(MASTER_TOKEN)).pop().expect("registered");
    client.kill();
    let out = child.wait_with_output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let c = result(&json, "probe.cleanup");
    assert_eq!(c["code"], "PRB-003", "{json:#}");
    assert_eq!(c["evidence"]["leftover_id"], id.as_str());
    assert!(c["fix"].as_str().unwrap().contains(&format!("consul services deregister -id {id}")), "{c:#}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn deadline_mid_probe_still_cleans_up_and_reports_it() {
    let (_server, client, secret) = blocked_sync();
    let mut args = probe_args(&client, &secret, "10s");
    args.extend(["--deadline".to_string(), "3s".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (run, json) = check_json(&args, &[]);
    assert_eq!(result(&json, "probe.register")["code"], "RUN-001", "the deadline cut the probe: {json:#}");
    let cleanup: Vec<_> = results(&json, "probe.cleanup")
        .into_iter()
        .filter(|c| c["message"].as_str().unwrap().contains("run cut short"))
        .collect();
    assert_eq!(cleanup.len(), 1, "the end-of-run sweep reported the probe: {json:#}");
    let left = probe_ids(&client, Some(MASTER_TOKEN));
    match cleanup[0]["code"].as_str() {
        None => assert!(left.is_empty(), "deregistered after the deadline"),
        Some(code) => {
            // As in the blocked-sync case, 1.8.7 may refuse the deregistration too: named.
            assert_eq!(code, "PRB-003", "{json:#}");
            assert_eq!(left, vec![cleanup[0]["evidence"]["leftover_id"].as_str().unwrap().to_string()]);
        }
    }
    assert_eq!(run.code, 1);
}

#[test]
fn wait_and_scan_without_prune_make_no_write() {
    // The only writes the tool ever makes are the flagged ones: the agent's own request log
    // shows what `wait` and a dry-run `scan` asked for.
    let a = start("readonly-cmds", Spec { dev: true, ..Spec::default() }, true);
    let (st, _) = a.put(
        "/v1/agent/service/register",
        None,
        r#"{"Name":"web","ID":"web-1","Port":80,"Check":{"TTL":"10m","Status":"passing"}}"#,
    );
    assert_eq!(st, 200);
    wait_until(
        Duration::from_secs(10),
        || a.get("/v1/health/service/web?passing", None).1.contains("web-1"),
        "web passing",
    );
    let from = a.log().len();
    let wait = run_doctor(&["wait", "--http-addr", &a.http_addr(), "--service", "web", "--deadline", "10s"], &[]);
    assert_eq!(wait.code, 0, "{}{}", wait.stdout, wait.stderr);
    let scan = run_doctor(&["scan", "--http-addr", &a.http_addr(), "--format", "json"], &[]);
    assert!(scan.code == 0 || scan.code == 1, "{}{}", scan.stdout, scan.stderr);
    std::thread::sleep(Duration::from_millis(300));
    let seen = requests_since(&a, from);
    assert!(seen.iter().any(|(_, u)| u.starts_with("/v1/health/service/web")), "wait asked: {seen:?}");
    assert!(
        seen.iter().any(|(_, u)| u.starts_with("/v1/internal/ui/nodes") || u.starts_with("/v1/catalog/services")),
        "scan asked: {seen:?}"
    );
    for (m, url) in &seen {
        assert!(m == "GET" || (m == "POST" && url.starts_with("/v1/internal/acl/authorize")), "a write: {m} {url}");
    }
}
