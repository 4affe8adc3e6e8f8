//! The discovery stage against real agents: Consul DNS on the agent's DNS port (read from
//! /v1/agent/self) compared with the health API. Shared agents get unique service names; DNS
//! configuration scenarios start their own agent.

use serde_json::{json, Value};

use crate::common::*;

fn register(a: &Agent, token: Option<&str>, body: Value) {
    let (st, b) = a.put("/v1/agent/service/register", token, &body.to_string());
    assert_eq!(st, 200, "register {body}: {b}");
}

fn deregister(a: &Agent, token: Option<&str>, id: &str) {
    let _ = a.put(&format!("/v1/agent/service/deregister/{id}"), token, "");
}

fn service_file(dir: &tempfile::TempDir, body: Value) -> String {
    let p = dir.path().join("svc.json");
    std::fs::write(&p, json!({ "service": body }).to_string()).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn healthy_service_answers_srv_and_a_on_the_agents_dns_port() {
    let a = dev();
    register(a, None, json!({"Name": "disc-ok", "ID": "disc-ok-1", "Port": 7101, "Tags": ["v1"]}));
    let dir = tempfile::tempdir().unwrap();
    let file = service_file(&dir, json!({"name": "disc-ok", "id": "disc-ok-1", "port": 7101, "tags": ["v1"]}));
    // The agent's own DNS port as the consumers' resolver: it is authoritative for consul.
    let (run, json) =
        check_json(&["--http-addr", &a.http_addr(), "--service-file", &file, "--dns-server", &a.dns_addr()], &[]);
    deregister(a, None, "disc-ok-1");
    let dns = result(&json, "discovery.dns");
    assert_eq!(dns["status"], "pass", "{json:#}");
    let msg = dns["message"].as_str().unwrap();
    assert!(msg.contains("1 SRV") && msg.contains("A 127.0.0.1"), "{msg}");
    assert_eq!(dns["evidence"]["dns_server"], a.dns_addr(), "the port comes from /v1/agent/self");
    let tags = result(&json, "discovery.tags");
    assert!(tags["message"].as_str().unwrap().contains("v1: 1 SRV"), "{tags:#}");
    assert_eq!(result(&json, "discovery.resolver")["status"], "pass", "{json:#}");
    assert_eq!(result(&json, "discovery.health")["status"], "pass");
    assert_eq!(run.code, 0, "{json:#}");
}

#[test]
fn nothing_registered_yet_says_what_consumers_will_see() {
    let a = dev();
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service", "disc-not-yet"], &[]);
    let dns = result(&json, "discovery.dns");
    assert_eq!(dns["status"], "pass", "{json:#}");
    assert!(dns["message"].as_str().unwrap().contains("once an instance passes"), "{dns:#}");
    assert!(result(&json, "discovery.health")["message"].as_str().unwrap().contains("no instance"));
    assert_eq!(run.code, 0, "{json:#}");
}

#[test]
fn all_critical_instances_are_a_finding_and_dns_agrees() {
    let a = dev();
    // Instances on another node (catalog only), all critical: nothing earlier explains it.
    let body = json!({"Node": "disc-crit-node", "Address": "127.0.0.1",
        "Service": {"ID": "disc-crit-1", "Service": "disc-crit", "Port": 7102},
        "Check": {"CheckID": "disc-crit-1-health", "Name": "health", "ServiceID": "disc-crit-1", "Status": "critical"}});
    let (st, b) = a.put("/v1/catalog/register", None, &body.to_string());
    assert_eq!(st, 200, "{b}");
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service", "disc-crit"], &[]);
    let _ = a.put("/v1/catalog/deregister", None, &json!({"Node": "disc-crit-node"}).to_string());
    let h = result(&json, "discovery.health");
    assert_eq!(h["code"], "DSC-002", "{json:#}");
    let dns = result(&json, "discovery.dns");
    assert_eq!(dns["status"], "skip");
    assert_eq!(dns["blocked_by"], "DSC-002");
    assert!(dns["message"].as_str().unwrap().contains("NXDOMAIN"), "{dns:#}");
    assert_eq!(run.code, 1);
}

#[test]
fn critical_instance_on_this_agent_is_reported_once_by_sync() {
    let a = dev();
    register(
        a,
        None,
        json!({"Name": "disc-crit-local", "ID": "disc-crit-local-1", "Port": 7107, "Check": {"TTL": "10m", "Status": "critical", "DeregisterCriticalServiceAfter": "90m"}}),
    );
    let def = r#"{"Name": "disc-crit-local", "ID": "disc-crit-local-1", "Port": 7107, "Check": {"TTL": "10m", "DeregisterCriticalServiceAfter": "90m"}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svc.json");
    std::fs::write(&file, def).unwrap();
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", file.to_str().unwrap()], &[]);
    deregister(a, None, "disc-crit-local-1");
    // A TTL check created critical has had no update yet: not run, not failed.
    assert_eq!(codes(&json), vec!["SYN-008"], "one cause, one finding: {json:#}");
    let h = result(&json, "discovery.health");
    assert_eq!(h["blocked_by"], "SYN-008", "{h:#}");
    assert_eq!(result(&json, "discovery.dns")["blocked_by"], "SYN-008");
    // Every instance critical: the cause stands at the consequence's severity.
    let s = result(&json, "sync.checks");
    assert_eq!((s["status"].as_str(), s["raised_by"].as_str()), (Some("fail"), Some("DSC-002")), "{s:#}");
    assert_eq!(root_cause(&json).as_deref(), Some("SYN-008"));
}

#[test]
fn maintenance_is_named_as_the_reason() {
    let a = dev();
    register(a, None, json!({"Name": "disc-maint", "ID": "disc-maint-1", "Port": 7103}));
    let (st, body) = a.put("/v1/agent/service/maintenance/disc-maint-1?enable=true&reason=deploying", None, "");
    assert_eq!(st, 200, "{body}");
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service", "disc-maint"], &[]);
    deregister(a, None, "disc-maint-1");
    let h = result(&json, "discovery.health");
    assert_eq!(h["code"], "DSC-002", "{json:#}");
    assert!(h["message"].as_str().unwrap().contains("maintenance: disc-maint-1"), "{h:#}");
    assert!(h["message"].as_str().unwrap().contains("deploying"), "{h:#}");
}

#[test]
fn dns_disabled_on_the_agent() {
    let a = start("nodns", Spec { dev: true, no_dns: true, ..Spec::default() }, true);
    let (st, self_) = a.get("/v1/agent/self", None);
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&self_).unwrap();
    assert_eq!(v["DebugConfig"]["DNSPort"], -1, "the agent really runs without DNS");
    register(&a, None, json!({"Name": "web", "ID": "web-1", "Port": 80}));
    let (run, json) = check_json(
        &["--http-addr", &a.http_addr(), "--service", "web", "--service-id", "web-1", "--service-port", "80"],
        &[],
    );
    assert_eq!(codes(&json), vec!["DSC-001"], "{json:#}");
    assert_eq!(run.code, 0, "a warning");
}

#[test]
fn default_deny_filters_dns_and_is_reported_once_as_acl_007() {
    let a = acl();
    register(a, Some(MASTER_TOKEN), json!({"Name": "disc-acl", "ID": "disc-acl-1", "Port": 7104}));
    let (_, json) = check_json(
        &[
            "--http-addr",
            &a.http_addr(),
            "--token",
            MASTER_TOKEN,
            "--service",
            "disc-acl",
            "--service-id",
            "disc-acl-1",
            "--service-port",
            "7104",
        ],
        &[],
    );
    deregister(a, Some(MASTER_TOKEN), "disc-acl-1");
    assert_eq!(codes(&json), vec!["ACL-007"], "one cause, one finding: {json:#}");
    let dns = result(&json, "discovery.dns");
    assert_eq!(dns["status"], "skip");
    assert_eq!(dns["blocked_by"], "ACL-007");
    assert!(dns["message"].as_str().unwrap().contains("NXDOMAIN"), "DNS really filtered it: {dns:#}");
    assert_eq!(result(&json, "discovery.health")["status"], "pass", "the caller's token sees the instance");
}

#[test]
fn one_acl_cause_is_one_warning_for_the_tag_queries_too() {
    let a = acl();
    register(
        a,
        Some(MASTER_TOKEN),
        json!({"Name": "disc-acl-tags", "ID": "disc-acl-tags-1", "Port": 7114, "Tags": ["blue"]}),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = service_file(
        &dir,
        json!({"name": "disc-acl-tags", "id": "disc-acl-tags-1", "port": 7114, "tags": ["blue"],
        "check": {"ttl": "10m", "status": "passing", "deregister_critical_service_after": "90m"}}),
    );
    register(
        a,
        Some(MASTER_TOKEN),
        json!({"Name": "disc-acl-tags", "ID": "disc-acl-tags-1", "Port": 7114, "Tags": ["blue"],
        "Check": {"TTL": "10m", "Status": "passing", "DeregisterCriticalServiceAfter": "90m"}}),
    );
    let (run, json) =
        check_json(&["--http-addr", &a.http_addr(), "--token", MASTER_TOKEN, "--service-file", &file], &[]);
    deregister(a, Some(MASTER_TOKEN), "disc-acl-tags-1");
    assert_eq!(codes(&json), vec!["ACL-007"], "one cause, one finding: {json:#}");
    let t = result(&json, "discovery.tags");
    assert_eq!((t["status"].as_str(), t["blocked_by"].as_str()), (Some("skip"), Some("ACL-007")), "{t:#}");
    assert!(t["message"].as_str().unwrap().contains("NXDOMAIN"), "{t:#}");
    assert_eq!(run.code, 0, "a warning-level cause never fails a preflight: {json:#}");
}

#[test]
fn tags_and_names_are_judged_by_what_consul_dns_answers() {
    // The agent logs that "v1.2", "env=prod" and "blue_green" (and the name "disc_tags") "will
    // not be discoverable via DNS", yet 1.8.7's DNS answers every one of them.
    let a = dev();
    let tags = json!(["v1.2", "env=prod", "blue_green"]);
    register(a, None, json!({"Name": "disc_tags", "ID": "disc-tags-1", "Port": 7105, "Tags": tags}));
    let dir = tempfile::tempdir().unwrap();
    let file = service_file(&dir, json!({"name": "disc_tags", "id": "disc-tags-1", "port": 7105, "tags": tags}));
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &file], &[]);
    deregister(a, None, "disc-tags-1");
    assert!(a.log().contains("will not be discoverable via DNS"), "the agent really warns");
    let dns = result(&json, "discovery.dns");
    assert_eq!(dns["status"], "pass", "{json:#}");
    assert!(dns["message"].as_str().unwrap().contains("1 SRV"), "{dns:#}");
    let t = result(&json, "discovery.tags");
    assert_eq!(t["status"], "pass", "{json:#}");
    for tag in ["v1.2: 1 SRV", "env=prod: 1 SRV", "blue_green: 1 SRV"] {
        assert!(t["message"].as_str().unwrap().contains(tag), "{tag}: {t:#}");
    }
    for code in ["CFG-021", "DSC-004", "DSC-008"] {
        assert!(!codes(&json).contains(&code.to_string()), "{code}: {json:#}");
    }
    assert_eq!(run.code, 0, "{json:#}");
}

#[test]
fn loopback_answer_for_an_instance_on_another_node() {
    let a = dev();
    // A node with a routable address (registered in the catalog only; nothing is sent to it)
    // whose service says 127.0.0.1.
    let body = json!({"Node": "disc-remote-node", "Address": "10.20.30.40",
        "Service": {"ID": "disc-lo-1", "Service": "disc-lo", "Address": "127.0.0.1", "Port": 7106}});
    let (st, b) = a.put("/v1/catalog/register", None, &body.to_string());
    assert_eq!(st, 200, "{b}");
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service", "disc-lo"], &[]);
    let _ = a.put("/v1/catalog/deregister", None, &json!({"Node": "disc-remote-node"}).to_string());
    let r = result(&json, "discovery.address");
    assert_eq!(r["code"], "DSC-005", "{json:#}");
    assert!(r["message"].as_str().unwrap().contains("10.20.30.40"), "{r:#}");
}

#[test]
fn consumer_resolver_that_does_not_forward_consul() {
    let a = dev();
    let resolver = fakedns::FakeDns::refused();
    let (run, json) = check_json(
        &["--http-addr", &a.http_addr(), "--service", "disc-fwd", "--dns-server", &resolver.addr.to_string()],
        &[],
    );
    let r = result(&json, "discovery.resolver");
    assert_eq!(r["code"], "DSC-007", "{json:#}");
    assert_eq!(run.code, 0, "a warning: the doctor cannot know every consumer uses it");
}

#[test]
fn only_passing_leaves_warning_instances_out() {
    let a = start(
        "onlypass",
        Spec { dev: true, extra_hcl: "dns_config { only_passing = true }\n".into(), ..Spec::default() },
        true,
    );
    register(&a, None, json!({"Name": "web", "ID": "web-1", "Port": 81}));
    register(&a, None, json!({"Name": "web", "ID": "web-2", "Port": 82, "Check": {"TTL": "10m", "Status": "warning"}}));
    let (_, json) = check_json(
        &["--http-addr", &a.http_addr(), "--service", "web", "--service-id", "web-1", "--service-port", "81"],
        &[],
    );
    assert_eq!(result(&json, "discovery.health")["code"], "DSC-003", "{json:#}");
    // DNS serves only the passing one, as the configuration says: no second finding.
    assert_eq!(result(&json, "discovery.dns")["status"], "pass", "{json:#}");
}

#[test]
fn cached_dns_answers_say_how_long_until_consumers_see_the_change() {
    let a = start(
        "dnscache",
        Spec {
            dev: true,
            extra_hcl:
                "dns_config {\n  service_ttl { \"*\" = \"30s\" }\n  use_cache = true\n  cache_max_age = \"1m\"\n}\n"
                    .into(),
            ..Spec::default()
        },
        true,
    );
    register(&a, None, json!({"Name": "web", "ID": "web-1", "Port": 81}));
    let args = ["--http-addr", &a.http_addr(), "--service", "web", "--service-id", "web-1", "--service-port", "81"];
    let (run, first) = check_json(&args, &[]);
    assert_eq!(run.code, 0, "{first:#}");
    let dns = result(&first, "discovery.dns");
    assert_eq!(dns["status"], "pass", "{first:#}");
    assert_eq!(dns["evidence"]["service_ttl"], "30s", "{dns:#}");
    assert!(dns["message"].as_str().unwrap().contains("TTL 30s"), "Consul's own answer carries it: {dns:#}");
    let msg = dns["message"].as_str().unwrap();
    assert!(msg.contains("consumers may keep an answer for up to 30s"), "says how long: {msg}");
    assert!(dns["evidence"]["use_cache"].as_str().unwrap().contains("1m0s"), "{dns:#}");
}
