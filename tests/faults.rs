//! Fault servers on loopback for what a real 1.8.7 agent cannot show: silent ports, other
//! protocols, non-Consul HTTP servers, garbage, 5xx, and newer or skewed Consul versions.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::fakedns::FakeDns;
use common::fault::{Behavior, FaultServer, Route};
use common::*;

fn addr(s: &FaultServer) -> String {
    s.addr.to_string()
}

/// A Consul agent/self body for a given version and mode.
fn agent_self(version: &str, server: bool, node: &str) -> String {
    serde_json::json!({
        "Config": {"Datacenter": "dc1", "NodeName": node, "NodeID": "6f4f1b43-0000-0000-0000-000000000001",
                   "Server": server, "Version": version, "Revision": ""},
        "DebugConfig": {"ACLsEnabled": false},
        "Member": {"Name": node, "Addr": "127.0.0.1", "Port": 8301, "Tags": {"build": format!("{version}:"), "role": if server {"consul"} else {"node"}}},
        "Stats": {"consul": {"acl": "disabled", "server": server.to_string()}}
    })
    .to_string()
}

fn member(
    name: &str,
    server: bool,
    build: &str,
    vsn: u32,
    vsn_min: u32,
    vsn_max: u32,
    raft: Option<u32>,
) -> serde_json::Value {
    let mut tags = serde_json::json!({"build": build, "role": if server {"consul"} else {"node"}, "dc": "dc1",
        "vsn": vsn.to_string(), "vsn_min": vsn_min.to_string(), "vsn_max": vsn_max.to_string()});
    if let Some(r) = raft {
        tags["raft_vsn"] = serde_json::Value::String(r.to_string());
    }
    serde_json::json!({"Name": name, "Addr": "127.0.0.1", "Port": 8301, "Status": 1, "Tags": tags})
}

/// A fake agent that answers like Consul on every endpoint the doctor reads.
fn fake_consul(self_body: String, members: serde_json::Value) -> FaultServer {
    consul_with(vec![
        Route::json("/v1/agent/self", 200, &self_body),
        Route::json("/v1/agent/members", 200, &members.to_string()),
    ])
}

/// A complete fake Consul 1.8.7 agent with ACLs on, service "web" (ID web-1) registered and in
/// sync, answering every endpoint the doctor reads. `overrides` come first, so a test replaces
/// exactly the endpoint it breaks.
fn consul_with(overrides: Vec<Route>) -> FaultServer {
    let mut routes = overrides;
    routes.extend(healthy_routes());
    FaultServer::http(routes)
}

fn healthy_routes() -> Vec<Route> {
    let members = serde_json::json!([member("srv-1", true, "1.8.7:", 2, 2, 3, Some(3))]);
    vec![
        Route::json("/v1/agent/self", 200, &agent_self("1.8.7", true, "srv-1")),
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json("/v1/status/peers", 200, "[\"127.0.0.1:8300\"]"),
        Route::json(
            "/v1/acl/token/self",
            200,
            r#"{"AccessorID": "5e1f0f5c-0000-4000-8000-000000000001", "Description": "deploy", "Policies": [{"Name": "web"}]}"#,
        ),
        Route::json(
            "/v1/internal/acl/authorize",
            200,
            r#"[{"Resource": "service", "Segment": "web", "Access": "write", "Allow": true}]"#,
        )
        .with_method("POST"),
        Route::json("/v1/agent/members", 200, &members.to_string()),
        Route::json(
            "/v1/agent/services",
            200,
            r#"{"web-1": {"ID": "web-1", "Service": "web", "Address": "", "Port": 8080, "Tags": []}}"#,
        ),
        Route::json(
            "/v1/health/service/web",
            200,
            r#"[{"Node": {"Node": "srv-1", "Address": "127.0.0.1"}, "Service": {"ID": "web-1", "Service": "web", "Address": "", "Port": 8080}, "Checks": [{"CheckID": "service:web-1", "Status": "passing", "ServiceID": "web-1"}]}]"#,
        ),
        Route::json(
            "/v1/catalog/service/web",
            200,
            r#"[{"Node": "srv-1", "ServiceID": "web-1", "ServiceName": "web", "ServiceAddress": "", "ServicePort": 8080, "ServiceTags": []}]"#,
        ),
        Route::json(
            "/v1/agent/checks",
            200,
            r#"{"service:web-1": {"Node": "srv-1", "CheckID": "service:web-1", "Name": "ttl", "Status": "passing", "Output": "", "ServiceID": "web-1"}}"#,
        ),
        Route::json(
            "/v1/health/checks/web",
            200,
            r#"[{"Node": "srv-1", "CheckID": "service:web-1", "Name": "ttl", "Status": "passing", "Output": "", "ServiceID": "web-1"}]"#,
        ),
        // The agent's own node as its own sync writes it (agent/catalog_endpoint.go
        // CatalogNodeServices: structs.NodeServices {Node, Services}).
        Route::json(
            "/v1/catalog/node/srv-1",
            200,
            r#"{"Node": {"ID": "6f4f1b43-0000-0000-0000-000000000001", "Node": "srv-1", "Address": "127.0.0.1", "Datacenter": "dc1", "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"}, "Meta": {"consul-network-segment": ""}}, "Services": {}}"#,
        ),
        Route::json("/v1/catalog/datacenters", 200, "[\"dc1\", \"dc2\"]"),
    ]
}

const WEB: &str =
    r#"{"Name": "web", "ID": "web-1", "Port": 8080, "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "10m"}}"#;

fn check_web(s: &FaultServer, extra: &[&str]) -> (Run, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.json");
    std::fs::write(&path, WEB).unwrap();
    let mut args = vec![
        "--http-addr".to_string(),
        addr(s),
        "--service-file".into(),
        path.display().to_string(),
        "--token".into(),
        "fake-token-secret-1".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    check_json(&refs, &[])
}

#[test]
fn stages_left_out_with_skip_ask_nothing_ahead() {
    // The agent's services, checks and node are read ahead of the stages that judge them;
    // with those stages left out nobody would read the answers, so they are not asked.
    let s = consul_with(vec![]);
    let (run, json) = check_web(&s, &["--skip", "duplicates"]);
    assert_eq!(run.code, 0, "{json:#}");
    let asked: Vec<String> = s.requests().iter().map(|r| r.path.clone()).collect();
    for path in ["/v1/agent/services", "/v1/agent/checks", "/v1/catalog/node/", "/v1/health/service/"] {
        assert!(!asked.iter().any(|p| p.starts_with(path)), "{path} was asked: {asked:?}");
    }
    assert!(asked.iter().any(|p| p == "/v1/agent/self"), "{asked:?}");
    // Without --skip the same run asks them.
    let s = consul_with(vec![]);
    check_web(&s, &[]);
    let asked: Vec<String> = s.requests().iter().map(|r| r.path.clone()).collect();
    assert!(asked.iter().any(|p| p == "/v1/agent/services"), "{asked:?}");
}

#[test]
fn complete_fake_agent_is_healthy() {
    let s = consul_with(vec![]);
    let (run, json) = check_web(&s, &[]);
    assert_eq!(run.code, 0, "{json:#}");
    assert!(codes(&json).is_empty(), "{json:#}");
    assert_eq!(json["summary"]["fail"], 0);
}

#[test]
fn resets_before_any_answer_are_retried_once_then_name_the_connection_limit() {
    let s = consul_with(vec![Route::json("/v1/agent/members", 200, "[]").with_behavior(Behavior::ResetBeforeAnswer)]);
    let (run, json) = check_web(&s, &[]);
    assert_eq!(run.code, 1, "{json:#}");
    let members = result(&json, "version.members");
    assert_eq!(members["code"], "VER-006", "{json:#}");
    let msg = members["message"].as_str().unwrap();
    assert!(msg.contains("http_max_conns_per_client"), "{msg}");
    assert!(members["fix"].as_str().unwrap().contains("http_max_conns_per_client"), "{members:#}");
    assert_eq!(members["evidence"]["request"], "GET /v1/agent/members", "{members:#}");
    assert!(members["evidence"]["target"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{members:#}");
    let asked = s.requests().iter().filter(|r| r.path.starts_with("/v1/agent/members")).count();
    assert_eq!(asked, 2, "a reset read is asked exactly once more");
}

/// Every endpoint the doctor reads, broken in every way a server or proxy breaks answers: each
/// gives a coded failure with a fix, within the deadline, exit 1, and no panic.
#[test]
fn every_endpoint_under_every_fault() {
    let endpoints: &[(&str, Option<&'static str>, &str)] = &[
        ("/v1/status/leader", None, "LDR-005"),
        ("/v1/status/peers", None, "LDR-007"),
        ("/v1/acl/token/self", None, "ACL-005"),
        ("/v1/internal/acl/authorize", Some("POST"), "ACL-008"),
        ("/v1/agent/members", None, "VER-006"),
        ("/v1/agent/services", None, "DUP-005"),
        ("/v1/health/service/web", None, "DUP-005"),
        ("/v1/catalog/service/web", None, "SYN-005"),
        ("/v1/agent/checks", None, "SYN-005"),
        ("/v1/health/checks/web", None, "SYN-005"),
        ("/v1/catalog/node/srv-1", None, "SYN-005"),
    ];
    type MakeFault = Box<dyn Fn(&str) -> Route>;
    let faults: Vec<(&str, MakeFault)> = vec![
        ("500 with a text body", Box::new(|p: &str| Route::text(p, 500, "internal error: upstream exploded"))),
        ("invalid JSON", Box::new(|p: &str| Route::json(p, 200, "{\"broken\": "))),
        ("JSON of the wrong shape", Box::new(|p: &str| Route::json(p, 200, r#"[{"unexpected": true}]"#))),
        ("an endless body", Box::new(|p: &str| Route::json(p, 200, "").with_behavior(Behavior::Endless))),
        (
            "a trickled body",
            Box::new(|p: &str| {
                Route::json(p, 200, "[\"127.0.0.1:8300\", \"x\"]")
                    .with_behavior(Behavior::Trickle(Duration::from_millis(400)))
            }),
        ),
        (
            "a reset mid-body",
            Box::new(|p: &str| {
                Route::json(p, 200, &format!("[{}]", "\"x\",".repeat(400) + "\"y\""))
                    .with_behavior(Behavior::ResetMidBody)
            }),
        ),
        ("a redirect loop", Box::new(|p: &str| Route::text(p, 302, "").with_header("Location", p))),
        (
            "a wrong content type",
            Box::new(|p: &str| Route::html(p, 200, "<html><body>Down for maintenance</body></html>")),
        ),
    ];
    for (path, method, code) in endpoints {
        for (fault, make) in &faults {
            let mut broken = make(path);
            if let Some(m) = method {
                broken = broken.with_method(m);
            }
            let s = consul_with(vec![broken]);
            let (run, json) = check_web(&s, &["--timeout", "1s", "--deadline", "10s"]);
            let ctx = format!("{path} with {fault}");
            assert!(!run.stderr.contains("panicked"), "{ctx}: panic: {}", run.stderr);
            assert_eq!(run.code, 1, "{ctx}: exit code; {json:#}");
            assert_eq!(root_cause(&json).as_deref(), Some(*code), "{ctx}: {json:#}");
            let failing = json["checks"].as_array().unwrap().iter().find(|c| c["status"] == "fail").unwrap();
            assert!(failing["fix"].as_str().is_some_and(|f| !f.is_empty()), "{ctx}: a fix");
            assert!(run.elapsed < Duration::from_secs(8), "{ctx}: took {:?}", run.elapsed);
        }
    }
}

#[test]
fn agent_self_under_every_fault() {
    let cases: Vec<(&str, Route, &str)> = vec![
        ("500", Route::text("/v1/agent/self", 500, "rpc error"), "API-002"),
        ("invalid JSON", Route::json("/v1/agent/self", 200, "{\"Config\": "), "API-003"),
        ("wrong shape", Route::json("/v1/agent/self", 200, r#"[{"unexpected": true}]"#), "API-003"),
        ("endless", Route::json("/v1/agent/self", 200, "").with_behavior(Behavior::Endless), "API-005"),
        (
            "trickle",
            Route::json("/v1/agent/self", 200, &agent_self("1.8.7", true, "n"))
                .with_behavior(Behavior::Trickle(Duration::from_millis(400))),
            "API-005",
        ),
        (
            "reset",
            Route::json("/v1/agent/self", 200, &agent_self("1.8.7", true, "n")).with_behavior(Behavior::ResetMidBody),
            "API-005",
        ),
        ("redirect loop", Route::text("/v1/agent/self", 302, "").with_header("Location", "/v1/agent/self"), "API-001"),
        ("wrong content type", Route::html("/v1/agent/self", 200, "<html>maintenance</html>"), "API-001"),
    ];
    for (fault, route, code) in cases {
        let s = consul_with(vec![route]);
        let (run, json) = check_web(&s, &["--timeout", "1s"]);
        assert_eq!(run.code, 1, "{fault}");
        assert_eq!(root_cause(&json).as_deref(), Some(code), "{fault}: {json:#}");
        assert!(run.elapsed < Duration::from_secs(5), "{fault}: took {:?}", run.elapsed);
    }
}

#[test]
fn silent_port_costs_one_timeout() {
    let s = FaultServer::silent();
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--timeout", "2s"], &[]);
    assert_root(&run, &json, "TCP-005", &["tls", "api", "leader", "acl", "version"]);
    assert!(run.elapsed < Duration::from_millis(3500), "a silent port must cost one timeout, took {:?}", run.elapsed);
}

#[test]
fn a_silent_agent_is_never_held_by_more_than_two_connections() {
    // The tcp stage's probe and the api stage's read asked beside it (plain HTTP on loopback)
    // are the two; each attempt of `wait` closes what the one before opened, reads asked ahead
    // of stages that never ran included.
    let s = FaultServer::silent();
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--timeout", "1s"], &[]);
    assert_root(&run, &json, "TCP-005", &["tls", "api"]);
    assert!((1..=2).contains(&s.most_open()), "check: {} connections at once", s.most_open());
    let s = FaultServer::silent();
    let run = run_doctor(
        &[
            "wait",
            "--format",
            "json",
            "--http-addr",
            &addr(&s),
            "--service",
            "web",
            "--timeout",
            "1s",
            "--deadline",
            "5s",
        ],
        &[],
    );
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("TCP-005"), "{}", run.stdout);
    assert!((1..=2).contains(&s.most_open()), "wait: {} connections at once", s.most_open());
}

#[test]
fn silent_https_port_costs_one_timeout() {
    let s = FaultServer::silent();
    let (run, json) = check_json(&["--http-addr", &format!("https://{}", addr(&s)), "--timeout", "1s"], &[]);
    assert_root(&run, &json, "TCP-005", &["tls", "api"]);
    assert!(run.elapsed < Duration::from_millis(2500), "took {:?}", run.elapsed);
}

#[test]
fn port_that_closes_at_once_is_not_http() {
    let s = FaultServer::close_on_accept();
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "TCP-004", &["tls", "api"]);
    let msg = result(&json, "tcp.answer")["message"].as_str().unwrap().to_string();
    assert!(msg.contains("accepted the connection but closed it without answering (EOF)"), "{msg}");
    assert!(!msg.contains("closed the connection"), "says the connection twice: {msg}");
}

#[test]
fn port_that_resets_is_not_http() {
    let s = FaultServer::reset_on_data();
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "TCP-004", &["tls", "api"]);
    let msg = result(&json, "tcp.answer")["message"].as_str().unwrap().to_string();
    assert!(msg.contains("accepted the connection but dropped it (connection reset by peer)"), "{msg}");
}

#[test]
fn grpc_port_is_recognised() {
    let s = FaultServer::grpc_like();
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "TCP-006", &["tls", "api"]);
}

#[test]
fn other_protocol_on_the_port() {
    let s = FaultServer::banner(b"SSH-2.0-OpenSSH_9.2p1\r\n");
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "TCP-009", &["tls", "api"]);
    assert!(result(&json, "tcp.answer")["message"].as_str().unwrap().contains("SSH-2.0"));
}

#[test]
fn web_server_that_is_not_consul() {
    let s = FaultServer::http(vec![
        Route::html("/", 200, "<html><body>It works!</body></html>").with_header("Server", "nginx")
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "API-001", &["leader", "acl", "version"]);
    let msg = result(&json, "api.agent")["message"].as_str().unwrap();
    assert!(msg.contains("nginx"), "{msg}");
}

#[test]
fn not_found_everywhere_is_not_consul() {
    let s = FaultServer::http(vec![]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "API-001", &["leader"]);
}

#[test]
fn redirect_is_not_followed() {
    let s = FaultServer::http(vec![Route::text("/", 302, "").with_header("Location", "/login")]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "API-001", &["leader"]);
    assert!(result(&json, "api.agent")["message"].as_str().unwrap().contains("/login"));
}

#[test]
fn garbage_json_from_agent_self() {
    let s = FaultServer::http(vec![
        Route::json("/v1/agent/self", 200, "{\"Config\": {\"Version\": "),
        Route::json("/v1/status/leader", 200, "\"\""),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "API-003", &["leader"]);
}

#[test]
fn json_of_the_wrong_shape() {
    let s = FaultServer::http(vec![Route::json("/", 200, "[1, 2, 3]")]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "API-003", &["leader"]);
}

#[test]
fn server_error_from_agent_self() {
    let s = FaultServer::http(vec![Route::text("/", 500, "rpc error: failed to get conn: dial tcp: i/o timeout")]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "API-002", &["leader"]);
    assert!(result(&json, "api.agent")["message"].as_str().unwrap().contains("failed to get conn"));
}

#[test]
fn agent_self_that_hangs_after_the_sniff() {
    let s = FaultServer::http(vec![
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json("/v1/agent/self", 200, "{}").with_behavior(Behavior::Hang),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--timeout", "1s"], &[]);
    assert_root(&run, &json, "API-005", &["leader"]);
    assert!(run.elapsed < Duration::from_millis(2500), "took {:?}", run.elapsed);
}

#[test]
fn trickled_body_is_bounded_by_the_timeout() {
    let body = agent_self("1.8.7", true, "n1");
    let s = FaultServer::http(vec![
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json("/v1/agent/self", 200, &body).with_behavior(Behavior::Trickle(Duration::from_millis(200))),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--timeout", "1s"], &[]);
    assert_root(&run, &json, "API-005", &["leader"]);
    assert!(run.elapsed < Duration::from_millis(2500), "took {:?}", run.elapsed);
}

#[test]
fn endless_body_is_capped_or_timed_out() {
    let s = FaultServer::http(vec![
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json("/v1/agent/self", 200, "").with_behavior(Behavior::Endless),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--timeout", "2s"], &[]);
    assert_root(&run, &json, "API-005", &["leader"]);
}

#[test]
fn connection_reset_mid_body() {
    let body = agent_self("1.8.7", true, "n1");
    let s = FaultServer::http(vec![
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json("/v1/agent/self", 200, &body).with_behavior(Behavior::ResetMidBody),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "API-005", &["leader"]);
}

#[test]
fn newer_consul_agent_self_is_understood() {
    let s = fake_consul(
        agent_self("1.21.4", true, "srv-1"),
        serde_json::json!([member("srv-1", true, "1.21.4:abc123", 2, 2, 3, Some(3))]),
    );
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    assert_eq!(json["agent"]["version"], "1.21.4");
}

#[test]
fn mixed_server_versions_mid_upgrade() {
    let members = serde_json::json!([
        member("srv-1", true, "1.20.1:aaa", 2, 2, 3, Some(3)),
        member("srv-2", true, "1.21.0:bbb", 2, 2, 3, Some(3)),
        member("srv-3", true, "1.21.0:bbb", 2, 2, 3, Some(3)),
    ]);
    let s = fake_consul(agent_self("1.21.0", true, "srv-2"), members);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_eq!(codes(&json), vec!["VER-001"], "{json:#}");
    assert_eq!(run.code, 0);
    assert!(result(&json, "version.members")["message"].as_str().unwrap().contains("srv-1 1.20.1"));
}

#[test]
fn client_newer_than_servers() {
    let members = serde_json::json!([
        member("srv-1", true, "1.15.2:", 2, 2, 3, Some(3)),
        member("web-1", false, "1.17.0:", 2, 2, 3, None),
    ]);
    let s = fake_consul(agent_self("1.17.0", false, "web-1"), members);
    let (_, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_eq!(codes(&json), vec!["VER-002"], "{json:#}");
}

#[test]
fn protocol_outside_a_members_range_fails() {
    let members = serde_json::json!([
        member("srv-1", true, "1.8.7:", 2, 2, 3, Some(3)),
        member("odd-1", false, "0.6.4:", 1, 1, 1, None),
    ]);
    let s = fake_consul(agent_self("1.8.7", true, "srv-1"), members);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "VER-003", &[]);
}

#[test]
fn raft_protocol_two_warns() {
    let members = serde_json::json!([member("srv-1", true, "1.8.7:", 2, 2, 3, Some(2))]);
    let s = fake_consul(agent_self("1.8.7", true, "srv-1"), members);
    let (_, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_eq!(codes(&json), vec!["VER-004"], "{json:#}");
}

#[test]
fn even_number_of_servers_warns() {
    let s = FaultServer::http(vec![
        Route::json("/v1/agent/self", 200, &agent_self("1.8.7", true, "srv-1")),
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json(
            "/v1/status/peers",
            200,
            "[\"127.0.0.1:8300\",\"127.0.0.2:8300\",\"127.0.0.3:8300\",\"127.0.0.4:8300\"]",
        ),
        Route::text("/v1/acl/token/self", 401, "ACL support disabled"),
        Route::json(
            "/v1/agent/members",
            200,
            &serde_json::json!([member("srv-1", true, "1.8.7:", 2, 2, 3, Some(3))]).to_string(),
        ),
    ]);
    let (_, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_eq!(codes(&json), vec!["LDR-006"], "{json:#}");
}

#[test]
fn newer_consul_reports_missing_token_with_404() {
    // 1.15+ answers 404 "Supplied token does not exist" on /v1/acl/token/self.
    let s = FaultServer::http(vec![
        Route::json("/v1/agent/self", 200, &agent_self("1.16.1", true, "srv-1")),
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json("/v1/status/peers", 200, "[\"127.0.0.1:8300\"]"),
        Route::text("/v1/acl/token/self", 404, "Supplied token does not exist"),
        Route::json(
            "/v1/agent/members",
            200,
            &serde_json::json!([member("srv-1", true, "1.16.1:", 2, 2, 3, Some(3))]).to_string(),
        ),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--token", "4b0c5a51-0000-0000-0000-00000000dead"], &[]);
    assert_root(&run, &json, "ACL-002", &[]);
    // The token travels in the header, never in a URL, and is never printed.
    let req = s.requests().into_iter().find(|r| r.path.starts_with("/v1/acl/token/self")).unwrap();
    assert!(req.headers.iter().any(|(k, v)| k == "x-consul-token" && v == "4b0c5a51-0000-0000-0000-00000000dead"));
    assert!(!run.stdout.contains("00000000dead"));
}

#[test]
fn acl_not_bootstrapped() {
    let s = FaultServer::http(vec![
        Route::json("/v1/agent/self", 200, &agent_self("1.16.1", true, "srv-1")),
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json("/v1/status/peers", 200, "[\"127.0.0.1:8300\"]"),
        Route::text(
            "/v1/acl/token/self",
            403,
            "ACL system must be bootstrapped before making any requests that require authorization: ACL not found",
        ),
        Route::json("/v1/agent/members", 200, "[]"),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--token", "x-token-1234"], &[]);
    assert_root(&run, &json, "ACL-003", &[]);
}

#[test]
fn acl_lookup_server_error() {
    let s = FaultServer::http(vec![
        Route::json("/v1/agent/self", 200, &agent_self("1.8.7", true, "srv-1")),
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json("/v1/status/peers", 200, "[\"127.0.0.1:8300\"]"),
        Route::text("/v1/acl/token/self", 500, "rpc error making call: rpc: can't find method ACL.TokenRead"),
        Route::json("/v1/agent/members", 200, "[]"),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--token", "x-token-1234"], &[]);
    assert_root(&run, &json, "ACL-005", &[]);
}

#[test]
fn endpoint_blocked_by_http_config_warns_and_continues() {
    let s = FaultServer::http(vec![
        Route::text("/v1/agent/self", 403, "Endpoint is blocked by agent configuration"),
        Route::json("/v1/status/leader", 200, "\"127.0.0.1:8300\""),
        Route::json("/v1/status/peers", 200, "[\"127.0.0.1:8300\"]"),
        Route::text("/v1/acl/token/self", 401, "ACL support disabled"),
        Route::json(
            "/v1/agent/members",
            200,
            &serde_json::json!([member("srv-1", true, "1.8.7:", 2, 2, 3, Some(3))]).to_string(),
        ),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_eq!(codes(&json), vec!["API-004"], "{json:#}");
    assert_eq!(run.code, 0);
}

#[test]
fn remote_datacenter_without_reachable_servers() {
    let s = consul_with(vec![Route::text("/v1/status/leader", 500, "Remote DC has no server currently reachable")]);
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--datacenter", "dc2"], &[]);
    assert_root(&run, &json, "LDR-004", &["acl"]);
}

#[test]
fn no_path_to_datacenter() {
    let s = consul_with(vec![
        Route::text("/v1/catalog/datacenters", 500, "No cluster leader"),
        Route::text("/v1/status/leader", 500, "No path to datacenter"),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--datacenter", "dc9"], &[]);
    assert_root(&run, &json, "LDR-003", &["acl"]);
}

#[test]
fn other_leader_lookup_error() {
    let s = consul_with(vec![
        Route::json("/v1/agent/self", 200, &agent_self("1.8.7", false, "web-1")),
        Route::text("/v1/status/leader", 500, "rpc error making call: EOF"),
    ]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "LDR-005", &["acl"]);
}

#[test]
fn dns_server_that_never_answers() {
    let d = FakeDns::silent();
    let (run, json) = check_json(
        &["--http-addr", "consul.lab.test:8500", "--dns-server", &d.addr.to_string(), "--timeout", "1s"],
        &[],
    );
    assert_root(&run, &json, "DNS-003", &["tcp", "api"]);
    assert!(run.elapsed < Duration::from_secs(3), "took {:?}", run.elapsed);
}

#[test]
fn dns_server_failure() {
    let d = FakeDns::servfail();
    let (run, json) = check_json(&["--http-addr", "consul.lab.test:8500", "--dns-server", &d.addr.to_string()], &[]);
    assert_root(&run, &json, "DNS-004", &["tcp"]);
}

#[test]
fn dns_name_without_address_records() {
    let d = FakeDns::records(vec![
        ("consul.lab.test", vec![]),
        ("other.lab.test", vec!["127.0.0.1".parse::<IpAddr>().unwrap()]),
    ]);
    let (run, json) = check_json(&["--http-addr", "consul.lab.test:8500", "--dns-server", &d.addr.to_string()], &[]);
    assert_root(&run, &json, "DNS-002", &["tcp"]);
}

#[test]
fn dns_name_with_a_dead_second_address_warns() {
    let s = fake_consul(
        agent_self("1.8.7", true, "srv-1"),
        serde_json::json!([member("srv-1", true, "1.8.7:", 2, 2, 3, Some(3))]),
    );
    let port = s.addr.port();
    // 127.0.0.1 answers; 127.0.0.2 (also loopback) has nothing on the port.
    let d =
        FakeDns::records(vec![("consul.lab.test", vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()])]);
    let (run, json) =
        check_json(&["--http-addr", &format!("consul.lab.test:{port}"), "--dns-server", &d.addr.to_string()], &[]);
    assert_eq!(codes(&json), vec!["TCP-007"], "{json:#}");
    assert_eq!(run.code, 0);
}

#[test]
fn whole_run_deadline_stops_a_slow_stage() {
    // Each step may take 3 s, but the whole run only 1 s: the tcp stage hits the deadline.
    let s = FaultServer::silent();
    let (run, json) = check_json(&["--http-addr", &addr(&s), "--timeout", "3s", "--deadline", "1s"], &[]);
    assert_root(&run, &json, "RUN-001", &["tls", "api"]);
    assert!(run.elapsed < Duration::from_millis(2000), "took {:?}", run.elapsed);
}

// ---------------------------------------------------------------------------------------------
// TLS servers with certificates a real agent cannot be made to serve (expired), and raw TCP
// states (a full accept backlog drops SYNs).

mod tls_fakes {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    pub struct Pki {
        pub ca_pem: String,
        pub chain: Vec<CertificateDer<'static>>,
        pub key: PrivateKeyDer<'static>,
    }

    /// A CA and a leaf for `localhost`/127.0.0.1 valid between the given offsets from now (days).
    pub fn pki(not_before_days: i64, not_after_days: i64) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let now = time_now();
        leaf.not_before = now + time::Duration::days(not_before_days);
        leaf.not_after = now + time::Duration::days(not_after_days);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            chain: vec![leaf_cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        }
    }

    fn time_now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    /// Serves TLS with the given certificate; answers any request with a Consul-like 200.
    pub fn serve(pki: &Pki) -> std::net::SocketAddr {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.chain.clone(), pki.key.clone_key())
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, stream);
                    let mut buf = [0u8; 4096];
                    if let Ok(n) = tls.read(&mut buf) {
                        if n > 0 {
                            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n\"\"");
                            let _ = tls.flush();
                        }
                    }
                });
            }
        });
        addr
    }
}

/// Runs the doctor against a fake TLS agent whose certificate is valid between the offsets.
fn check_certificate_window(not_before_days: i64, not_after_days: i64) -> (Run, serde_json::Value) {
    let pki = tls_fakes::pki(not_before_days, not_after_days);
    let addr = tls_fakes::serve(&pki);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    check_json(&["--http-addr", &format!("https://{addr}"), "--ca-file", ca.to_str().unwrap()], &[])
}

#[test]
fn expired_agent_certificate() {
    let (run, json) = check_certificate_window(-30, -1);
    assert_root(&run, &json, "TLS-003", &["api"]);
    assert!(result(&json, "tls.handshake")["message"].as_str().unwrap().contains("expired"));
}

#[test]
fn certificate_not_yet_valid() {
    let (run, json) = check_certificate_window(2, 30);
    assert_root(&run, &json, "TLS-003", &["api"]);
    assert!(result(&json, "tls.handshake")["message"].as_str().unwrap().contains("not valid yet"));
}

#[test]
fn tls_alert_other_than_certificates() {
    // A server that answers every ClientHello with a fatal protocol_version alert.
    let s = FaultServer::banner(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]);
    let (run, json) = check_json(&["--http-addr", &format!("https://{}", addr(&s))], &[]);
    assert_root(&run, &json, "TLS-007", &["api"]);
}

#[test]
fn full_accept_backlog_drops_syns_like_a_firewall() {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Shrink the backlog to its minimum and fill it: further SYNs are dropped, as by a firewall.
    unsafe { libc::listen(listener.as_raw_fd(), 0) };
    let target = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&target, Duration::from_millis(300)) {
            held.push(s);
        }
    }
    let (run, json) = check_json(&["--http-addr", &target.to_string(), "--timeout", "1s"], &[]);
    assert_root(&run, &json, "TCP-002", &["tls", "api"]);
    assert!(run.elapsed < Duration::from_millis(2500), "took {:?}", run.elapsed);
    drop(held);
}

#[test]
fn sigint_ends_a_run_promptly_with_130() {
    let s = FaultServer::silent();
    let mut child = doctor_cmd()
        .args(["check", "--http-addr", &addr(&s), "--timeout", "20s", "--deadline", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "the doctor ignored SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
}

#[test]
fn namespace_environment_against_an_oss_agent() {
    let s = consul_with(vec![]);
    let (run, json) = check_web(&s, &[]);
    assert_eq!(run.code, 0, "{json:#}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.json");
    std::fs::write(&path, WEB).unwrap();
    let (run, json) = check_json(
        &["--http-addr", &addr(&s), "--service-file", path.to_str().unwrap()],
        &[("CONSUL_NAMESPACE", "team-a")],
    );
    assert_eq!(root_cause(&json).as_deref(), Some("API-007"), "{json:#}");
    assert_eq!(run.code, 1);
    // Enterprise agents accept it.
    let ent = consul_with(vec![Route::json("/v1/agent/self", 200, &agent_self("1.16.1+ent", true, "srv-1"))]);
    let (_, json) = check_json(&["--http-addr", &addr(&ent)], &[("CONSUL_NAMESPACE", "team-a")]);
    assert!(!codes(&json).contains(&"API-007".to_string()), "{json:#}");
}

#[test]
fn proxy_asking_for_basic_credentials() {
    let s =
        consul_with(vec![Route::text("/v1/agent/self", 401, "Unauthorized")
            .with_header("WWW-Authenticate", "Basic realm=\"consul\"")]);
    let (run, json) = check_json(&["--http-addr", &addr(&s)], &[]);
    assert_root(&run, &json, "API-009", &["leader", "acl"]);
    // With CONSUL_HTTP_AUTH the doctor sends Basic credentials like the Go client, and never prints them.
    let (run, _) =
        check_json(&["--http-addr", &addr(&s), "--verbose"], &[("CONSUL_HTTP_AUTH", "deployer:pr0xy-s3cret")]);
    let sent = s.requests().into_iter().rev().find(|r| r.path == "/v1/agent/self").unwrap();
    // base64("deployer:pr0xy-s3cret")
    assert_eq!(sent.header("authorization"), Some("Basic ZGVwbG95ZXI6cHIweHktczNjcmV0"));
    assert!(!run.stdout.contains("pr0xy-s3cret") && !run.stderr.contains("pr0xy-s3cret"));
}

#[test]
fn wait_retries_until_the_agent_answers() {
    let port = free_port();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1200));
        let mut routes = vec![Route::json("/v1/agent/self", 200, &agent_self("1.8.7", true, "srv-1"))];
        routes.extend(healthy_routes());
        FaultServer::http_on(port, routes)
    });
    let (run, json) = check_json(&["--http-addr", &format!("127.0.0.1:{port}"), "--wait", "10s"], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    assert!(json["attempts"].as_u64().unwrap() >= 2, "{json:#}");
    assert!(run.elapsed < Duration::from_secs(5), "stops retrying once it passes: {:?}", run.elapsed);
    drop(late.join().unwrap());
    // A port that never answers: retries until the wait is over, then reports the root cause.
    let dead = free_port();
    let (run, json) = check_json(&["--http-addr", &format!("127.0.0.1:{dead}"), "--wait", "2s"], &[]);
    assert_root(&run, &json, "TCP-001", &["api"]);
    assert!(json["attempts"].as_u64().unwrap() >= 2);
    assert!(run.elapsed >= Duration::from_millis(1000) && run.elapsed < Duration::from_secs(4), "{:?}", run.elapsed);
}

#[test]
fn refused_http_port_while_the_https_port_answers() {
    // An agent with ports { http = -1, https = 8501 }, on a loopback alias of its own.
    let https_only = std::net::TcpListener::bind("127.0.0.7:8501").expect("127.0.0.7:8501 is free");
    let (run, json) = check_json(&["--http-addr", "127.0.0.7:8500"], &[]);
    assert_root(&run, &json, "TCP-001", &["api"]);
    let r = result(&json, "tcp.connect");
    assert!(r["message"].as_str().unwrap().contains("port 8501 on the same host accepts connections"), "{r:#}");
    assert!(r["fix"].as_str().unwrap().contains("https://127.0.0.7:8501"), "{r:#}");
    drop(https_only);
}

#[test]
fn skip_leaves_out_a_stage_and_what_needs_it() {
    let s = consul_with(vec![Route::json("/v1/agent/services", 200, "[1, 2, 3]")]);
    let (run, json) = check_web(&s, &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("DUP-005"), "{json:#}");
    assert_eq!(run.code, 1);
    let (run, json) = check_web(&s, &["--skip", "duplicates"]);
    assert_eq!(run.code, 0, "{json:#}");
    for id in ["duplicates.local_id", "sync.catalog"] {
        let r = result(&json, id);
        assert_eq!(r["status"], "skip");
        assert!(r["message"].as_str().unwrap().contains("--skip"), "{r:#}");
    }
    assert_eq!(run_doctor(&["check", "--skip", "tcp"], &[]).code, 2, "only stages nothing depends on can be skipped");
}

#[test]
fn wait_retries_a_failing_health_query_with_backoff_and_names_it_at_the_deadline() {
    let s = consul_with(vec![Route::text("/v1/health/service/web", 500, "rpc error making call: EOF")]);
    let run = run_doctor(
        &["wait", "--format", "json", "--http-addr", &addr(&s), "--service", "web", "--deadline", "3s"],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let json = run.json();
    assert_eq!(root_cause(&json).as_deref(), Some("WAIT-006"), "{json:#}");
    assert!(json["root_cause"]["message"].as_str().unwrap().contains("500"), "{json:#}");
    assert!(run.stderr.contains("retrying in"), "{}", run.stderr);
    // Exponential backoff from 250 ms, capped at 5 s: about ten attempts in 3 s, not hundreds.
    let queries = s.requests().iter().filter(|r| r.path.starts_with("/v1/health/service/web")).count();
    assert!((2..=20).contains(&queries), "{queries} health queries");
}

// --- scan -------------------------------------------------------------------------------------

fn scan_against(s: &FaultServer) -> (Run, serde_json::Value) {
    let run = run_doctor(&["scan", "--http-addr", &addr(s), "--format", "json"], &[]);
    let json = run.json();
    (run, json)
}

fn scan_codes(json: &serde_json::Value) -> Vec<String> {
    json["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

#[test]
fn scan_honours_429_with_bounded_retries_then_reports_the_catalog_unreadable() {
    let s = consul_with(vec![
        Route::text("/v1/internal/acl/authorize", 401, "ACL support disabled"),
        Route::text("/v1/internal/ui/nodes", 429, "rate limit exceeded").with_header("Retry-After", "0"),
    ]);
    let (run, json) = scan_against(&s);
    assert_eq!(run.code, 1, "{json:#}");
    assert_eq!(scan_codes(&json), vec!["SCN-012"], "{json:#}");
    let msg = json["findings"][0]["message"].as_str().unwrap();
    assert!(msg.contains("answered 429 after 6 attempts"), "{msg}");
    let asked = s.requests().iter().filter(|r| r.path.starts_with("/v1/internal/ui/nodes")).count();
    assert_eq!(asked, 6, "retried a bounded number of times");
}

#[test]
fn scan_of_a_garbage_or_hanging_catalog_is_bounded_and_reported() {
    for (route, words) in [
        (Route::json("/v1/internal/ui/nodes", 200, "[{\"Node\": 5"), "not the JSON Consul sends"),
        (Route::json("/v1/internal/ui/nodes", 200, "[]").with_behavior(Behavior::Hang), "no complete response"),
    ] {
        let s = consul_with(vec![Route::text("/v1/internal/acl/authorize", 401, "ACL support disabled"), route]);
        let run = run_doctor(&["scan", "--http-addr", &addr(&s), "--format", "json", "--timeout", "1s"], &[]);
        let json = run.json();
        assert_eq!(scan_codes(&json), vec!["SCN-012"], "{json:#}");
        assert!(json["findings"][0]["message"].as_str().unwrap().contains(words), "{json:#}");
        assert!(run.elapsed < Duration::from_secs(8), "took {:?}", run.elapsed);
    }
}

#[test]
fn ctrl_c_during_prune_leaves_a_correct_report_of_what_was_and_was_not_done() {
    let node = |name: &str, id: &str| {
        serde_json::json!({"Node": name, "Address": "127.0.0.51", "Services": [{"ID": id, "Service": "legacy", "Port": 80}],
            "Checks": [{"CheckID": format!("{id}-alive"), "ServiceID": id, "Status": "critical", "Definition": {}}]})
    };
    let nodes = serde_json::json!([node("legacy-a", "legacy-1"), node("legacy-b", "legacy-2")]).to_string();
    let mut routes = vec![
        Route::text("/v1/internal/acl/authorize", 401, "ACL support disabled"),
        Route::json("/v1/internal/ui/nodes", 200, &nodes),
        // The write (hashicorp/consul agent/txn_endpoint.go: 200 {"Results": [...], "Errors": null}) hangs.
        Route::json("/v1/txn", 200, r#"{"Results": [], "Errors": null}"#)
            .with_method("PUT")
            .with_behavior(Behavior::Hang),
    ];
    routes.extend(reread_routes(&[("legacy-a", "legacy-1"), ("legacy-b", "legacy-2")]));
    let s = consul_with(routes);
    let mut cmd = doctor_cmd();
    cmd.args(["scan", "--http-addr", &addr(&s), "--format", "json", "--prune", "--yes", "--timeout", "20s"]);
    cmd.stdout(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_until(
        Duration::from_secs(10),
        || s.requests().iter().any(|r| r.method == "PUT" && r.path.starts_with("/v1/txn")),
        "the first deregistration in flight",
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["interrupted"], true);
    let outcomes: Vec<&str> =
        json["prune"]["actions"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["unknown", "not-attempted"], "{json:#}");
    let puts = s.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 1, "nothing sent after the interrupt");
}

/// The write is one `/v1/txn` of delete-cas operations (hashicorp/consul `agent/txn_endpoint.go`:
/// 409 with `Errors[].What` when any operation fails, the whole transaction undone; 404 where the
/// endpoint is not served). What 1.8.7 answers to a stale index is in tests/lab/prune.rs; here, a
/// transaction refused as stale is `skipped` (no failure finding), one refused for permission
/// is `failed` with SCN-014, and without `/v1/txn` the same instance goes through
/// `/v1/catalog/deregister` with a body naming Node and ServiceID.
#[test]
fn prune_reports_what_the_transaction_answered() {
    let node = serde_json::json!([{"Node": "legacy-a", "Address": "127.0.0.51",
        "Services": [{"ID": "legacy-1", "Service": "legacy", "Port": 80, "ModifyIndex": 30}],
        "Checks": [{"CheckID": "legacy-1-alive", "ServiceID": "legacy-1", "Status": "critical", "ModifyIndex": 31}]}])
    .to_string();
    let cases: [(u16, &str, &str, bool); 3] = [
        (
            409,
            r#"{"Results": null, "Errors": [{"OpIndex": 0, "What": "failed to delete check \"legacy-1-alive\" on node \"legacy-a\", index is stale"}]}"#,
            "skipped",
            false,
        ),
        (409, r#"{"Results": null, "Errors": [{"OpIndex": 1, "What": "Permission denied"}]}"#, "failed", true),
        (404, "", "removed", false),
    ];
    for (status, body, outcome, finding) in cases {
        let mut routes = vec![
            Route::text("/v1/internal/acl/authorize", 401, "ACL support disabled"),
            Route::json("/v1/internal/ui/nodes", 200, &node),
            Route::json("/v1/txn", status, body).with_method("PUT"),
            Route::json("/v1/catalog/deregister", 200, "true").with_method("PUT"),
        ];
        // The re-read sees what the plan saw (agent/structs/structs.go NodeServices, HealthCheck).
        routes.push(Route::json(
            "/v1/catalog/node/legacy-a",
            200,
            r#"{"Node": {"Node": "legacy-a", "Address": "127.0.0.51"},
                "Services": {"legacy-1": {"ID": "legacy-1", "Service": "legacy", "Port": 80, "ModifyIndex": 30}}}"#,
        ));
        routes.push(Route::json(
            "/v1/health/node/legacy-a",
            200,
            r#"[{"Node": "legacy-a", "CheckID": "legacy-1-alive", "ServiceID": "legacy-1", "Status": "critical", "ModifyIndex": 31}]"#,
        ));
        let s = consul_with(routes);
        let run = run_doctor(&["scan", "--http-addr", &addr(&s), "--format", "json", "--prune", "--yes"], &[]);
        let json = run.json();
        let action = &json["prune"]["actions"][0];
        assert_eq!(action["outcome"], outcome, "{status} {body}: {action:#}");
        let failed = json["findings"].as_array().unwrap().iter().any(|f| f["code"] == "SCN-014");
        assert_eq!(failed, finding, "{json:#}");
        let puts: Vec<(String, String)> =
            s.requests().iter().filter(|r| r.method == "PUT").map(|r| (r.path.clone(), r.body.clone())).collect();
        let txn: serde_json::Value = serde_json::from_str(&puts[0].1).unwrap();
        assert_eq!(puts[0].0, "/v1/txn");
        assert_eq!(txn[0]["Check"]["Check"]["ModifyIndex"], 31, "{txn:#}");
        assert_eq!(txn[1]["Service"]["Service"]["ModifyIndex"], 30, "{txn:#}");
        if status == 404 {
            assert_eq!(puts.len(), 2, "{puts:?}");
            assert_eq!(puts[1].0, "/v1/catalog/deregister");
            let body: serde_json::Value = serde_json::from_str(&puts[1].1).unwrap();
            assert_eq!(body, serde_json::json!({"Node": "legacy-a", "ServiceID": "legacy-1"}));
        } else {
            assert_eq!(puts.len(), 1, "nothing else written: {puts:?}");
        }
    }
}

/// The consistent re-read prune makes right before each deregistration, for catalog-only nodes
/// holding one critical service each: `/v1/catalog/node/<n>` (hashicorp/consul
/// `agent/structs/structs.go` `NodeServices`: Node, Services by ID) and `/v1/health/node/<n>`
/// (`HealthCheck` list).
fn reread_routes(nodes: &[(&str, &str)]) -> Vec<Route> {
    let mut routes = Vec::new();
    for (name, id) in nodes {
        routes.push(Route::json(
            &format!("/v1/catalog/node/{name}"),
            200,
            &serde_json::json!({"Node": {"Node": name, "Address": "127.0.0.51"},
                "Services": {*id: {"ID": id, "Service": "legacy", "Port": 80}}})
            .to_string(),
        ));
        routes.push(Route::json(
            &format!("/v1/health/node/{name}"),
            200,
            &serde_json::json!([{"Node": name, "CheckID": format!("{id}-alive"), "ServiceID": id, "Status": "critical"}])
                .to_string(),
        ));
    }
    routes
}

/// What 1.8.7 cannot show: an empty ServiceID (a lying proxy or server), instances imported
/// from a cluster peer under the name of a local node, and consul-k8s's agentless registrations.
/// `--prune --yes` sends no deregistration at all, and the report says why each is kept.
#[test]
fn prune_sends_nothing_for_empty_ids_peers_and_owned_registrations() {
    let nodes = serde_json::json!([
        // The agent's own node.
        {"Node": "srv-1", "Address": "127.0.0.1", "Services": [],
         "Checks": [{"CheckID": "serfHealth", "ServiceID": "", "Status": "passing", "ModifyIndex": 5}]},
        // A lying answer: a catalog-only service without an ID, its only check critical.
        // ({"Node": "liar", "ServiceID": ""} would deregister the whole node on 1.8.7.)
        {"Node": "liar", "Address": "10.0.0.9", "Services": [{"ID": "", "Service": "ghost", "Port": 80}],
         "Checks": [{"CheckID": "ghost-alive", "ServiceID": "", "Status": "critical"}]},
        // Imported from peer "east" (hashicorp/consul agent/structs/structs.go NodeInfo and
        // NodeService: PeerName, omitempty; agent/ui_endpoint.go lists peered nodes too), under
        // the local node's name, critical.
        {"Node": "srv-1", "Address": "10.1.0.5", "PeerName": "east",
         "Services": [{"ID": "web-9", "Service": "web", "Port": 8080, "PeerName": "east"}],
         "Checks": [{"CheckID": "web-9-alive", "ServiceID": "web-9", "Status": "critical", "PeerName": "east"}]},
        // consul-k8s endpoints controller, agentless (hashicorp/consul-k8s
        // control-plane/connect-inject/controllers/endpoints/endpoints_controller.go): synthetic
        // node, managed-by service meta, the pod's readiness check critical.
        {"Node": "k8s-node-1-virtual", "Address": "127.0.0.1", "Meta": {"synthetic-node": "true"},
         "Services": [{"ID": "pod1-api", "Service": "api", "Address": "10.0.3.7", "Port": 8080,
                       "Meta": {"managed-by": "consul-k8s-endpoints-controller", "pod-name": "pod1", "k8s-namespace": "default"}}],
         "Checks": [{"CheckID": "default/pod1-api", "ServiceID": "pod1-api", "Status": "critical",
                     "Name": "Kubernetes Readiness Check", "Output": "Pod \"default/pod1\" is not ready"}]}
    ])
    .to_string();
    let s = consul_with(vec![
        Route::text("/v1/internal/acl/authorize", 401, "ACL support disabled"),
        Route::json("/v1/internal/ui/nodes", 200, &nodes),
        Route::json("/v1/catalog/deregister", 200, "true").with_method("PUT"),
    ]);
    let run =
        run_doctor(&["scan", "--http-addr", &addr(&s), "--format", "json", "--prune", "--yes", "--grace", "0s"], &[]);
    let json = run.json();
    assert_eq!(json["prune"]["planned"], 0, "{json:#}");
    assert!(s.requests().iter().all(|r| r.method != "PUT"), "no write at all: {:#?}", s.requests());
    let kept = |id: &str| -> String {
        json["prune"]["kept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["service_id"] == id)
            .unwrap_or_else(|| panic!("{id} not kept: {:#}", json["prune"]))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(kept("").contains("no ServiceID"), "{json:#}");
    assert!(kept("web-9").contains("imported from cluster peer \"east\""), "{json:#}");
    assert!(kept("pod1-api").contains("consul-k8s"), "{json:#}");
    let codes = scan_codes(&json);
    assert!(codes.contains(&"SCN-016".to_string()) && codes.contains(&"SCN-015".to_string()), "{codes:?}");
    let peer = json["findings"].as_array().unwrap().iter().find(|f| f["code"] == "SCN-016").unwrap();
    assert_eq!(peer["node"], "east//srv-1", "the peer's srv-1 is not the local srv-1");
    let k8s = json["findings"].as_array().unwrap().iter().find(|f| f["code"] == "SCN-015").unwrap();
    assert!(k8s["message"].as_str().unwrap().contains("look at the pod's readiness"), "{k8s:#}");
    assert_eq!(json["scanned"]["nodes"], 4);
}

/// A member list that cannot be read: the scan says so (SCN-017), is incomplete, and prunes
/// nothing (a critical catalog-only instance is kept with the reason).
#[test]
fn unreadable_members_make_the_scan_incomplete_and_prune_nothing() {
    let nodes = serde_json::json!([
        {"Node": "legacy-a", "Address": "127.0.0.51", "Services": [{"ID": "legacy-1", "Service": "legacy", "Port": 80}],
         "Checks": [{"CheckID": "legacy-1-alive", "ServiceID": "legacy-1", "Status": "critical"}]}
    ])
    .to_string();
    let s = consul_with(vec![
        Route::text("/v1/internal/acl/authorize", 401, "ACL support disabled"),
        Route::json("/v1/internal/ui/nodes", 200, &nodes),
        Route::text("/v1/agent/members", 504, "gateway timeout"),
        Route::json("/v1/catalog/deregister", 200, "true").with_method("PUT"),
    ]);
    let run =
        run_doctor(&["scan", "--http-addr", &addr(&s), "--format", "json", "--prune", "--yes", "--grace", "0s"], &[]);
    let json = run.json();
    if json["command"] != "scan" {
        panic!("the connection stages refused the fake: {json:#}");
    }
    assert!(scan_codes(&json).contains(&"SCN-017".to_string()), "{json:#}");
    assert_eq!(json["scanned"]["complete"], false);
    assert_eq!(json["prune"]["planned"], 0, "{json:#}");
    assert!(json["prune"]["blocked"].as_str().unwrap().contains("incomplete"), "{json:#}");
    assert!(s.requests().iter().all(|r| r.method != "PUT"));
}

// --- wait: answers that cannot block, an agent that goes silent, a token echoed back ----------

const ONE_PASSING_WEB: &str = r#"[{"Node": {"Node": "srv-1", "Address": "127.0.0.1"}, "Service": {"ID": "web-1", "Service": "web", "Address": "", "Port": 8080}, "Checks": [{"CheckID": "service:web-1", "Status": "passing", "ServiceID": "web-1"}]}]"#;

#[test]
fn wait_paces_answers_that_cannot_block_and_says_why() {
    // Each of these turns a blocking query into an immediate answer (a proxy that strips or
    // rewrites the header, or drops `wait`); before pacing, wait sent thousands of requests a
    // second through such a path.
    let health = || Route::json("/v1/health/service/web", 200, ONE_PASSING_WEB);
    let cases: Vec<(&str, Route, &str)> = vec![
        ("no header", health(), "no X-Consul-Index"),
        ("zero", health().with_header("X-Consul-Index", "0"), "X-Consul-Index 0"),
        ("garbage", health().with_header("X-Consul-Index", "12abc"), "not a number"),
        ("unchanged at once", health().with_header("X-Consul-Index", "7"), "at once"),
        ("backwards", health().with_header_cycle("X-Consul-Index", &["90", "40", "20", "10"]), "backwards"),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(label, route, why)| {
            std::thread::spawn(move || {
                let s = consul_with(vec![route]);
                let run = run_doctor(
                    &[
                        "wait",
                        "--format",
                        "json",
                        "--http-addr",
                        &addr(&s),
                        "--service",
                        "web",
                        "--min-passing",
                        "2",
                        "--deadline",
                        "3s",
                    ],
                    &[],
                );
                let queries = s.requests().iter().filter(|r| r.path.starts_with("/v1/health/service/web")).count();
                (label, why, run, queries)
            })
        })
        .collect();
    for handle in runs {
        let (label, why, run, queries) = handle.join().unwrap();
        assert_eq!(run.code, 1, "{label}: {}", run.stderr);
        let json = run.json();
        // About one poll a second at first, then fewer (a reset costs one immediate re-read);
        // the deadline's diagnosis adds one. Before pacing: thousands.
        assert!((2..=8).contains(&queries), "{label}: {queries} health queries in 3 s");
        assert_eq!(root_cause(&json).as_deref(), Some("WAIT-003"), "{label}: {json:#}");
        let note = json["blocking_queries"].as_str().unwrap_or_else(|| panic!("{label}: {json:#}"));
        assert!(note.contains(why), "{label}: {note}");
        let r = result(&json["diagnosis"], "wait.blocking");
        assert_eq!((r["code"].as_str(), r["status"].as_str()), (Some("WAIT-007"), Some("note")), "{label}: {r:#}");
    }
    // Through a path that blocks (the index is honoured), no note: the same fake with a changing
    // index is not paced because every answer is a change.
    let s = consul_with(vec![health().with_header_cycle("X-Consul-Index", &["10", "11", "12"])]);
    let run = run_doctor(
        &["wait", "--format", "json", "--http-addr", &addr(&s), "--service", "web", "--deadline", "3s"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.json().get("blocking_queries").is_none());
}

#[test]
fn wait_ends_by_its_deadline_when_the_agent_goes_silent_mid_wait() {
    let s = std::sync::Arc::new(consul_with(vec![Route::json("/v1/health/service/web", 200, ONE_PASSING_WEB)
        .with_header_cycle("X-Consul-Index", &["10", "11", "12", "13", "14", "15", "16", "17"])]));
    let freezer = {
        let s = s.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            s.go_silent();
        })
    };
    let run = run_doctor(
        &[
            "wait",
            "--format",
            "json",
            "--http-addr",
            &addr(&s),
            "--service",
            "web",
            "--min-passing",
            "2",
            "--deadline",
            "4s",
        ],
        &[],
    );
    freezer.join().unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    let json = run.json();
    assert!(json["diagnosis"].is_object(), "a whole report, diagnosis included: {json:#}");
    // The diagnosis fits inside the deadline (it took 9 s before: twice --timeout after it).
    assert!(run.elapsed < Duration::from_millis(4800), "ended after {:?}", run.elapsed);
}

#[test]
fn a_token_the_server_echoes_never_leaks_where_a_message_cuts_it() {
    let token = "5b7c1d2e-aaaa-4bbb-8ccc-0123456789ab";
    // The 200-character snippet of the body ends 27 characters into the token.
    let body = format!("{}{token} was rejected", "x".repeat(173));
    let s = consul_with(vec![Route::text("/v1/agent/self", 500, &body)]);
    for format in ["human", "json", "junit"] {
        let run = run_doctor(
            &["check", "--http-addr", &addr(&s), "--token", token, "--format", format, "--verbose"],
            &[("NO_COLOR", "1")],
        );
        assert_eq!(run.code, 1, "{}", run.stdout);
        assert!(run.stdout.contains("xxxxxxxx"), "the body is quoted: {}", run.stdout);
        for part in token.as_bytes().windows(8).map(|w| std::str::from_utf8(w).unwrap()) {
            assert!(!run.stdout.contains(part), "{format}: {part:?} in stdout:\n{}", run.stdout);
            assert!(!run.stderr.contains(part), "{format}: {part:?} in stderr:\n{}", run.stderr);
        }
    }
}

// --- mesh: what 1.8.7 cannot show -------------------------------------------------------------

/// Consul 1.14+ split the gRPC port: `ports { grpc = -1, grpc_tls = 8503 }` leaves only the TLS
/// one, which Envoy must be given as `-grpc-addr https://…`.
#[test]
fn mesh_on_a_1_14_agent_with_only_the_tls_grpc_port() {
    // /v1/agent/self of 1.14+: `xDS.Ports{Plaintext, TLS}` from agent/agent_endpoint.go (`Self`,
    // `XDSSelf`, `GRPCPorts`), `GRPCPort`/`GRPCTLSPort` in DebugConfig from
    // agent/config/runtime.go (`RuntimeConfig`).
    let mut self_body: serde_json::Value = serde_json::from_str(&agent_self("1.14.3", true, "srv-1")).unwrap();
    self_body["DebugConfig"] = serde_json::json!({"ACLsEnabled": false, "ConnectEnabled": true, "GRPCPort": -1,
        "GRPCTLSPort": 8503, "GRPCAddrs": [], "GRPCTLSAddrs": ["tcp://127.0.0.1:8503"]});
    self_body["xDS"] = serde_json::json!({"SupportedProxies": {"envoy": ["1.24.0"]}, "Port": 8503,
        "Ports": {"Plaintext": -1, "TLS": 8503}});
    let members = serde_json::json!([member("srv-1", true, "1.14.3:", 2, 2, 3, Some(3))]);
    // /v1/agent/services, /v1/agent/checks and /v1/health/connect/web in the shapes of
    // agent/agent_endpoint.go (`buildAgentService`: Kind, Proxy) and agent/health_endpoint.go
    // (`HealthConnectServiceNodes`, the same entries as /v1/health/service), as the 1.8.7 lab
    // shows them; /v1/connect/ca/roots from agent/connect_ca_endpoint.go (`ConnectCARoots`,
    // structs.IndexedCARoots).
    let s = consul_with(vec![
        Route::json("/v1/agent/self", 200, &self_body.to_string()),
        Route::json("/v1/agent/members", 200, &members.to_string()),
        // The sidecar is a second name to write (agent/acl_endpoint.go `ACLAuthorize`).
        Route::json(
            "/v1/internal/acl/authorize",
            200,
            r#"[{"Resource": "service", "Segment": "web", "Access": "write", "Allow": true},
                {"Resource": "service", "Segment": "web-sidecar-proxy", "Access": "write", "Allow": true}]"#,
        )
        .with_method("POST"),
        Route::json(
            "/v1/agent/services",
            200,
            r#"{"web-1": {"ID": "web-1", "Service": "web", "Address": "", "Port": 8080, "Tags": []},
                "web-1-sidecar-proxy": {"Kind": "connect-proxy", "ID": "web-1-sidecar-proxy", "Service": "web-sidecar-proxy",
                  "Address": "", "Port": 21000, "Tags": [], "Proxy": {"DestinationServiceName": "web",
                  "DestinationServiceID": "web-1", "LocalServiceAddress": "127.0.0.1", "LocalServicePort": 8080}}}"#,
        ),
        Route::json(
            "/v1/agent/checks",
            200,
            r#"{"service:web-1": {"Node": "srv-1", "CheckID": "service:web-1", "Name": "ttl", "Type": "ttl", "Status": "passing", "Output": "", "ServiceID": "web-1"},
                "service:web-1-sidecar-proxy:1": {"Node": "srv-1", "CheckID": "service:web-1-sidecar-proxy:1", "Name": "Connect Sidecar Listening",
                  "Type": "tcp", "Status": "passing", "Output": "TCP connect 127.0.0.1:21000: Success", "ServiceID": "web-1-sidecar-proxy"}}"#,
        ),
        Route::json(
            "/v1/health/connect/web",
            200,
            r#"[{"Node": {"Node": "srv-1", "Address": "127.0.0.1"}, "Service": {"Kind": "connect-proxy", "ID": "web-1-sidecar-proxy",
                 "Service": "web-sidecar-proxy", "Port": 21000, "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "web-1"}},
                 "Checks": [{"CheckID": "service:web-1-sidecar-proxy:1", "Status": "passing", "ServiceID": "web-1-sidecar-proxy"}]}]"#,
        ),
        Route::json(
            "/v1/connect/ca/roots",
            200,
            r#"{"ActiveRootID": "e6:cd", "TrustDomain": "7470fab4.consul", "Roots": [{"ID": "e6:cd", "Name": "Consul CA Root Cert", "Active": true}]}"#,
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.json");
    std::fs::write(
        &path,
        r#"{"Name": "web", "ID": "web-1", "Port": 8080, "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "10m"}, "Connect": {"SidecarService": {}}}"#,
    )
    .unwrap();
    let (_, json) = check_json(&["--http-addr", &addr(&s), "--service-file", path.to_str().unwrap()], &[]);
    let xds = result(&json, "mesh.xds");
    assert_eq!(xds["code"], "MSH-011", "{json:#}");
    assert_eq!(xds["status"], "warn");
    let msg = xds["message"].as_str().unwrap();
    assert!(msg.contains("https://127.0.0.1:8503") && msg.contains("Plaintext -1, TLS 8503"), "{msg}");
    // The command for this sidecar's Envoy carries the TLS gRPC address.
    let start = result(&json, "mesh.proxy")["evidence"]["start"].as_str().unwrap().to_string();
    assert!(start.starts_with("consul connect envoy -sidecar-for=web-1 -http-addr="), "{start}");
    assert!(start.contains("-grpc-addr=https://127.0.0.1:8503"), "{start}");
    for id in ["mesh.connect", "mesh.sidecar", "mesh.proxy", "mesh.consumers"] {
        assert_eq!(result(&json, id)["status"], "pass", "{id}: {json:#}");
    }
}
