//! `scan` against real agents: a catalog seeded with known numbers of each kind of problem (a
//! joined agent killed so its node fails, catalog-only nodes, duplicate address:port, services
//! without checks, DNS-colliding names), a healthy catalog, ACL-filtered views and `--prune`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

fn scan_json(args: &[&str], env: &[(&str, &str)]) -> (Run, Value) {
    let mut all = vec!["scan", "--format", "json"];
    all.extend_from_slice(args);
    let run = run_doctor(&all, env);
    let json = run.json();
    (run, json)
}

fn by_code(json: &Value) -> Vec<(String, u64)> {
    json["summary"]["by_code"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect()
}

fn findings<'a>(json: &'a Value, code: &str) -> Vec<&'a Value> {
    json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == code).collect()
}

fn agent_register(a: &Agent, token: Option<&str>, body: Value) {
    let (st, text) = a.put("/v1/agent/service/register", token, &body.to_string());
    assert_eq!(st, 200, "register {body}: {text}");
}

/// A service with a TTL check that is set passing (it stays so for 10 minutes).
fn passing(a: &Agent, token: Option<&str>, name: &str, id: &str, port: u16, tags: &[&str]) {
    agent_register(
        a,
        token,
        json!({"Name": name, "ID": id, "Port": port, "Tags": tags,
               "Check": {"TTL": "10m", "DeregisterCriticalServiceAfter": "30m"}}),
    );
    let (st, text) = a.put(&format!("/v1/agent/check/pass/service:{id}"), token, "");
    assert_eq!(st, 200, "pass {id}: {text}");
}

fn catalog_register(a: &Agent, token: Option<&str>, body: Value) {
    let (st, text) = a.put("/v1/catalog/register", token, &body.to_string());
    assert_eq!((st, text.trim()), (200, "true"), "catalog register {body}");
}

/// Every node, service instance and check in the catalog, for before/after comparisons.
fn dump(a: &Agent, token: Option<&str>) -> BTreeSet<String> {
    let (st, body) = a.get("/v1/internal/ui/nodes", token);
    assert_eq!(st, 200, "{body}");
    let nodes: Vec<Value> = serde_json::from_str(&body).unwrap();
    let mut out = BTreeSet::new();
    for n in nodes {
        let node = n["Node"].as_str().unwrap().to_string();
        out.insert(format!("node {node} {}", n["Address"]));
        for s in n["Services"].as_array().unwrap() {
            out.insert(format!("service {node} {} {} {} {}", s["ID"], s["Service"], s["Port"], s["Tags"]));
        }
        for c in n["Checks"].as_array().unwrap() {
            out.insert(format!("check {node} {} {} {}", c["CheckID"], c["ServiceID"], c["Status"]));
        }
    }
    out
}

#[test]
fn seeded_catalog_gives_exact_counts_and_prune_removes_exactly_the_plan() {
    let a = start("scan-seed", Spec { dev: true, ..Spec::default() }, true);
    // A client agent that joins, registers a service, then dies: its node fails.
    let b = start("scan-gone", Spec { join: Some(a.serf_addr()), ..Spec::default() }, true);
    let gone_node = b.name.clone();
    wait_until(
        Duration::from_secs(30),
        || a.get("/v1/catalog/nodes", None).1.contains(&gone_node),
        "the client in the catalog",
    );
    agent_register(
        &b,
        None,
        json!({"Name": "cache", "ID": "cache-1", "Port": 6379,
        "Check": {"TTL": "10m"}}),
    );
    let (st, _) = b.put("/v1/agent/check/pass/service:cache-1", None, "");
    assert_eq!(st, 200);
    wait_until(
        Duration::from_secs(30),
        || a.get("/v1/health/service/cache", None).1.contains("cache-1"),
        "cache synced",
    );
    b.kill();
    wait_until(
        Duration::from_secs(60),
        || {
            let (_, m) = a.get("/v1/agent/members", None);
            serde_json::from_str::<Vec<Value>>(&m)
                .unwrap_or_default()
                .iter()
                .any(|m| m["Name"] == gone_node.as_str() && m["Status"] == 4)
        },
        "the killed agent failed",
    );

    // Duplicate address:port: the old ID critical, the new one passing.
    agent_register(&a, None, json!({"Name": "web", "ID": "web-old", "Port": 8080, "Check": {"TTL": "10m"}}));
    passing(&a, None, "web", "web-new", 8080, &[]);
    // A service whose instances have no check at all.
    agent_register(&a, None, json!({"Name": "nocheck", "ID": "nocheck-1", "Port": 9001}));
    agent_register(&a, None, json!({"Name": "nocheck", "ID": "nocheck-2", "Port": 9002}));
    // DNS: two names that are one to DNS, one name DNS cannot ask for (a dot makes it a tag
    // query), a tag DNS is not known to answer; `_` names and dotted tags are answered (1.8.7).
    passing(&a, None, "payments", "payments-1", 7001, &["v1.2", "pay day", "primary"]);
    // (Service IDs are case-insensitive per node in 1.8.7: "Payments-1" would replace "payments-1".)
    passing(&a, None, "Payments", "upper-payments-1", 7002, &[]);
    passing(&a, None, "pay.ments", "pay-ments-1", 7003, &[]);
    passing(&a, None, "pay_ments", "pay_ments-1", 7004, &[]);
    // Catalog-only nodes: one critical, one without checks.
    catalog_register(
        &a,
        None,
        json!({"Node": "legacy-crit", "Address": "127.0.0.31",
        "Service": {"ID": "legacy-1", "Service": "legacy", "Port": 5432},
        "Check": {"CheckID": "legacy-1-alive", "Name": "alive", "Status": "critical", "ServiceID": "legacy-1", "Output": "timeout"}}),
    );
    catalog_register(
        &a,
        None,
        json!({"Node": "legacy-bare", "Address": "127.0.0.32",
        "Service": {"ID": "legacy-2", "Service": "legacy", "Port": 5432}}),
    );
    wait_until(Duration::from_secs(30), || a.get("/v1/health/service/web", None).1.contains("web-new"), "web synced");

    let (run, json) = scan_json(&["--http-addr", &a.http_addr(), "--expect", "web=1"], &[]);
    assert_eq!(run.code, 0, "warnings only: {json:#}");
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["command"], "scan");
    assert_eq!(json["status"], "warn");
    let want: Vec<(String, u64)> = [
        ("SCN-001", 1),
        ("SCN-002", 1),
        ("SCN-003", 1),
        ("SCN-004", 1),
        ("SCN-005", 1),
        ("SCN-006", 1),
        ("SCN-007", 2),
        ("SCN-008", 1),
        ("SCN-009", 1),
        ("SCN-010", 1),
    ]
    .iter()
    .map(|(c, n)| (c.to_string(), *n))
    .collect();
    assert_eq!(by_code(&json), want, "{:#}", json["findings"]);
    assert_eq!(json["scanned"]["instances"], 12, "{:#}", json["scanned"]);
    assert_eq!(json["scanned"]["complete"], true);

    let gone = findings(&json, "SCN-001")[0];
    assert_eq!(
        (gone["service"].as_str(), gone["node"].as_str(), gone["service_id"].as_str()),
        (Some("cache"), Some(gone_node.as_str()), Some("cache-1"))
    );
    assert!(gone["fix"].as_str().unwrap().contains(&format!("consul force-leave {gone_node}")));
    let dup = findings(&json, "SCN-004")[0];
    assert_eq!(dup["service_id"], "web-old");
    assert_eq!(dup["address"], "127.0.0.1:8080");
    assert!(dup["message"].as_str().unwrap().contains("the current one is web-new"), "{dup:#}");
    assert_eq!(findings(&json, "SCN-003")[0]["service_id"], "legacy-2");
    assert_eq!(findings(&json, "SCN-002")[0]["evidence"]["status"], "critical");
    // The catalog call in its fix can be pasted: the address the scan reached, a failing exit
    // status on an error answer.
    let fix = findings(&json, "SCN-002")[0]["fix"].as_str().unwrap().to_string();
    assert!(
        fix.contains(&format!(
            r#"curl --fail --request PUT --data '{{"Node":"legacy-crit","ServiceID":"legacy-1"}}' http://{}/v1/catalog/deregister"#,
            a.http_addr()
        )),
        "{fix}"
    );
    assert_eq!(findings(&json, "SCN-009")[0]["evidence"]["tags"], "pay day", "v1.2 is answered by Consul DNS");
    assert_eq!(findings(&json, "SCN-008")[0]["service"], "pay.ments", "pay_ments is answered by Consul DNS");
    let web = json["services"].as_array().unwrap().iter().find(|s| s["name"] == "web").unwrap();
    assert_eq!(
        (web["instances"].as_u64(), web["passing"].as_u64(), web["critical"].as_u64(), web["stale"].as_u64()),
        (Some(2), Some(1), Some(1), Some(1))
    );

    // The dry run plans exactly the critical catalog-only instance. The failed node's instance
    // kept a passing check of its own: the prune contract keeps it, and says why.
    let prune = &json["prune"];
    assert_eq!(prune["mode"], "dry-run");
    let planned: BTreeSet<String> = prune["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {}", a["node"].as_str().unwrap(), a["service_id"].as_str().unwrap()))
        .collect();
    assert_eq!(planned, BTreeSet::from(["legacy-crit legacy-1".to_string()]));
    let kept: Vec<&Value> = prune["kept"].as_array().unwrap().iter().filter(|k| k["service_id"] == "cache-1").collect();
    assert_eq!(kept.len(), 1, "{prune:#}");
    assert!(kept[0]["reason"].as_str().unwrap().contains("is passing"), "{:#}", kept[0]);
    // One transaction: delete-cas of its check, then of the service, at the indexes the plan saw.
    let request = &prune["actions"][0]["request"];
    assert_eq!(request["path"], "/v1/txn");
    let ops = request["body"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "{request:#}");
    assert_eq!(ops[0]["Check"]["Verb"], "delete-cas");
    assert_eq!(
        (ops[0]["Check"]["Check"]["ServiceID"].as_str(), ops[0]["Check"]["Check"]["ServiceName"].as_str()),
        (Some("legacy-1"), Some("legacy"))
    );
    assert!(ops[0]["Check"]["Check"]["ModifyIndex"].as_u64().unwrap() > 0);
    assert_eq!(ops[1]["Service"]["Verb"], "delete-cas");
    assert_eq!(ops[1]["Service"]["Node"], "legacy-crit");
    assert_eq!(ops[1]["Service"]["Service"]["ID"], "legacy-1");
    assert!(ops[1]["Service"]["Service"]["ModifyIndex"].as_u64().unwrap() > 0);
    assert_eq!(prune["agent_side"].as_array().unwrap().len(), 1, "web-old is removed on its agent: {prune:#}");
    // Aimed at the agent that holds it, on the port this scan reached it (not the CLI's 8500).
    assert_eq!(
        prune["agent_side"][0]["command"],
        format!("CONSUL_HTTP_ADDR={} consul services deregister -id=web-old", a.http_addr()),
        "{prune:#}"
    );
    let dup_fix = findings(&json, "SCN-004")[0]["fix"].as_str().unwrap().to_string();
    assert!(
        dup_fix.contains(&format!("CONSUL_HTTP_ADDR={} consul services deregister -id=web-old", a.http_addr())),
        "{dup_fix}"
    );
    assert!(!dup_fix.contains(":8500"), "{dup_fix}");

    // Without --yes and without a terminal, --prune refuses to write.
    let refused = run_doctor(&["scan", "--http-addr", &a.http_addr(), "--prune"], &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);

    let before = dump(&a, None);
    let (run, json) = scan_json(&["--http-addr", &a.http_addr(), "--prune", "--yes"], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    assert_eq!(json["prune"]["mode"], "prune");
    assert_eq!(json["prune"]["removed"], 1, "{:#}", json["prune"]);
    assert!(json["prune"]["actions"].as_array().unwrap().iter().all(|a| a["outcome"] == "removed"));
    let after = dump(&a, None);
    let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert!(after.is_subset(&before), "nothing added: {:?}", after.difference(&before).collect::<Vec<_>>());
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|l| {
            l.starts_with("service legacy-crit \"legacy-1\"") || l.starts_with("check legacy-crit \"legacy-1-alive\"")
        })
        .cloned()
        .collect();
    assert_eq!(expected.len(), 2, "{before:#?}");
    assert_eq!(removed, expected, "exactly the planned instances and their checks are gone");

    let (_, json) = scan_json(&["--http-addr", &a.http_addr()], &[]);
    assert!(findings(&json, "SCN-002").is_empty(), "{json:#}");
    assert_eq!(findings(&json, "SCN-001").len(), 1, "cache-1 stays, reported: {json:#}");
    assert_eq!(json["prune"]["planned"], 0);
}

#[test]
fn healthy_catalog_has_zero_findings_through_either_endpoint() {
    // ui/nodes blocked: the scan falls back to one request per service and still sees all.
    let a = start(
        "scan-healthy",
        Spec {
            dev: true,
            extra_hcl: "http_config { block_endpoints = [\"/v1/internal/ui/nodes\"] }\n".into(),
            ..Spec::default()
        },
        true,
    );
    for (id, port) in [("api-1", 8081), ("api-2", 8082)] {
        passing(&a, None, "api", id, port, &["v1", "primary"]);
    }
    passing(&a, None, "db", "db-1", 5432, &[]);
    wait_until(Duration::from_secs(30), || a.get("/v1/health/service/db", None).1.contains("db-1"), "synced");
    let (run, json) = scan_json(&["--http-addr", &a.http_addr(), "--expect", "api=2"], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    assert_eq!(json["status"], "pass", "{:#}", json["findings"]);
    assert_eq!(json["findings"].as_array().unwrap().len(), 0);
    assert_eq!(json["scanned"]["instances"], 4, "api x2, db, consul");
    assert!(json["scanned"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().starts_with("GET /v1/health/service/")));
    let human = run_doctor(&["scan", "--http-addr", &a.http_addr(), "--color", "never"], &[]);
    assert_eq!(human.code, 0);
    assert!(human.stdout.contains("No problems found."), "{}", human.stdout);
    assert!(human.stdout.contains("Result: PASS"), "{}", human.stdout);
    // --service scans only what is named; a name that is not there is said so.
    let (run, json) = scan_json(&["--http-addr", &a.http_addr(), "--service", "api", "--service", "apj", "-v"], &[]);
    assert_eq!(run.code, 0);
    assert_eq!(json["instances"].as_array().unwrap().len(), 2);
    assert_eq!(by_code(&json), vec![("SCN-013".to_string(), 1)], "{json:#}");
}

#[test]
fn unreadable_catalog_is_a_failure_not_a_clean_report() {
    let a = start(
        "scan-blocked",
        Spec {
            dev: true,
            extra_hcl: "http_config { block_endpoints = [\"/v1/internal/ui/nodes\", \"/v1/catalog/services\"] }\n"
                .into(),
            ..Spec::default()
        },
        true,
    );
    let (run, json) = scan_json(&["--http-addr", &a.http_addr()], &[]);
    assert_eq!(run.code, 1, "{json:#}");
    let f = findings(&json, "SCN-012");
    assert_eq!(f.len(), 1, "{json:#}");
    assert!(f[0]["message"].as_str().unwrap().contains("Endpoint is blocked by agent configuration"), "{:#}", f[0]);
    let junit = run_doctor(&["scan", "--http-addr", &a.http_addr(), "--format", "junit"], &[]);
    assert!(junit.stdout.contains("<failure type=\"SCN-012\""), "{}", junit.stdout);
}

#[test]
fn a_token_that_sees_part_of_the_catalog_says_so_and_cannot_prune() {
    let a = acl();
    let master = a.master_token.as_deref();
    passing(a, master, "scanvis-a", "scanvis-a-1", 7101, &[]);
    agent_register(a, master, json!({"Name": "scanhidden-b", "ID": "scanhidden-b-1", "Port": 7102}));
    catalog_register(
        a,
        master,
        json!({"Node": "scanvis-legacy", "Address": "127.0.0.41",
        "Service": {"ID": "scanvis-old-1", "Service": "scanvis-old", "Port": 7103},
        "Check": {"CheckID": "scanvis-old-alive", "Name": "alive", "Status": "critical", "ServiceID": "scanvis-old-1"}}),
    );
    let (_, secret) = a.acl_token(
        "scan-partial",
        "service_prefix \"scanvis-\" { policy = \"read\" }\nnode_prefix \"\" { policy = \"read\" }\nagent_prefix \"\" { policy = \"read\" }",
        "",
    );
    wait_until(
        Duration::from_secs(30),
        || a.get("/v1/health/service/scanvis-a", master).1.contains("scanvis-a-1"),
        "synced",
    );

    let (run, json) = scan_json(&["--http-addr", &a.http_addr(), "--token", &secret], &[]);
    assert_eq!(run.code, 1, "{json:#}");
    assert_eq!(json["status"], "fail");
    assert_eq!(json["scanned"]["complete"], false);
    let hidden = findings(&json, "SCN-011");
    assert_eq!(hidden.len(), 1, "{json:#}");
    assert!(hidden[0]["message"].as_str().unwrap().contains("service_prefix"), "{:#}", hidden[0]);
    assert!(!run.stdout.contains("scanhidden-b"), "the hidden service is not reported (it is not seen)");
    assert!(!run.stdout.contains(&secret), "the token never appears");

    // Scoped to what the token may read, the view is complete.
    let (_, json) = scan_json(&["--http-addr", &a.http_addr(), "--token", &secret, "--service", "scanvis-a"], &[]);
    assert!(findings(&json, "SCN-011").is_empty(), "{json:#}");
    assert_eq!(json["status"], "pass", "{json:#}");

    // Pruning with a read-only token: the deregistration is refused and the policy is named.
    let (run, json) = scan_json(
        &["--http-addr", &a.http_addr(), "--token", &secret, "--service", "scanvis-old", "--prune", "--yes"],
        &[],
    );
    assert_eq!(run.code, 1, "{json:#}");
    let failed = findings(&json, "SCN-014");
    assert_eq!(failed.len(), 1, "{json:#}");
    assert!(
        failed[0]["fix"].as_str().unwrap().contains("service \"scanvis-old\" { policy = \"write\" }"),
        "{:#}",
        failed[0]
    );
    assert_eq!(json["prune"]["failed"], 1);
    assert!(a.get("/v1/catalog/service/scanvis-old", master).1.contains("scanvis-old-1"), "still registered");
}

#[test]
fn a_broken_connection_is_reported_in_checks_shape() {
    let addr = format!("127.0.0.1:{}", free_port());
    let (run, json) = scan_json(&["--http-addr", &addr], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(root_cause(&json).as_deref(), Some("TCP-001"), "{json:#}");
    assert_eq!(result(&json, "api.agent")["blocked_by"], "TCP-001");
}
