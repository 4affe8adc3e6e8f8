//! The mesh stage, `wait --connect` and scan's sidecar findings against real Consul 1.8.7
//! agents with Connect: a dev agent has `connect { enabled = true }`; the shared mesh agent also
//! opens a gRPC port. Tests share it with distinct service names; the built-in proxy
//! (`consul connect proxy -sidecar-for ID`) is started on loopback by the test and killed after.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

/// A dev agent (Connect on) with a gRPC port.
fn mesh() -> &'static Agent {
    static A: OnceLock<Agent> = OnceLock::new();
    A.get_or_init(|| start("mesh", Spec { dev: true, grpc: true, ..Spec::default() }, true))
}

/// Registers through the agent and waits until the catalog has the service (anti-entropy).
fn register(a: &Agent, token: Option<&str>, body: &Value) {
    let (st, b) = a.put("/v1/agent/service/register", token, &body.to_string());
    assert_eq!(st, 200, "register {body}: {b}");
    let name = body.get("name").or(body.get("Name")).and_then(Value::as_str).unwrap();
    let id = body.get("id").or(body.get("ID")).and_then(Value::as_str).unwrap_or(name);
    let path = format!("/v1/catalog/service/{name}");
    wait_until(
        Duration::from_secs(20),
        || {
            let list: Value = serde_json::from_str(&a.get(&path, a.master_token.as_deref()).1).unwrap_or(Value::Null);
            list.as_array().is_some_and(|l| l.iter().any(|e| e["ServiceID"] == id))
        },
        "service in the catalog",
    );
}

/// A `sidecar_service` block with its own free port (the agent's default 21000+ range is
/// shared by every agent on this host) and address 127.0.0.1, which is where the built-in
/// proxy then binds its public listener (without it, 0.0.0.0; a `bind_address` in the proxy
/// config did not change that on 1.8.7).
fn sidecar(proxy: Value) -> Value {
    json!({"port": free_port(), "address": "127.0.0.1", "proxy": proxy})
}

/// Registers `service` on the agent and writes the same definition to a file for the doctor.
fn registered(a: &Agent, token: Option<&str>, service: Value) -> (tempfile::TempDir, String) {
    register(a, token, &service);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("svc.json");
    std::fs::write(&p, json!({ "service": service }).to_string()).unwrap();
    let path = p.to_str().unwrap().to_string();
    (dir, path)
}

/// A built-in proxy for a sidecar, killed on drop.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_proxy(a: &Agent, service_id: &str) -> Proxy {
    let log = std::fs::File::create(a.file(&format!("proxy-{service_id}.log"))).unwrap();
    let child = Command::new(consul_bin())
        .args(["connect", "proxy", "-sidecar-for", service_id, "-http-addr", &a.http_addr()])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start consul connect proxy");
    Proxy(child)
}

fn sidecar_check(a: &Agent, sidecar: &str) -> (String, String) {
    let (_, body) = a.get("/v1/agent/checks", a.master_token.as_deref());
    let checks: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let c = checks.as_object().and_then(|m| {
        m.values().find(|c| c["ServiceID"] == sidecar && c["Name"] == "Connect Sidecar Listening").cloned()
    });
    c.map(|c| (c["Status"].as_str().unwrap_or("").to_string(), c["Output"].as_str().unwrap_or("").to_string()))
        .unwrap_or_default()
}

fn mesh_codes(json: &Value) -> Vec<String> {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["stage"] == "mesh")
        .filter_map(|c| c["code"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn sidecar_without_a_proxy_names_the_proxy_as_root_cause_with_the_command() {
    let a = mesh();
    let (_dir, file) = registered(
        a,
        None,
        json!({"name": "msh-noproxy", "port": 7301, "connect": {"sidecar_service": sidecar(json!({}))}}),
    );
    // The agent's TCP check has run at least once (critical with the dial error).
    wait_until(
        Duration::from_secs(20),
        || sidecar_check(a, "msh-noproxy-sidecar-proxy").1.contains("connection refused"),
        "Connect Sidecar Listening critical",
    );
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &file], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("MSH-006"), "{json:#}");
    assert_eq!(run.code, 1);
    let proxy = result(&json, "mesh.proxy");
    let msg = proxy["message"].as_str().unwrap();
    assert!(msg.contains("nothing listens") && msg.contains("connection refused"), "{msg}");
    let fix = proxy["fix"].as_str().unwrap();
    // gRPC is open: Envoy first, the built-in proxy as the alternative; the doctor's address.
    let http = format!("-http-addr={}", a.http_addr());
    assert!(fix.contains(&format!("consul connect envoy -sidecar-for=msh-noproxy {http}")), "{fix}");
    assert!(fix.contains(&format!("consul connect proxy -sidecar-for=msh-noproxy {http}")), "{fix}");
    // What consumers see is the same problem, reported once.
    let consumers = result(&json, "mesh.consumers");
    assert_eq!((consumers["status"].as_str(), consumers["blocked_by"].as_str()), (Some("skip"), Some("MSH-006")));
    assert_eq!(result(&json, "mesh.connect")["status"], "pass");
    assert_eq!(result(&json, "mesh.sidecar")["status"], "pass", "{json:#}");
    assert_eq!(result(&json, "mesh.xds")["status"], "pass", "{json:#}");
    // The service itself passes: the plain discovery view is fine.
    assert_eq!(result(&json, "discovery.health")["status"], "pass");
}

#[test]
fn the_built_in_proxy_running_passes_and_wait_connect_gates_on_it() {
    let a = mesh();
    let up_port = free_port();
    register(a, None, &json!({"name": "msh-up-api", "port": 7311, "connect": {"sidecar_service": sidecar(json!({}))}}));
    let (_dir, file) = registered(
        a,
        None,
        json!({"name": "msh-up", "port": 7312, "connect": {"sidecar_service": sidecar(json!({
            "upstreams": [{"destination_name": "msh-up-api", "local_bind_port": up_port}]}))}}),
    );
    // wait --connect before the proxy runs: the service passes, its sidecar does not.
    let early = run_doctor(
        &[
            "wait",
            "--format",
            "json",
            "--http-addr",
            &a.http_addr(),
            "--service",
            "msh-up",
            "--connect",
            "--deadline",
            "2s",
        ],
        &[],
    );
    let early_json = early.json();
    assert_eq!(early.code, 1, "{early_json:#}");
    assert_eq!(early_json["root_cause"]["code"], "WAIT-015", "{early_json:#}");
    let msg = early_json["root_cause"]["message"].as_str().unwrap();
    assert!(msg.contains("msh-up-sidecar-proxy"), "{msg}");

    // Now wait in the background and start both proxies meanwhile.
    let waiter = doctor_cmd()
        .args(["wait", "--format", "json", "--http-addr", &a.http_addr(), "--service", "msh-up", "--connect"])
        .args(["--deadline", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p1 = start_proxy(a, "msh-up");
    let _p2 = start_proxy(a, "msh-up-api");
    let out = waiter.wait_with_output().unwrap();
    let wait_json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let logs = std::fs::read_to_string(a.file("proxy-msh-up.log")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{wait_json:#}\nproxy log:\n{logs}");
    assert_eq!(wait_json["outcome"], "met", "{wait_json:#}");
    assert_eq!(wait_json["condition"]["connect"], true);
    wait_until(
        Duration::from_secs(30),
        || sidecar_check(a, "msh-up-api-sidecar-proxy").0 == "passing",
        "the upstream's proxy listening",
    );

    let (run, json) =
        check_json(&["--http-addr", &a.http_addr(), "--service-file", &file, "--from", "msh-up-api"], &[]);
    assert!(mesh_codes(&json).is_empty(), "{json:#}");
    assert_eq!(run.code, 0, "{json:#}");
    for id in ["mesh.connect", "mesh.sidecar", "mesh.proxy", "mesh.xds", "mesh.upstreams", "mesh.consumers", "mesh.dns"]
    {
        assert_eq!(result(&json, id)["status"], "pass", "{id}: {json:#}");
    }
    let intentions = result(&json, "mesh.intentions")["message"].as_str().unwrap().to_string();
    assert!(intentions.contains("msh-up → msh-up-api") && intentions.contains("msh-up-api → msh-up"), "{intentions}");
    let dns = result(&json, "mesh.dns")["message"].as_str().unwrap().to_string();
    assert!(dns.contains("1 SRV") && dns.contains("msh-up.connect.consul."), "{dns}");
}

#[test]
fn a_sidecar_forwarding_to_the_wrong_local_port() {
    let a = mesh();
    let (_dir, file) = registered(
        a,
        None,
        json!({"name": "msh-wrongport", "port": 7321, "connect": {"sidecar_service": sidecar(json!({"local_service_port": 7322}))}}),
    );
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &file], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("MSH-005"), "{json:#}");
    assert_eq!(run.code, 1);
    let msg = result(&json, "mesh.sidecar")["message"].as_str().unwrap().to_string();
    assert!(msg.contains("127.0.0.1:7322") && msg.contains("port 7321"), "{msg}");
    assert!(result(&json, "mesh.sidecar")["fix"].as_str().unwrap().contains("local_service_port = 7321"));
}

#[test]
fn upstreams_that_do_not_exist_or_have_no_sidecar() {
    let a = mesh();
    register(a, None, &json!({"name": "msh-plain-db", "port": 7331}));
    let (_dir, file) = registered(
        a,
        None,
        json!({"name": "msh-ups", "port": 7332, "connect": {"sidecar_service": sidecar(json!({"upstreams": [
            {"destination_name": "msh-nonexistent", "local_bind_port": 7333},
            {"destination_name": "msh-plain-db", "local_bind_port": 7334}]}))}}),
    );
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &file], &[]);
    let ups: Vec<&Value> = results(&json, "mesh.upstreams");
    let codes: Vec<&str> = ups.iter().filter_map(|r| r["code"].as_str()).collect();
    assert_eq!(codes, vec!["MSH-012", "MSH-013"], "{json:#}");
    assert!(ups[0]["message"].as_str().unwrap().contains("\"msh-nonexistent\""));
}

#[test]
fn upstreams_sharing_a_bind_port_keep_the_sidecar_out_of_the_catalog() {
    // Its own agent: while the servers reject one sidecar, that agent's anti-entropy run stops
    // at it, and other registrations' check updates reach the catalog late (seen in this lab).
    let a = start("mesh-collide", Spec { dev: true, ..Spec::default() }, true);
    register(&a, None, &json!({"name": "msh-plain-db", "port": 7331}));
    let (_dir2, file2) = registered(
        &a,
        None,
        json!({"name": "msh-collide", "port": 7335, "connect": {"sidecar_service": sidecar(json!({"upstreams": [
            {"destination_name": "msh-plain-db", "local_bind_port": 7336},
            {"destination_name": "msh-collide-other", "local_bind_port": 7336}]}))}}),
    );
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &file2], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("MSH-008"), "{json:#}");
    assert_eq!(run.code, 1);
    assert!(result(&json, "mesh.sidecar")["message"].as_str().unwrap().contains("127.0.0.1:7336"), "{json:#}");
    assert!(mesh_codes(&json).contains(&"MSH-014".to_string()), "{json:#}");
    assert!(a.log().contains("upstreams cannot contain duplicates by local bind address and port"));
}

#[test]
fn grpc_disabled_while_the_definition_expects_envoy() {
    // The shared dev agent runs with ports { grpc = -1 }.
    let a = dev();
    let (_dir, file) = registered(
        a,
        None,
        json!({"name": "msh-envoy", "port": 7341, "connect": {"sidecar_service": sidecar(json!({
            "config": {"envoy_prometheus_bind_addr": "127.0.0.1:9102"}}))}}),
    );
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &file], &[]);
    let xds = result(&json, "mesh.xds");
    assert_eq!(xds["code"], "MSH-009", "{json:#}");
    let msg = xds["message"].as_str().unwrap();
    assert!(msg.contains("envoy_prometheus_bind_addr") && msg.contains("GRPCPort -1"), "{msg}");
    // Without gRPC the start command is the built-in proxy's.
    let fix = result(&json, "mesh.proxy")["fix"].as_str().unwrap().to_string();
    assert!(fix.contains("consul connect envoy -sidecar-for=msh-envoy"), "Envoy is what the definition wants: {fix}");

    // A sidecar that does not ask for Envoy is fine without gRPC: the built-in proxy serves it.
    let (_d2, plain) = registered(
        a,
        None,
        json!({"name": "msh-builtin", "port": 7342, "connect": {"sidecar_service": sidecar(json!({}))}}),
    );
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &plain], &[]);
    assert_eq!(result(&json, "mesh.xds")["status"], "pass", "{json:#}");
    let fix = result(&json, "mesh.proxy")["fix"].as_str().unwrap().to_string();
    assert!(
        fix.starts_with("start the proxy") && fix.contains("consul connect proxy -sidecar-for=msh-builtin"),
        "{fix}"
    );
    assert!(!fix.contains("connect envoy"), "{fix}");
}

#[test]
fn intentions_deny_explicitly_and_by_default_under_acls() {
    // Its own ACL agent: the sidecars' critical checks must not show in the shared one's lists.
    let agent = start("mesh-acl", Spec { dev: true, acl_master: Some(MASTER_TOKEN.into()), ..Spec::default() }, true);
    let a = &agent;
    let master = a.master_token.clone().unwrap();
    let (_dir, file) = registered(
        a,
        Some(&master),
        json!({"name": "msh-acl-web", "port": 7351, "connect": {"sidecar_service": sidecar(json!({"upstreams": [
            {"destination_name": "msh-acl-api", "local_bind_port": 7352}]}))}}),
    );
    register(
        a,
        Some(&master),
        &json!({"name": "msh-acl-api", "port": 7353, "connect": {"sidecar_service": sidecar(json!({}))}}),
    );
    let deny = json!({"SourceName": "msh-acl-web", "DestinationName": "msh-acl-api", "Action": "deny"}).to_string();
    let (st, body) = http_request("POST", a.http, "/v1/connect/intentions", Some(&master), Some(&deny));
    assert_eq!(st, 200, "{body}");
    let (run, json) = check_json(
        &["--http-addr", &a.http_addr(), "--service-file", &file, "--from", "msh-acl-client"],
        &[("CONSUL_HTTP_TOKEN", master.as_str())],
    );
    assert!(!run.stdout.contains(&master), "the token never appears");
    let found: Vec<(&str, &str)> = results(&json, "mesh.intentions")
        .iter()
        .map(|r| (r["code"].as_str().unwrap_or(""), r["message"].as_str().unwrap()))
        .collect();
    assert_eq!(found.len(), 2, "{json:#}");
    assert_eq!(found[0].0, "MSH-015");
    assert!(found[0].1.contains("msh-acl-web → msh-acl-api (deny)"), "{}", found[0].1);
    assert_eq!(found[1].0, "MSH-016");
    assert!(found[1].1.contains("ACLs are enabled with default_policy \"deny\""), "{}", found[1].1);
    assert!(result(&json, "mesh.intentions")["fix"].as_str().unwrap().contains("consul intention"));
    // The start command names where the token comes from, never the token.
    let fix = result(&json, "mesh.proxy")["fix"].as_str().unwrap().to_string();
    assert!(fix.contains("CONSUL_HTTP_TOKEN") && !fix.contains(&master), "{fix}");
}

#[test]
fn connect_disabled_on_the_agent() {
    let a = start(
        "mesh-off",
        Spec { dev: true, extra_hcl: "connect {\n  enabled = false\n}\n".into(), ..Spec::default() },
        true,
    );
    let (_dir, file) = registered(
        &a,
        None,
        json!({"name": "msh-off", "port": 7361, "connect": {"sidecar_service": sidecar(json!({}))}}),
    );
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &file], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("MSH-001"), "{json:#}");
    assert_eq!(run.code, 1);
    for id in ["mesh.sidecar", "mesh.proxy", "mesh.upstreams", "mesh.consumers"] {
        assert_eq!(result(&json, id)["blocked_by"], "MSH-001", "{id}: {json:#}");
    }
    assert!(result(&json, "mesh.connect")["message"].as_str().unwrap().contains("ConnectEnabled false"));
}

#[test]
fn native_services_and_services_outside_the_mesh() {
    let a = mesh();
    // The definition says native, the agent holds a plain registration.
    register(a, None, &json!({"name": "msh-native", "port": 7371}));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("native.json");
    std::fs::write(
        &file,
        json!({"service": {"name": "msh-native", "port": 7371, "connect": {"native": true}}}).to_string(),
    )
    .unwrap();
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", file.to_str().unwrap()], &[]);
    assert_eq!(result(&json, "mesh.sidecar")["code"], "MSH-017", "{json:#}");
    // Registered native: no sidecar needed, and the mesh lists it.
    register(a, None, &json!({"name": "msh-native", "port": 7371, "connect": {"native": true}}));
    wait_until(
        Duration::from_secs(20),
        || a.get("/v1/health/connect/msh-native", None).1.contains("msh-native"),
        "the native registration in the catalog",
    );
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", file.to_str().unwrap()], &[]);
    assert!(mesh_codes(&json).is_empty(), "{json:#}");
    assert!(result(&json, "mesh.sidecar")["message"].as_str().unwrap().contains("Connect-native"));
    assert_eq!(result(&json, "mesh.consumers")["status"], "pass", "{json:#}");
    // A --service with no sidecar anywhere is not in the mesh: skipped, with the reason.
    register(a, None, &json!({"name": "msh-outside", "port": 7372}));
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service", "msh-outside"], &[]);
    let r = result(&json, "mesh.connect");
    assert_eq!(r["status"], "skip");
    assert!(r["message"].as_str().unwrap().contains("not in the mesh"), "{r:#}");
    // A --service whose sidecar the agent holds is judged.
    register(
        a,
        None,
        &json!({"name": "msh-flagged", "port": 7373, "connect": {"sidecar_service": sidecar(json!({}))}}),
    );
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service", "msh-flagged"], &[]);
    assert_eq!(result(&json, "mesh.connect")["status"], "pass", "{json:#}");
    assert_eq!(result(&json, "mesh.proxy")["code"], "MSH-006", "{json:#}");
}

#[test]
fn scan_reports_orphan_sidecars_and_instances_without_theirs() {
    let a = mesh();
    // A sidecar whose service is not registered (as a deploy that removed only the service).
    register(
        a,
        None,
        &json!({"Kind": "connect-proxy", "Name": "msh-orphan-sidecar-proxy", "ID": "msh-orphan-sidecar-proxy",
                "Port": free_port(), "Proxy": {"DestinationServiceName": "msh-orphan", "DestinationServiceID": "msh-orphan"}}),
    );
    // Two instances of one service, only one with its sidecar.
    register(
        a,
        None,
        &json!({"name": "msh-half", "id": "msh-half-1", "port": 7381, "connect": {"sidecar_service": sidecar(json!({}))}}),
    );
    register(a, None, &json!({"name": "msh-half", "id": "msh-half-2", "port": 7382}));
    wait_until(
        Duration::from_secs(10),
        || a.get("/v1/catalog/service/msh-orphan-sidecar-proxy", None).1.contains("msh-orphan"),
        "orphan sidecar in the catalog",
    );
    let run = run_doctor(
        &[
            "scan",
            "--format",
            "json",
            "--http-addr",
            &a.http_addr(),
            "--service",
            "msh-orphan",
            "--service",
            "msh-half",
        ],
        &[],
    );
    let json = run.json();
    let findings = json["findings"].as_array().unwrap();
    let get = |code: &str| findings.iter().find(|f| f["code"] == code).unwrap_or_else(|| panic!("{code}: {json:#}"));
    assert_eq!(get("SCN-035")["service_id"], "msh-orphan-sidecar-proxy");
    assert_eq!(get("SCN-036")["service_id"], "msh-half-2");
    assert_eq!(json["prune"]["planned"], 0, "sidecar findings never make anything prunable: {json:#}");
}

#[test]
fn connect_on_the_client_but_not_on_the_servers() {
    let server = start(
        "mesh-srv-off",
        Spec { dev: true, extra_hcl: "connect {\n  enabled = false\n}\n".into(), ..Spec::default() },
        true,
    );
    let client = start(
        "mesh-client",
        Spec {
            join: Some(server.serf_addr()),
            extra_hcl: "connect {\n  enabled = true\n}\n".into(),
            ..Spec::default()
        },
        true,
    );
    let (_dir, file) = registered(
        &client,
        None,
        json!({"name": "msh-srv", "port": 7391, "connect": {"sidecar_service": sidecar(json!({}))}}),
    );
    let (run, json) = check_json(&["--http-addr", &client.http_addr(), "--service-file", &file], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("MSH-002"), "{json:#}");
    assert_eq!(run.code, 1);
    let msg = result(&json, "mesh.connect")["message"].as_str().unwrap().to_string();
    assert!(msg.contains("Connect must be enabled in order to use this endpoint"), "{msg}");
    assert_eq!(result(&json, "mesh.proxy")["blocked_by"], "MSH-002");
}

#[test]
fn a_grpc_port_bound_where_the_proxy_does_not_reach_it() {
    // gRPC listens on 127.0.0.2 only; the agent (and Envoy beside it) is reached on 127.0.0.1.
    let a = start(
        "mesh-grpc-elsewhere",
        Spec { dev: true, grpc: true, extra_hcl: "addresses {\n  grpc = \"127.0.0.2\"\n}\n".into(), ..Spec::default() },
        true,
    );
    let (_dir, file) = registered(
        &a,
        None,
        json!({"name": "msh-grpc", "port": 7392, "connect": {"sidecar_service": sidecar(json!({}))}}),
    );
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &file], &[]);
    let xds = result(&json, "mesh.xds");
    assert_eq!(xds["code"], "MSH-010", "{json:#}");
    let msg = xds["message"].as_str().unwrap();
    assert!(msg.contains(&format!("127.0.0.1:{}", a.grpc.unwrap())) && msg.contains("127.0.0.2"), "{msg}");
}

#[test]
fn a_definition_not_registered_yet_is_judged_without_failures() {
    let a = mesh();
    register(a, None, &json!({"name": "msh-pre-api", "port": 7393}));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pre.json");
    let def = json!({"service": {"name": "msh-pre", "port": 7394, "connect": {"sidecar_service": {"proxy": {
        "upstreams": [{"destination_name": "msh-pre-api", "local_bind_port": 7395}]}}}}});
    std::fs::write(&file, def.to_string()).unwrap();
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", file.to_str().unwrap()], &[]);
    // Preflight: the sidecar and consumers are judged "not yet"; the upstream already tells.
    assert!(result(&json, "mesh.sidecar")["message"].as_str().unwrap().contains("not registered on this agent yet"));
    assert!(result(&json, "mesh.consumers")["message"].as_str().unwrap().contains("not registered yet"));
    assert_eq!(result(&json, "mesh.consumers")["status"], "pass");
    assert_eq!(mesh_codes(&json), vec!["MSH-013".to_string()], "{json:#}");
}

/// Writes a service (and optionally its proxy with a check) onto a node no agent runs, the way
/// an external registrar does.
fn catalog_register(a: &Agent, node: &str, service: Value, check: Option<Value>) {
    let mut body = json!({"Node": node, "Address": "127.0.0.1", "Service": service});
    if let Some(c) = check {
        body["Check"] = c;
    }
    let (st, b) = a.put("/v1/catalog/register", None, &body.to_string());
    assert_eq!(st, 200, "{b}");
}

#[test]
fn sidecars_on_other_nodes() {
    let a = mesh();
    // The service runs here without its sidecar; a sidecar for its ID sits on another node.
    register(a, None, &json!({"name": "msh-away", "port": 7396}));
    catalog_register(
        a,
        "msh-other-node",
        json!({"Kind": "connect-proxy", "ID": "msh-away-sidecar-proxy", "Service": "msh-away-sidecar-proxy",
               "Port": 21096, "Proxy": {"DestinationServiceName": "msh-away", "DestinationServiceID": "msh-away"}}),
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("away.json");
    std::fs::write(
        &file,
        json!({"service": {"name": "msh-away", "port": 7396, "connect": {"sidecar_service": {}}}}).to_string(),
    )
    .unwrap();
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", file.to_str().unwrap()], &[]);
    let sidecar = result(&json, "mesh.sidecar");
    assert_eq!(sidecar["code"], "MSH-004", "{json:#}");
    assert!(sidecar["message"].as_str().unwrap().contains("msh-other-node"), "{sidecar:#}");

    // Asked from a node that does not run it: the mesh has only a failing sidecar elsewhere.
    catalog_register(a, "msh-far-node", json!({"ID": "msh-far", "Service": "msh-far", "Port": 7397}), None);
    catalog_register(
        a,
        "msh-far-node",
        json!({"Kind": "connect-proxy", "ID": "msh-far-sidecar-proxy", "Service": "msh-far-sidecar-proxy",
               "Port": 21097, "Proxy": {"DestinationServiceName": "msh-far", "DestinationServiceID": "msh-far"}}),
        Some(json!({"CheckID": "msh-far-listening", "Name": "Connect Sidecar Listening", "Status": "critical",
                    "ServiceID": "msh-far-sidecar-proxy", "Output": "dial tcp 127.0.0.1:21097: connect: connection refused"})),
    );
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service", "msh-far"], &[]);
    let consumers = result(&json, "mesh.consumers");
    assert_eq!(consumers["code"], "MSH-018", "{json:#}");
    assert!(result(&json, "mesh.sidecar")["message"].as_str().unwrap().contains("the mesh has it on msh-far-node"));
    assert!(
        consumers["message"].as_str().unwrap().contains("1 connect-capable instance(s), none passing"),
        "{consumers:#}"
    );
}
