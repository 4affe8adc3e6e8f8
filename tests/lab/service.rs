//! Registration scenarios against real agents: health endpoints, ACL scopes, duplicate and stale
//! instances, and services stuck between the agent and the catalog.

use std::time::Duration;

use serde_json::Value;

use crate::common::fakedns::FakeDns;
use crate::common::fault::{Behavior, FaultServer, Route};
use crate::common::*;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A definition with one HTTP check against `url`.
fn http_service(name: &str, url: &str, timeout: &str) -> String {
    format!(
        r#"{{"service": {{"name": "{name}", "id": "{name}-1", "port": 18181, "check": {{"http": "{url}", "interval": "10s", "timeout": "{timeout}", "deregister_critical_service_after": "5m"}}}}}}"#
    )
}

fn check_service(agent: &Agent, def: &str, extra: &[&str], env: &[(&str, &str)]) -> (Run, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "svc.json", def);
    let addr = agent.http_addr();
    let mut args = vec!["--http-addr", addr.as_str(), "--service-file", path.as_str()];
    args.extend_from_slice(extra);
    check_json(&args, env)
}

fn register(agent: &Agent, token: Option<&str>, body: &str) {
    let (st, text) = agent.put("/v1/agent/service/register", token, body);
    assert_eq!(st, 200, "register {body}: {text}");
}

// --- health endpoint probes -------------------------------------------------------------------

#[test]
fn health_endpoint_answering_500() {
    let s = FaultServer::http(vec![Route::text("/health", 500, "database unreachable")]);
    let (run, json) = check_service(dev(), &http_service("h500", &format!("http://{}/health", s.addr), "2s"), &[], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("HLT-004"), "{json:#}");
    assert_eq!(run.code, 1);
    let msg = result(&json, "health.probe")["message"].as_str().unwrap();
    assert!(msg.contains("500 Internal Server Error") && msg.contains("database unreachable"), "{msg}");
}

#[test]
fn health_endpoint_answering_429_is_a_warning() {
    let s = FaultServer::http(vec![Route::text("/health", 429, "slow down")]);
    let (run, json) = check_service(dev(), &http_service("h429", &format!("http://{}/health", s.addr), "2s"), &[], &[]);
    assert_eq!(codes(&json), vec!["HLT-005"], "{json:#}");
    assert_eq!(run.code, 0);
}

#[test]
fn health_endpoint_refusing() {
    let port = free_port();
    let (_, json) =
        check_service(dev(), &http_service("hrefused", &format!("http://127.0.0.1:{port}/health"), "2s"), &[], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("HLT-001"), "{json:#}");
}

#[test]
fn health_endpoint_hanging_is_bounded_by_the_check_timeout() {
    let s = FaultServer::http(vec![Route::text("/health", 200, "ok").with_behavior(Behavior::Hang)]);
    let (run, json) =
        check_service(dev(), &http_service("hhang", &format!("http://{}/health", s.addr), "1s"), &[], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("HLT-002"), "{json:#}");
    assert!(run.elapsed < Duration::from_secs(3), "took {:?}", run.elapsed);
}

#[test]
fn health_endpoint_tls_mismatch_and_closed_connections() {
    // A plain-HTTP server answers a TLS ClientHello with an HTTP error, as Go's does.
    let plain = FaultServer::banner(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let (_, json) =
        check_service(dev(), &http_service("htls", &format!("https://{}/health", plain.addr), "2s"), &[], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("HLT-003"), "{json:#}");
    let closing = FaultServer::close_on_accept();
    let (_, json) =
        check_service(dev(), &http_service("hclosed", &format!("http://{}/health", closing.addr), "2s"), &[], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("HLT-008"), "{json:#}");
}

#[test]
fn health_endpoint_name_that_does_not_resolve() {
    let d = FakeDns::records(vec![]);
    let def = http_service("hdns", "http://app.lab.test:8080/health", "2s");
    let (_, json) = check_service(dev(), &def, &["--dns-server", &d.addr.to_string()], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("HLT-007"), "{json:#}");
}

#[test]
fn loopback_check_for_a_service_advertised_elsewhere() {
    let s = FaultServer::http(vec![Route::text("/health", 200, "ok")]);
    // The service advertises a routable address (data only: nothing is sent there).
    let def = format!(
        r#"{{"service": {{"name": "hloop", "id": "hloop-1", "address": "10.20.30.40", "port": {}, "check": {{"http": "http://localhost:{}/health", "interval": "10s", "deregister_critical_service_after": "5m"}}}}}}"#,
        s.addr.port(),
        s.addr.port()
    );
    let (run, json) = check_service(dev(), &def, &[], &[]);
    assert_eq!(codes(&json), vec!["HLT-006"], "{json:#}");
    assert_eq!(run.code, 0);
}

#[test]
fn tcp_check_probed_from_flags() {
    let s = FaultServer::silent();
    let port = s.addr.port().to_string();
    let (run, json) = check_json(
        &[
            "--http-addr",
            &dev().http_addr(),
            "--service",
            "tcpflag",
            "--service-id",
            "tcpflag-1",
            "--service-port",
            &port,
            "--check-tcp",
            &s.addr.to_string(),
        ],
        &[],
    );
    // The flags build a check without deregister_critical_service_after: a warning, not a failure.
    assert_eq!(codes(&json), vec!["CFG-023"], "{json:#}");
    assert_eq!(run.code, 0);
    assert!(result(&json, "health.probe")["message"].as_str().unwrap().contains("connected"));
}

#[test]
fn health_stage_runs_while_the_agent_is_down() {
    let s = FaultServer::http(vec![Route::text("/health", 503, "starting")]);
    let dead = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "svc.json", &http_service("hdown", &format!("http://{}/health", s.addr), "2s"));
    let (_, json) = check_json(&["--http-addr", &dead, "--service-file", &path], &[]);
    // The dead agent is the root cause; the health endpoint was still probed and judged.
    assert_eq!(root_cause(&json).as_deref(), Some("TCP-001"), "{json:#}");
    assert_eq!(result(&json, "health.probe")["code"], "HLT-004", "{json:#}");
    assert_eq!(result(&json, "acl.service")["blocked_by"], "TCP-001");
}

#[test]
fn consul_own_check_view_is_shown_beside_the_probe() {
    let a = dev();
    let s = FaultServer::http(vec![Route::text("/health", 500, "boom from the app")]);
    let url = format!("http://{}/health", s.addr);
    register(
        a,
        None,
        &format!(
            r#"{{"Name": "hview", "ID": "hview-1", "Port": 18182, "Check": {{"HTTP": "{url}", "Interval": "1s", "DeregisterCriticalServiceAfter": "5m"}}}}"#
        ),
    );
    wait_until(
        Duration::from_secs(15),
        || a.get("/v1/agent/checks", None).1.contains("boom from the app"),
        "the agent to run the check",
    );
    let def = format!(
        r#"{{"Name": "hview", "ID": "hview-1", "Port": 18182, "Check": {{"HTTP": "{url}", "Interval": "1s", "DeregisterCriticalServiceAfter": "5m"}}}}"#
    );
    let (run, json) = check_service(a, &def, &[], &[]);
    assert_root(&run, &json, "HLT-004", &[]);
    let sync = result(&json, "sync.checks");
    assert_eq!(sync["blocked_by"], "HLT-004", "{sync:#}");
    assert!(sync["message"].as_str().unwrap().contains("boom from the app"), "Consul's own output is shown: {sync:#}");
    a.put("/v1/agent/service/deregister/hview-1", None, "");
}

#[test]
fn ttl_check_that_never_reported_is_shown_as_consul_sees_it() {
    let a = dev();
    register(
        a,
        None,
        r#"{"Name": "httl", "ID": "httl-1", "Port": 18183, "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "5m"}}"#,
    );
    let def = r#"{"Name": "httl", "ID": "httl-1", "Port": 18183, "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "5m"}}"#;
    let (run, json) = check_service(a, def, &[], &[]);
    // Critical with no output: a TTL check that never had an update, not one that ran and
    // failed; and as the only instance is out of DNS, the cause stands as a failure.
    assert_eq!(codes(&json), vec!["SYN-008"], "{json:#}");
    let sync = result(&json, "sync.checks");
    assert!(sync["message"].as_str().unwrap().contains("waits for its first update"), "{sync:#}");
    assert_eq!(sync["raised_by"], "DSC-002", "{sync:#}");
    assert_eq!(run.code, 1);
    assert_eq!(result(&json, "health.probe")["status"], "skip");
    a.put("/v1/agent/service/deregister/httl-1", None, "");
}

// --- duplicates -------------------------------------------------------------------------------

#[test]
fn same_id_on_this_agent_with_another_port() {
    let a = dev();
    register(a, None, r#"{"Name": "dupl", "ID": "dupl-1", "Port": 7001}"#);
    let (run, json) = check_service(a, r#"{"Name": "dupl", "ID": "dupl-1", "Port": 7002}"#, &[], &[]);
    assert_eq!(codes(&json), vec!["DUP-001"], "{json:#}");
    assert_eq!(run.code, 0);
    assert!(result(&json, "duplicates.local_id")["message"].as_str().unwrap().contains("port 7001 -> 7002"));
    // The removal it suggests reaches this agent, where the ID lives.
    let fix = result(&json, "duplicates.local_id")["fix"].as_str().unwrap().to_string();
    assert!(
        fix.contains(&format!("CONSUL_HTTP_ADDR={} consul services deregister -id=dupl-1", a.http_addr())),
        "{fix}"
    );
    a.put("/v1/agent/service/deregister/dupl-1", None, "");
}

#[test]
fn three_stale_critical_instances_on_one_address() {
    let a = dev();
    for i in 1..=3 {
        register(
            a,
            None,
            &format!(
                r#"{{"Name": "stale", "ID": "stale-{i}", "Address": "127.0.0.1", "Port": 18999, "Check": {{"TTL": "30s"}}}}"#
            ),
        );
    }
    wait_until(
        Duration::from_secs(10),
        || a.get("/v1/health/service/stale", None).1.matches("\"ServiceID\"").count() >= 3,
        "catalog sync",
    );
    let (run, json) =
        check_service(a, r#"{"Name": "stale", "ID": "stale-4", "Address": "127.0.0.1", "Port": 18999}"#, &[], &[]);
    assert_eq!(codes(&json), vec!["DUP-003", "DUP-004"], "{json:#}");
    // Every instance is critical, so consumers find nothing: the note that names the cause
    // stands as the failure it causes (one cause, one finding, at its real severity).
    let crit = result(&json, "duplicates.critical");
    assert_eq!((crit["status"].as_str(), crit["raised_by"].as_str()), (Some("fail"), Some("DSC-002")), "{crit:#}");
    assert_eq!(run.code, 1);
    let msg = result(&json, "duplicates.address")["message"].as_str().unwrap();
    assert!(msg.contains("3 other ID(s), 3 of them critical"), "{msg}");
    // The fix names each stale instance's node and the command, with no placeholders.
    let fix = result(&json, "duplicates.address")["fix"].as_str().unwrap();
    for i in 1..=3 {
        assert!(
            fix.contains(&format!("on node {} (127.0.0.1): consul services deregister -id=stale-{i}", a.name)),
            "{fix}"
        );
    }
    assert!(!fix.contains('<'), "{fix}");
    for i in 1..=3 {
        a.put(&format!("/v1/agent/service/deregister/stale-{i}"), None, "");
    }
}

#[test]
fn same_id_on_a_client_and_on_the_server() {
    let server = start("dupsrv", Spec { dev: true, ..Spec::default() }, true);
    let client = start("dupcli", Spec { server: false, join: Some(server.serf_addr()), ..Spec::default() }, true);
    let body = r#"{"Name": "twin", "ID": "twin-1", "Port": 7100}"#;
    register(&server, None, body);
    register(&client, None, body);
    wait_until(
        Duration::from_secs(15),
        || server.get("/v1/health/service/twin", None).1.matches("\"twin-1\"").count() >= 2,
        "both instances in the catalog",
    );
    let (run, json) = check_service(&server, body, &[], &[]);
    assert_eq!(codes(&json), vec!["DUP-002"], "{json:#}");
    assert_eq!(run.code, 0);
    assert!(result(&json, "duplicates.remote_id")["message"].as_str().unwrap().contains(&client.name));
}

// --- agent vs catalog -------------------------------------------------------------------------

#[test]
fn catalog_holding_another_definition() {
    let a = dev();
    register(a, None, r#"{"Name": "drift", "ID": "drift-1", "Port": 7200}"#);
    wait_until(
        Duration::from_secs(10),
        || a.get("/v1/catalog/service/drift", None).1.contains("drift-1"),
        "catalog sync",
    );
    let node = &a.name;
    let (st, body) = a.put(
        "/v1/catalog/register",
        None,
        &format!(r#"{{"Node": "{node}", "Address": "127.0.0.1", "Service": {{"ID": "drift-1", "Service": "drift", "Port": 9999}}}}"#),
    );
    assert_eq!(st, 200, "{body}");
    let (_, json) = check_service(a, r#"{"Name": "drift", "ID": "drift-1", "Port": 7200}"#, &[], &[]);
    assert!(codes(&json).contains(&"SYN-003".to_string()), "{json:#}");
    assert!(result(&json, "sync.catalog")["message"].as_str().unwrap().contains("port agent 7200 / catalog 9999"));
    a.put("/v1/agent/service/deregister/drift-1", None, "");
}

#[test]
fn service_stuck_on_a_client_whose_servers_are_gone() {
    let server = start("gone", Spec { dev: true, ..Spec::default() }, true);
    let client = start("stuck", Spec { server: false, join: Some(server.serf_addr()), ..Spec::default() }, true);
    register(&client, None, r#"{"Name": "stuck", "ID": "stuck-1", "Port": 7300}"#);
    server.kill();
    wait_until(
        Duration::from_secs(30),
        || client.get("/v1/status/leader", None).0 == 500,
        "the client to lose its servers",
    );
    let (run, json) =
        check_service(&client, r#"{"Name": "stuck", "ID": "stuck-1", "Port": 7300}"#, &["--timeout", "3s"], &[]);
    let root = root_cause(&json).unwrap();
    assert!(root == "LDR-002" || root == "LDR-005", "{json:#}");
    assert_eq!(run.code, 1);
    let msg = result(&json, "leader.status")["message"].as_str().unwrap();
    assert!(msg.contains("\"stuck-1\""), "names the stuck service: {msg}");
    assert_eq!(result(&json, "sync.catalog")["blocked_by"], root.as_str());
}

// --- ACL scopes (shared ACL agent, default deny) ----------------------------------------------

#[test]
fn no_token_under_default_deny_blocks_the_service_checks() {
    let a = acl();
    let (run, json) = check_service(a, r#"{"Name": "anon", "ID": "anon-1", "Port": 7400}"#, &[], &[]);
    assert_root(&run, &json, "ACL-001", &["duplicates", "sync"]);
    assert_eq!(result(&json, "acl.service")["blocked_by"], "ACL-001");
}

#[test]
fn token_lacking_service_write_for_the_name() {
    let a = acl();
    let (accessor, secret) = a.acl_token("other-writer", r#"service "other" { policy = "write" }"#, "");
    let def = r#"{"Name": "web-acl", "ID": "web-acl-1", "Port": 7401}"#;
    let (run, json) = check_service(a, def, &[], &[("CONSUL_HTTP_TOKEN", &secret)]);
    assert_root(&run, &json, "ACL-006", &["duplicates", "sync"]);
    let r = result(&json, "acl.service");
    assert!(r["message"].as_str().unwrap().contains(&accessor), "names the AccessorID: {r:#}");
    assert!(
        r["fix"].as_str().unwrap().contains("service \"web-acl\" { policy = \"write\" }"),
        "policy snippet for this name: {r:#}"
    );
    // The fix uses the real values, and says what the fixing commands themselves need.
    let fix = r["fix"].as_str().unwrap();
    assert!(fix.contains(&format!("-id {accessor}")) && !fix.contains("<AccessorID>"), "{fix}");
    assert!(fix.contains("acl:write") && fix.contains(&a.http_addr()), "{fix}");
    // The real agent agrees: registering with that token is refused with 403 "Permission
    // denied". This token may not read /v1/agent/self, so the agent's version is unknown and
    // the doctor does not claim an exact wording (the facts table: no text without a version).
    let (st, text) = a.put("/v1/agent/service/register", Some(&secret), def);
    assert_eq!(st, 403);
    assert!(text.contains("Missing service:write on web-acl"), "{text}");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("403 \"Permission denied") && msg.contains("not judged for this version"), "{msg}");
    assert!(!msg.contains("lacks permission"), "{msg}");
    for format in ["human", "json", "junit"] {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "svc.json", def);
        let out = run_doctor(
            &["check", "--format", format, "--http-addr", &a.http_addr(), "--service-file", &path],
            &[("CONSUL_HTTP_TOKEN", &secret)],
        );
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret), "{format} leaks the secret");
        assert!(out.stdout.contains("ACL-006"), "{format}");
    }
}

#[test]
fn token_with_service_write_from_a_token_file() {
    let a = acl();
    let (_, secret) = a.acl_token("web-ok-writer", r#"service "web-ok" { policy = "write" }"#, "");
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    std::fs::write(&tf, &secret).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = [("CONSUL_HTTP_TOKEN_FILE", tf.to_str().unwrap())];
    let (run, json) = check_service(a, r#"{"Name": "web-ok", "ID": "web-ok-1", "Port": 7402}"#, &[], &env);
    // It may register; but with default deny and no default token, DNS cannot find it.
    assert_eq!(codes(&json), vec!["ACL-007"], "{json:#}");
    assert_eq!(run.code, 0);
    let svc: Vec<&Value> = results(&json, "acl.service");
    assert_eq!(svc[0]["status"], "pass");
    assert!(svc[0]["message"].as_str().unwrap().contains("token file"));
    // Consul's DNS interface really does not answer for it once registered.
    register(a, Some(&secret), r#"{"Name": "web-ok", "ID": "web-ok-1", "Port": 7402}"#);
    assert_eq!(a.get("/v1/health/service/web-ok", None).1.trim(), "[]", "token-less reads are filtered");
    a.put("/v1/agent/service/deregister/web-ok-1", Some(&secret), "");
    for format in ["human", "json", "junit"] {
        let dir2 = tempfile::tempdir().unwrap();
        let path = write(&dir2, "svc.json", r#"{"Name": "web-ok", "ID": "web-ok-1", "Port": 7402}"#);
        let out =
            run_doctor(&["check", "--format", format, "--http-addr", &a.http_addr(), "--service-file", &path], &env);
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret), "{format} leaks the secret");
    }
}

#[test]
fn registration_token_deleted_leaves_catalog_stale() {
    let a = acl();
    let master = a.master_token.as_deref().unwrap();
    let (accessor, secret) = a.acl_token("ttl-reg", r#"service "ttlsync" { policy = "write" }"#, "");
    register(
        a,
        Some(&secret),
        r#"{"Name": "ttlsync", "ID": "ttlsync-1", "Port": 7403, "Check": {"CheckID": "ttlsync-ttl", "TTL": "2s", "Status": "passing", "DeregisterCriticalServiceAfter": "10m"}}"#,
    );
    wait_until(
        Duration::from_secs(10),
        || a.get("/v1/health/checks/ttlsync", Some(master)).1.contains("passing"),
        "catalog sync",
    );
    let (st, _) = http_request("DELETE", a.http, &format!("/v1/acl/token/{accessor}"), Some(master), None);
    assert_eq!(st, 200);
    // The TTL lapses on the agent; the catalog keeps the last synced "passing".
    wait_until(
        Duration::from_secs(15),
        || a.get("/v1/agent/checks", Some(master)).1.contains("critical"),
        "TTL to expire",
    );
    std::thread::sleep(Duration::from_millis(500));
    let (_, json) = check_service(
        a,
        r#"{"Name": "ttlsync", "ID": "ttlsync-1", "Port": 7403, "Check": {"TTL": "2s", "DeregisterCriticalServiceAfter": "10m"}}"#,
        &["--token", master],
        &[],
    );
    let c = codes(&json);
    assert!(c.contains(&"SYN-002".to_string()), "{json:#}");
    assert!(
        result(&json, "sync.checks")["message"]
            .as_str()
            .unwrap()
            .contains("critical on the agent but passing in the catalog"),
        "{json:#}"
    );
    a.put("/v1/agent/service/deregister/ttlsync-1", Some(master), "");
}

#[test]
fn registered_on_the_agent_but_missing_from_the_catalog() {
    let a = acl();
    let master = a.master_token.as_deref().unwrap();
    let (accessor, secret) = a.acl_token("lost-reg", r#"service "lost" { policy = "write" }"#, "");
    register(a, Some(&secret), r#"{"Name": "lost", "ID": "lost-1", "Port": 7404}"#);
    wait_until(
        Duration::from_secs(10),
        || a.get("/v1/catalog/service/lost", Some(master)).1.contains("lost-1"),
        "catalog sync",
    );
    let (st, _) = http_request("DELETE", a.http, &format!("/v1/acl/token/{accessor}"), Some(master), None);
    assert_eq!(st, 200);
    // The catalog entry disappears (an operator or a restarted server); the agent cannot re-sync
    // it because the registration token is gone.
    let (st, body) =
        a.put("/v1/catalog/deregister", Some(master), &format!(r#"{{"Node": "{}", "ServiceID": "lost-1"}}"#, a.name));
    assert_eq!(st, 200, "{body}");
    let (run, json) = check_service(a, r#"{"Name": "lost", "ID": "lost-1", "Port": 7404}"#, &["--token", master], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("SYN-001"), "{json:#}");
    assert_eq!(run.code, 1);
    assert_eq!(result(&json, "sync.checks")["blocked_by"], "SYN-001");
    a.put("/v1/agent/service/deregister/lost-1", Some(master), "");
}

#[test]
fn http_check_method_and_headers_are_sent_as_the_definition_says() {
    let s = FaultServer::http(vec![Route::text("/health", 200, "ok").with_method("POST")]);
    let def = format!(
        r#"{{"Name": "hmethod", "ID": "hmethod-1", "Check": {{"HTTP": "http://{}/health", "Method": "POST", "Header": {{"X-Probe": ["consul"], "Authorization": ["Bearer abc"]}}, "Interval": "10s", "DeregisterCriticalServiceAfter": "5m"}}}}"#,
        s.addr
    );
    let (run, json) = check_service(dev(), &def, &[], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    let req = s.requests().into_iter().find(|r| r.path == "/health").expect("the probe reached the endpoint");
    assert_eq!(req.method, "POST");
    assert_eq!(req.header("x-probe"), Some("consul"));
    assert_eq!(req.header("authorization"), Some("Bearer abc"));
    assert_eq!(req.header("user-agent"), Some("Consul Health Check"));
}

#[test]
fn least_privilege_token_that_registered_the_service_is_not_told_it_is_missing() {
    // `service "lp-web" { policy = "write" }` and nothing else: the catalog answers are filtered
    // (no node:read), so absence cannot be concluded — the doctor says what it could not see.
    let a = acl();
    let master = a.master_token.as_deref().unwrap();
    let (_, secret) = a.acl_token("lp-web-writer", r#"service "lp-web" { policy = "write" }"#, "");
    let def = r#"{"Name": "lp-web", "ID": "lp-web-1", "Address": "127.0.0.1", "Port": 7411}"#;
    register(a, Some(&secret), def);
    wait_until(
        Duration::from_secs(10),
        || a.get("/v1/catalog/service/lp-web", Some(master)).1.contains("lp-web-1"),
        "catalog sync",
    );
    assert_eq!(a.get("/v1/catalog/service/lp-web", Some(&secret)).1.trim(), "[]", "the token's view is filtered");
    let (run, json) = check_service(a, def, &["--token", &secret], &[]);
    assert!(!codes(&json).contains(&"SYN-001".to_string()), "no false SYN-001: {json:#}");
    assert_eq!(run.code, 0, "{json:#}");
    let sync = result(&json, "sync.catalog");
    assert_eq!(sync["status"], "skip", "{sync:#}");
    assert_eq!(sync["not_judged"], true, "{sync:#}");
    let msg = sync["message"].as_str().unwrap();
    assert!(msg.contains("filtered by ACLs") && msg.contains("node:read"), "{msg}");
    for id in ["duplicates.remote_id", "duplicates.address", "duplicates.critical"] {
        let r = result(&json, id);
        assert_eq!(r["not_judged"], true, "{id} must not claim absence from a filtered list: {r:#}");
    }
    // The same service seen through a token that reads everything is judged normally.
    let (_, json) = check_service(a, def, &["--token", master], &[]);
    assert_eq!(result(&json, "sync.catalog")["status"], "pass", "{json:#}");
    assert_eq!(result(&json, "duplicates.remote_id")["status"], "pass", "{json:#}");
    // The human report never shows the filtered checks with a green tick.
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "svc.json", def);
    let human = run_doctor(
        &["check", "--color", "never", "--http-addr", &a.http_addr(), "--service-file", &path, "--token", &secret],
        &[],
    );
    assert!(human.stdout.contains("? sync.catalog"), "{}", human.stdout);
    assert!(!human.stdout.contains(&secret));
    a.put("/v1/agent/service/deregister/lp-web-1", Some(master), "");
}

#[test]
fn preflight_before_the_app_starts_is_not_failed_by_its_health_endpoint() {
    let a = dev();
    let port = free_port();
    let def = format!(
        r#"{{"service": {{"name": "prestart", "id": "prestart-1", "port": {port}, "check": {{"http": "http://127.0.0.1:{port}/health", "interval": "10s", "deregister_critical_service_after": "5m"}}}}}}"#
    );
    let (run, json) = check_service(a, &def, &[], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("HLT-001"), "{json:#}");
    assert_eq!(run.code, 1);
    let (run, json) = check_service(a, &def, &["--pre-start", "--fail-on", "warn"], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    let probe = result(&json, "health.probe");
    assert_eq!((probe["code"].as_str(), probe["status"].as_str()), (Some("HLT-009"), Some("note")), "{probe:#}");
    assert!(probe["message"].as_str().unwrap().contains("critical until the application answers"));
    // An endpoint that answers wrongly is still a failure before the start.
    let bad = FaultServer::http(vec![Route::text("/health", 503, "down")]);
    let def = http_service("prestart-bad", &format!("http://{}/health", bad.addr), "2s");
    let (run, json) = check_service(a, &def, &["--pre-start"], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("HLT-004"), "{json:#}");
    assert_eq!(run.code, 1);
}

#[test]
fn ordinary_definition_without_id_or_deregister_passes_fail_on_warn() {
    // What most real definitions look like: no ID (one instance per agent), no
    // deregister_critical_service_after. Advice, not warnings.
    let a = dev();
    let up = FaultServer::http(vec![Route::text("/health", 200, "<html><body>ok</body></html>")]);
    let def = format!(
        r#"{{"service": {{"name": "ordinary", "port": {}, "check": {{"http": "http://{}/health", "interval": "10s"}}}}}}"#,
        up.addr.port(),
        up.addr
    );
    let (run, json) = check_service(a, &def, &["--fail-on", "warn"], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    let notes: Vec<&Value> = json["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "note").collect();
    let mut found: Vec<&str> = notes.iter().map(|c| c["code"].as_str().unwrap()).collect();
    found.sort();
    assert_eq!(found, ["CFG-022", "CFG-023"], "{json:#}");
    assert_eq!(json["summary"]["warn"], 0);
    assert_eq!(json["status"], "pass");
    // The passing probe line carries no response body.
    let probe = result(&json, "health.probe");
    assert_eq!(probe["status"], "pass");
    assert!(!probe["message"].as_str().unwrap().contains("<html>"), "{probe:#}");
    // JUnit agrees: notes are no failures.
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "svc.json", &def);
    let junit = run_doctor(
        &["check", "--format", "junit", "--fail-on", "warn", "--http-addr", &a.http_addr(), "--service-file", &path],
        &[],
    );
    assert_eq!(junit.code, 0);
    assert!(!junit.stdout.contains("<failure"), "{}", junit.stdout);
}

#[test]
fn ignore_accepts_a_known_finding() {
    let a = acl();
    let (_, secret) = a.acl_token("ignore-writer", r#"service "other-ign" { policy = "write" }"#, "");
    let def = r#"{"Name": "web-ign", "ID": "web-ign-1", "Port": 7440}"#;
    let (run, json) = check_service(a, def, &["--ignore", "acl-006"], &[("CONSUL_HTTP_TOKEN", &secret)]);
    assert_eq!(run.code, 0, "{json:#}");
    let r = result(&json, "acl.service");
    assert_eq!(
        (r["code"].as_str(), r["status"].as_str(), r["ignored"].as_bool()),
        (Some("ACL-006"), Some("note"), Some(true))
    );
    assert!(root_cause(&json).is_none());
    // Accepted, so it blocks nothing: the duplicates stage runs.
    assert!(result(&json, "duplicates.local_id")["blocked_by"].is_null(), "{json:#}");
    // The environment variable does the same, and the input is shown.
    let (run, json) =
        check_service(a, def, &[], &[("CONSUL_HTTP_TOKEN", &secret), ("CONSUL_DOCTOR_IGNORE", "ACL-006,CFG-022")]);
    assert_eq!(run.code, 0, "{json:#}");
    assert!(json["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["name"] == "ignore" && i["value"] == "ACL-006,CFG-022"));
    // An unknown code is a usage error with a suggestion.
    let bad = run_doctor(&["check", "--http-addr", &a.http_addr(), "--ignore", "ACL-060"], &[]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("no such code") && bad.stderr.contains("did you mean ACL-"), "{}", bad.stderr);
}
