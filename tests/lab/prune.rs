//! `scan --prune` against real Consul 1.8.7 agents, trying to make it do harm: a client agent
//! paused with SIGSTOP, a node that comes back while prune waits or while the question is
//! asked, consul-esm- and consul-k8s-shaped registrations, catalog-only instances, two prunes at
//! once, a token that may deregister only some instances, and SIGTERM/SIGINT mid-prune. Every
//! test compares full catalog dumps (`/v1/catalog/nodes`, then `/v1/catalog/node/<n>` and
//! `/v1/health/node/<n>` for every node) before and after.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// Every node (with its meta), service (ID, name, port, tags, meta) and check (ID, service,
/// status) in the catalog. serfHealth lines carry their status, so a node that comes back shows.
fn dump(a: &Agent, token: Option<&str>) -> BTreeSet<String> {
    let (st, body) = a.get("/v1/catalog/nodes", token);
    assert_eq!(st, 200, "{body}");
    let nodes: Vec<Value> = serde_json::from_str(&body).unwrap();
    let mut out = BTreeSet::new();
    for n in nodes {
        let name = n["Node"].as_str().unwrap().to_string();
        out.insert(format!("node {name} {} {}", n["Address"], n["Meta"]));
        let (st, body) = a.get(&format!("/v1/catalog/node/{name}"), token);
        assert_eq!(st, 200, "{body}");
        let node: Value = serde_json::from_str(&body).unwrap();
        for (_, s) in node["Services"].as_object().cloned().unwrap_or_default() {
            out.insert(format!(
                "service {name} {} {} {} {} {}",
                s["ID"], s["Service"], s["Port"], s["Tags"], s["Meta"]
            ));
        }
        let (st, body) = a.get(&format!("/v1/health/node/{name}"), token);
        assert_eq!(st, 200, "{body}");
        for c in serde_json::from_str::<Vec<Value>>(&body).unwrap() {
            out.insert(format!("check {name} {} {} {}", c["CheckID"], c["ServiceID"], c["Status"]));
        }
    }
    out
}

fn lines_of<'a>(dump: &'a BTreeSet<String>, node: &str, service_id: &str) -> BTreeSet<&'a String> {
    dump.iter()
        .filter(|l| {
            l.starts_with(&format!("service {node} \"{service_id}\""))
                || (l.starts_with(&format!("check {node} ")) && l.contains(&format!(" \"{service_id}\" ")))
        })
        .collect()
}

/// Asserts `after` is `before` minus exactly the instances named (their service and checks).
fn removed_exactly(before: &BTreeSet<String>, after: &BTreeSet<String>, gone: &[(&str, &str)]) {
    let added: Vec<&String> = after.difference(before).collect();
    assert!(added.is_empty(), "nothing may appear: {added:#?}");
    let removed: BTreeSet<&String> = before.difference(after).collect();
    let mut expected = BTreeSet::new();
    for (node, id) in gone {
        let l = lines_of(before, node, id);
        assert!(!l.is_empty(), "{node} {id} not in the dump before: {before:#?}");
        expected.extend(l);
    }
    assert_eq!(removed, expected, "exactly the named instances and their checks are gone");
}

/// A new dev agent syncs its own node meta a moment after it elects itself: wait for it, so
/// dumps compare only what the test and the doctor did.
fn settled(a: Agent) -> Agent {
    wait_until(
        Duration::from_secs(30),
        || a.get(&format!("/v1/catalog/node/{}", a.name), None).1.contains("consul-network-segment"),
        "the agent's own node synced",
    );
    a
}

fn catalog_register(a: &Agent, token: Option<&str>, body: Value) {
    let (st, text) = a.put("/v1/catalog/register", token, &body.to_string());
    assert_eq!((st, text.trim()), (200, "true"), "catalog register {body}");
}

fn scan(args: &[&str], env: &[(&str, &str)]) -> (Run, Value) {
    let mut all = vec!["scan", "--format", "json"];
    all.extend_from_slice(args);
    let run = run_doctor(&all, env);
    let json = run.json();
    (run, json)
}

fn action<'a>(json: &'a Value, service_id: &str) -> &'a Value {
    json["prune"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["service_id"] == service_id)
        .unwrap_or_else(|| panic!("no action for {service_id}: {:#}", json["prune"]))
}

fn kept<'a>(json: &'a Value, service_id: &str) -> &'a Value {
    json["prune"]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["service_id"] == service_id)
        .unwrap_or_else(|| panic!("{service_id} not in the kept list: {:#}", json["prune"]))
}

fn member_status(a: &Agent, node: &str) -> Option<u64> {
    let (_, m) = a.get("/v1/agent/members", None);
    serde_json::from_str::<Vec<Value>>(&m)
        .unwrap_or_default()
        .iter()
        .find(|m| m["Name"] == node)
        .and_then(|m| m["Status"].as_u64())
}

fn serf_health(a: &Agent, node: &str) -> String {
    let (_, body) = a.get(&format!("/v1/health/node/{node}"), None);
    serde_json::from_str::<Vec<Value>>(&body)
        .unwrap_or_default()
        .iter()
        .find(|c| c["CheckID"] == "serfHealth")
        .map(|c| c["Status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn pause(server: &Agent, client: &Agent) {
    client.signal(libc::SIGSTOP);
    wait_until(
        Duration::from_secs(60),
        || member_status(server, &client.name) == Some(4) && serf_health(server, &client.name) == "critical",
        "the paused client failed (member failed, serfHealth critical)",
    );
}

fn resume(server: &Agent, client: &Agent) {
    client.signal(libc::SIGCONT);
    wait_until(
        Duration::from_secs(60),
        || member_status(server, &client.name) == Some(1) && serf_health(server, &client.name) == "passing",
        "the resumed client alive again (member alive, serfHealth passing)",
    );
}

/// The doctor in the background, its stderr read line by line (CONSUL_DOCTOR_LOG=debug).
struct Background {
    child: Child,
    stderr: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    fn start(args: &[&str]) -> Background {
        let mut cmd = doctor_cmd();
        cmd.args(args).env("CONSUL_DOCTOR_LOG", "debug").stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn consul-doctor");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Background { child, stderr: rx, seen: Vec::new() }
    }

    fn wait_for_line(&mut self, words: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(200)) {
                let hit = l.contains(words);
                self.seen.push(l);
                if hit {
                    return;
                }
            }
        }
        panic!("no stderr line with {words:?}: {:#?}", self.seen);
    }

    fn finish(mut self) -> (i32, Value) {
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let status = self.child.wait().unwrap();
        let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\n{:#?}", self.seen));
        (status.code().unwrap_or(-1), json)
    }
}

#[test]
fn a_paused_agent_is_never_pruned_while_it_is_only_paused() {
    let server = settled(start("prune-srv", Spec { dev: true, ..Spec::default() }, true));
    let client = start("prune-cli", Spec { join: Some(server.serf_addr()), ..Spec::default() }, true);
    let node = client.name.clone();
    wait_until(Duration::from_secs(30), || member_status(&server, &node) == Some(1), "client joined");
    // One instance whose own check passes, one whose own check is critical (TTL never passed).
    for (id, port) in [("paused-web-1", 8080), ("paused-crit-1", 8081)] {
        let name = id.trim_end_matches("-1");
        let body = json!({"Name": name, "ID": id, "Port": port, "Check": {"TTL": "10m"}});
        let (st, text) = client.put("/v1/agent/service/register", None, &body.to_string());
        assert_eq!(st, 200, "{text}");
    }
    let (st, _) = client.put("/v1/agent/check/pass/service:paused-web-1", None, "");
    assert_eq!(st, 200);
    wait_until(
        Duration::from_secs(30),
        || {
            server.get("/v1/health/service/paused-web", None).1.contains("\"passing\"")
                && server.get("/v1/health/service/paused-crit", None).1.contains("paused-crit-1")
        },
        "both synced",
    );
    let addr = server.http_addr();

    // 1. Paused (as a GC pause or a short partition does): serf says failed, serfHealth
    //    critical, the service's own check still passing. Even with no grace at all, nothing
    //    of the passing instance goes.
    pause(&server, &client);
    let before = dump(&server, None);
    let (run, json) =
        scan(&["--http-addr", &addr, "--service", "paused-web", "--prune", "--yes", "--grace", "0s"], &[]);
    assert_eq!(json["prune"]["planned"], 0, "{:#}", json["prune"]);
    assert!(kept(&json, "paused-web-1")["reason"].as_str().unwrap().contains("is passing"), "{:#}", json["prune"]);
    assert_eq!(dump(&server, None), before, "nothing removed; run: {}", run.stderr);

    // 2. The critical one is planned; prune waits for the grace period, the node comes back
    //    meanwhile, and the re-read right before the deregistration skips it.
    let mut bg = Background::start(&[
        "scan",
        "--format",
        "json",
        "--http-addr",
        &addr,
        "--service",
        "paused-crit",
        "--prune",
        "--yes",
        "--grace",
        "40s",
        "--deadline",
        "90s",
    ]);
    bg.wait_for_line("waiting");
    let before = dump(&server, None);
    resume(&server, &client);
    let (code, json) = bg.finish();
    assert_eq!(code, 0, "{json:#}");
    let a = action(&json, "paused-crit-1");
    assert_eq!(a["outcome"], "skipped", "{a:#}");
    let detail = a["detail"].as_str().unwrap();
    assert!(detail.contains("runs a live agent") || detail.contains("changed since the plan"), "{detail}");
    let after = dump(&server, None);
    let changed: Vec<&String> = before.symmetric_difference(&after).collect();
    assert!(
        changed.iter().all(|l| l.contains("\"serfHealth\"")),
        "only the node's serfHealth changed (it came back): {changed:#?}"
    );
    assert!(lines_of(&after, &node, "paused-crit-1").len() == 2, "still registered: {after:#?}");

    // 3. Paused again: the grace passes with the node still gone and the same serfHealth, so the
    //    critical instance (and nothing else) is removed.
    pause(&server, &client);
    let before = dump(&server, None);
    let (run, json) = scan(
        &[
            "--http-addr",
            &addr,
            "--prune",
            "--yes",
            "--grace",
            "2s",
            "--service",
            "paused-crit",
            "--service",
            "paused-web",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{json:#}");
    assert_eq!(action(&json, "paused-crit-1")["outcome"], "removed", "{:#}", json["prune"]);
    assert_eq!(json["prune"]["removed"], 1);
    assert!(kept(&json, "paused-web-1")["reason"].as_str().unwrap().contains("is passing"));
    // The removed instance no longer counts as a finding.
    assert!(
        !json["findings"].as_array().unwrap().iter().any(|f| f["service_id"] == "paused-crit-1"),
        "{:#}",
        json["findings"]
    );
    removed_exactly(&before, &dump(&server, None), &[(&node, "paused-crit-1")]);
    client.signal(libc::SIGCONT);
}

#[test]
fn sigterm_mid_prune_reports_like_sigint() {
    let server = settled(start("prune-sig-srv", Spec { dev: true, ..Spec::default() }, true));
    let client = start("prune-sig-cli", Spec { join: Some(server.serf_addr()), ..Spec::default() }, true);
    wait_until(Duration::from_secs(30), || member_status(&server, &client.name) == Some(1), "client joined");
    let body = json!({"Name": "sig", "ID": "sig-1", "Port": 9000, "Check": {"TTL": "10m"}});
    assert_eq!(client.put("/v1/agent/service/register", None, &body.to_string()).0, 200);
    wait_until(Duration::from_secs(30), || server.get("/v1/health/service/sig", None).1.contains("sig-1"), "synced");
    pause(&server, &client);
    let before = dump(&server, None);
    let mut reports = Vec::new();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut bg = Background::start(&[
            "scan",
            "--format",
            "json",
            "--http-addr",
            &server.http_addr(),
            "--service",
            "sig",
            "--prune",
            "--yes",
            "--grace",
            "5m",
            "--deadline",
            "10m",
        ]);
        bg.wait_for_line("waiting");
        unsafe { libc::kill(bg.child.id() as i32, sig) };
        let (code, json) = bg.finish();
        assert_eq!(code, 130, "signal {sig}: {json:#}");
        assert_eq!(json["interrupted"], true);
        let a = action(&json, "sig-1").clone();
        assert_eq!(a["outcome"], "not-attempted", "{a:#}");
        reports.push((a["outcome"].clone(), a["detail"].clone(), json["prune"]["removed"].clone()));
    }
    assert_eq!(reports[0], reports[1], "SIGTERM leaves the same per-instance report as SIGINT");
    assert_eq!(dump(&server, None), before, "nothing removed");
    client.signal(libc::SIGCONT);
}

#[test]
fn owners_and_catalog_only_instances() {
    let a = settled(start("prune-owners", Spec { dev: true, ..Spec::default() }, true));
    // consul-esm's shape (hashicorp/consul-esm README.md): node meta external-node and
    // external-probe, the node-level externalNodeHealth check critical, service checks passing
    // and critical.
    catalog_register(
        &a,
        None,
        json!({"Node": "esm-ext", "Address": "127.0.0.51", "NodeMeta": {"external-node": "true", "external-probe": "true"},
        "Service": {"ID": "esm-web-1", "Service": "esm-web", "Port": 80},
        "Checks": [
            {"CheckID": "externalNodeHealth", "Name": "External Node Status", "Status": "critical"},
            {"CheckID": "service:esm-web-1", "Name": "web", "Status": "passing", "ServiceID": "esm-web-1"}
        ]}),
    );
    catalog_register(
        &a,
        None,
        json!({"Node": "esm-ext", "Address": "127.0.0.51", "NodeMeta": {"external-node": "true", "external-probe": "true"},
            "Service": {"ID": "esm-db-1", "Service": "esm-db", "Port": 5432},
            "Check": {"CheckID": "service:esm-db-1", "Name": "db", "Status": "critical", "ServiceID": "esm-db-1"}}),
    );
    // consul-k8s endpoints controller's agentless shape (hashicorp/consul-k8s
    // control-plane/connect-inject/controllers/endpoints/endpoints_controller.go): a synthetic
    // node, service meta managed-by, the pod's readiness check critical.
    catalog_register(
        &a,
        None,
        json!({"Node": "k8s-node-1-virtual", "Address": "127.0.0.1", "NodeMeta": {"synthetic-node": "true"},
            "Service": {"ID": "pod1-k8sweb", "Service": "k8sweb", "Address": "127.0.0.52", "Port": 8080,
                "Meta": {"managed-by": "consul-k8s-endpoints-controller", "pod-name": "pod1", "k8s-namespace": "default",
                         "k8s-service-name": "k8sweb", "synthetic-node": "true"}},
            "Check": {"CheckID": "default/pod1-k8sweb", "Name": "Kubernetes Readiness Check", "Status": "critical",
                      "ServiceID": "pod1-k8sweb", "Output": "Pod \"default/pod1\" is not ready"}}),
    );
    // Catalog-only instances nobody owns: passing, critical, without any check, in maintenance.
    for (node, id, status) in [
        ("co-pass", "co-pass-1", Some("passing")),
        ("co-crit", "co-crit-1", Some("critical")),
        ("co-bare", "co-bare-1", None),
    ] {
        let mut body =
            json!({"Node": node, "Address": "127.0.0.53", "Service": {"ID": id, "Service": "legacy", "Port": 7000}});
        if let Some(s) = status {
            body["Check"] = json!({"CheckID": format!("{id}-alive"), "Name": "alive", "Status": s, "ServiceID": id});
        }
        catalog_register(&a, None, body);
    }
    catalog_register(
        &a,
        None,
        json!({"Node": "co-maint", "Address": "127.0.0.54", "Service": {"ID": "co-maint-1", "Service": "legacy", "Port": 7001},
            "Check": {"CheckID": "_service_maintenance:co-maint-1", "Name": "Service Maintenance Mode", "Status": "critical", "ServiceID": "co-maint-1"}}),
    );

    let before = dump(&a, None);
    let (run, json) = scan(&["--http-addr", &a.http_addr()], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    let planned: Vec<&str> =
        json["prune"]["actions"].as_array().unwrap().iter().map(|a| a["service_id"].as_str().unwrap()).collect();
    assert_eq!(planned, vec!["co-crit-1"], "{:#}", json["prune"]);
    for (id, words) in [
        ("esm-db-1", "consul-esm (node meta external-node=true, external-probe=true)"),
        ("pod1-k8sweb", "consul-k8s (service meta managed-by=consul-k8s-endpoints-controller)"),
        ("co-pass-1", "is passing"),
        ("co-bare-1", "no health check of its own"),
        ("co-maint-1", "maintenance"),
    ] {
        let k = kept(&json, id);
        assert!(k["reason"].as_str().unwrap().contains(words), "{id}: {k:#}");
    }
    // Owned registrations are not called stale: their findings speak of the owner.
    let owned: Vec<&Value> = json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "SCN-015").collect();
    // esm-web-1's own check passes, but consul-esm's node check is critical: Consul folds it in.
    assert_eq!(owned.len(), 3, "{:#}", json["findings"]);
    let k8s = owned.iter().find(|f| f["service_id"] == "pod1-k8sweb").unwrap();
    assert!(k8s["message"].as_str().unwrap().contains("look at the pod's readiness"), "{k8s:#}");
    assert!(!json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| ["esm-web-1", "esm-db-1", "pod1-k8sweb"].contains(&f["service_id"].as_str().unwrap_or(""))
            && ["SCN-001", "SCN-002", "SCN-003"].contains(&f["code"].as_str().unwrap())));
    // The human dry run says why each looked-stale instance is kept.
    let human = run_doctor(&["scan", "--http-addr", &a.http_addr(), "--color", "never"], &[]);
    assert!(human.stdout.contains("kept by the prune contract"), "{}", human.stdout);
    assert!(human.stdout.contains("co-bare-1 on co-bare"), "{}", human.stdout);
    assert_eq!(dump(&a, None), before, "a dry run changes nothing");

    let (run, json) = scan(&["--http-addr", &a.http_addr(), "--prune", "--yes", "--grace", "0s"], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    assert_eq!((json["prune"]["removed"].as_u64(), json["prune"]["planned"].as_u64()), (Some(1), Some(1)));
    removed_exactly(&before, &dump(&a, None), &[("co-crit", "co-crit-1")]);
}

/// The doctor inside `script`, so its standard input, output and error are a terminal.
struct Terminal {
    child: Child,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Terminal {
    fn start(args: &[&str]) -> Terminal {
        Terminal::shell(args, "")
    }

    /// `tail` is appended to the shell command line (e.g. `| cat` to pipe standard output only).
    fn shell(args: &[&str], tail: &str) -> Terminal {
        let mut cmd = env!("CARGO_BIN_EXE_consul-doctor").to_string();
        for a in args {
            cmd.push_str(&format!(" '{a}'"));
        }
        cmd.push_str(tail);
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("CONSUL_") {
                c.env_remove(&k);
            }
        }
        let mut child = c.spawn().expect("script(1) from util-linux");
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal { child, rx, seen: Vec::new() }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).replace('\r', "")
    }

    /// Reads the terminal until `words` appear.
    fn wait_for(&mut self, words: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(chunk) = self.rx.recv_timeout(Duration::from_millis(200)) {
                self.seen.extend(chunk);
                if self.text().contains(words) {
                    return self.text();
                }
            }
        }
        panic!("{words:?} never appeared on the terminal: {}", self.text());
    }

    /// Types `text`, waits for the end, returns (exit code, everything the terminal showed).
    fn answer(mut self, text: &str) -> (i32, String) {
        self.child.stdin.as_mut().unwrap().write_all(text.as_bytes()).unwrap();
        self.child.stdin.as_mut().unwrap().flush().unwrap();
        let status = self.child.wait().unwrap();
        while let Ok(chunk) = self.rx.recv_timeout(Duration::from_millis(500)) {
            self.seen.extend(chunk);
        }
        (status.code().unwrap_or(-1), self.text())
    }
}

#[test]
fn two_prunes_at_once_and_a_question_answered_after_the_catalog_changed() {
    let a = settled(start("prune-race", Spec { dev: true, ..Spec::default() }, true));
    for (node, id, addr) in
        [("race-a", "race-1", "127.0.0.61"), ("race-b", "race-2", "127.0.0.62"), ("race-c", "race-3", "127.0.0.63")]
    {
        catalog_register(
            &a,
            None,
            json!({"Node": node, "Address": addr, "Service": {"ID": id, "Service": "race", "Port": 7000},
                "Check": {"CheckID": format!("{id}-alive"), "Name": "alive", "Status": "critical", "ServiceID": id}}),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("second.json");
    let before = dump(&a, None);

    // The second prune asks its question; meanwhile the first removes race-1 and race-2 and
    // race-3 comes back (its check passes again). The answer "y" comes after all that.
    let mut second = Terminal::start(&[
        "scan",
        "--http-addr",
        &a.http_addr(),
        "--service",
        "race",
        "--prune",
        "--grace",
        "0s",
        "--format",
        "json",
        "-o",
        &out.display().to_string(),
    ]);
    let question = second.wait_for("[y/N]");
    assert!(question.contains("will deregister 3 instance(s)"), "{question}");
    catalog_register(
        &a,
        None,
        json!({"Node": "race-c", "Address": "127.0.0.63", "Service": {"ID": "race-3", "Service": "race", "Port": 7000},
            "Check": {"CheckID": "race-3-alive", "Name": "alive", "Status": "passing", "ServiceID": "race-3"}}),
    );
    let (run, first) =
        scan(&["--http-addr", &a.http_addr(), "--service", "race", "--prune", "--yes", "--grace", "0s"], &[]);
    assert_eq!(run.code, 0, "{first:#}");
    assert_eq!(first["prune"]["removed"], 2, "{:#}", first["prune"]);
    let after_first = dump(&a, None);
    let (code, shown) = second.answer("y\n");
    assert_eq!(code, 0, "{shown}");
    let second: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(second["prune"]["mode"], "prune");
    assert_eq!(second["prune"]["removed"], 0, "{:#}", second["prune"]);
    for id in ["race-1", "race-2"] {
        let a = action(&second, id);
        assert_eq!(a["outcome"], "skipped", "{a:#}");
        assert!(a["detail"].as_str().unwrap().contains("already gone"), "{a:#}");
    }
    let r3 = action(&second, "race-3");
    assert_eq!(r3["outcome"], "skipped", "{r3:#}");
    assert!(r3["detail"].as_str().unwrap().contains("is passing"), "{r3:#}");
    assert_eq!(dump(&a, None), after_first, "the second prune removed nothing");
    let changed: BTreeSet<String> = before.symmetric_difference(&after_first).cloned().collect();
    let expected: BTreeSet<String> = lines_of(&before, "race-a", "race-1")
        .into_iter()
        .chain(lines_of(&before, "race-b", "race-2"))
        .cloned()
        .chain([
            "check race-c \"race-3-alive\" \"race-3\" \"critical\"".to_string(),
            "check race-c \"race-3-alive\" \"race-3\" \"passing\"".to_string(),
        ])
        .collect();
    assert_eq!(changed, expected);

    // Answering "n": nothing deregistered, and the report does not tell to run --prune again.
    catalog_register(
        &a,
        None,
        json!({"Node": "race-c", "Address": "127.0.0.63", "Service": {"ID": "race-3", "Service": "race", "Port": 7000},
            "Check": {"CheckID": "race-3-alive", "Name": "alive", "Status": "critical", "ServiceID": "race-3"}}),
    );
    let before = dump(&a, None);
    let mut third =
        Terminal::start(&["scan", "--http-addr", &a.http_addr(), "--service", "race", "--prune", "--color", "never"]);
    assert!(third.wait_for("[y/N]").contains("race-3"));
    let (code, shown) = third.answer("n\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("not confirmed, nothing deregistered"), "{shown}");
    assert!(!shown.contains("run again with --prune"), "{shown}");
    assert_eq!(dump(&a, None), before, "nothing deregistered after n");

    // Standard output piped (--format json | jq): standard input and error are still a terminal,
    // so the question is asked, not refused with "--yes when standard input is not a terminal".
    let mut piped = Terminal::shell(
        &["scan", "--http-addr", &a.http_addr(), "--service", "race", "--prune", "--format", "json"],
        " | cat",
    );
    let asked = piped.wait_for("[y/N]");
    assert!(!asked.contains("--yes"), "{asked}");
    let (code, shown) = piped.answer("n\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("\"mode\": \"declined\""), "{shown}");
    assert_eq!(dump(&a, None), before, "nothing deregistered after n");

    // An answer given after --deadline has passed: the time at the question is the operator's,
    // the deregistrations get their own --deadline (and are still re-checked first).
    let late = dir.path().join("late.json");
    let mut slow = Terminal::start(&[
        "scan",
        "--http-addr",
        &a.http_addr(),
        "--service",
        "race",
        "--prune",
        "--grace",
        "0s",
        "--deadline",
        "2s",
        "--format",
        "json",
        "-o",
        &late.display().to_string(),
    ]);
    slow.wait_for("[y/N]");
    std::thread::sleep(Duration::from_secs(3));
    let (code, shown) = slow.answer("y\n");
    assert_eq!(code, 0, "{shown}");
    let late: Value = serde_json::from_str(&std::fs::read_to_string(&late).unwrap()).unwrap();
    assert_eq!(action(&late, "race-3")["outcome"], "removed", "{:#}", late["prune"]);
    removed_exactly(&before, &dump(&a, None), &[("race-c", "race-3")]);
}

#[test]
fn a_token_that_may_deregister_only_some_instances() {
    // An agent of its own: the whole catalog is compared, so no other test may write to it.
    let a = &start("prune-acl", Spec { dev: true, acl_master: Some(MASTER_TOKEN.into()), ..Spec::default() }, true);
    let master = a.master_token.as_deref();
    wait_until(
        Duration::from_secs(30),
        || a.get(&format!("/v1/catalog/node/{}", a.name), master).1.contains("consul-network-segment"),
        "the agent's own node synced",
    );
    for (node, id, service) in [("aclp-a", "aclp-a-1", "aclprune-a"), ("aclp-b", "aclp-b-1", "aclprune-b")] {
        catalog_register(
            a,
            master,
            json!({"Node": node, "Address": "127.0.0.71", "Service": {"ID": id, "Service": service, "Port": 7000},
                "Check": {"CheckID": format!("{id}-alive"), "Name": "alive", "Status": "critical", "ServiceID": id}}),
        );
    }
    let (_, secret) = a.acl_token(
        "prune-some",
        "service_prefix \"\" { policy = \"read\" }\nnode_prefix \"\" { policy = \"read\" }\nagent_prefix \"\" { policy = \"read\" }\nservice \"aclprune-a\" { policy = \"write\" }",
        "",
    );
    let before = dump(a, master);
    let (run, json) = scan(
        &[
            "--http-addr",
            &a.http_addr(),
            "--token",
            &secret,
            "--service",
            "aclprune-a",
            "--service",
            "aclprune-b",
            "--prune",
            "--yes",
            "--grace",
            "0s",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "{json:#}");
    assert_eq!(json["scanned"]["complete"], true, "{json:#}");
    assert_eq!(action(&json, "aclp-a-1")["outcome"], "removed", "{:#}", json["prune"]);
    let b = action(&json, "aclp-b-1");
    assert_eq!(b["outcome"], "failed", "{b:#}");
    assert!(b["detail"].as_str().unwrap().starts_with("permission denied"), "{b:#}");
    let failed: Vec<&Value> = json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "SCN-014").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["service_id"], "aclp-b-1");
    assert!(!run.stdout.contains(&secret));
    removed_exactly(&before, &dump(a, master), &[("aclp-a", "aclp-a-1")]);
}

/// The write is one conditional transaction: the plan's own `/v1/txn` body, sent by hand after
/// the instance's check turned passing, is refused whole by the real agent (409, "index is
/// stale") and deletes nothing; sent as planned, it deletes exactly the instance and its checks.
#[test]
fn the_write_is_refused_whole_when_the_instance_changed_after_the_plan() {
    let a = &settled(start("prune-txn", Spec { dev: true, ..Spec::default() }, true));
    let register = |status: &str| {
        catalog_register(
            a,
            None,
            json!({"Node": "txn-node", "Address": "127.0.0.72",
                "Service": {"ID": "txn-1", "Service": "txnsvc", "Port": 7100},
                "Checks": [{"CheckID": "txn-1-a", "Name": "a", "Status": status, "ServiceID": "txn-1"},
                           {"CheckID": "txn-1-b", "Name": "b", "Status": "critical", "ServiceID": "txn-1"}]}),
        )
    };
    register("critical");
    let planned = || {
        let (_, json) = scan(&["--http-addr", &a.http_addr(), "--service", "txnsvc"], &[]);
        action(&json, "txn-1")["request"].clone()
    };
    let request = planned();
    assert_eq!(request["path"], "/v1/txn", "{request:#}");
    assert_eq!(request["body"].as_array().unwrap().len(), 3, "two checks, then the service: {request:#}");
    // The first check turns passing after the plan: its ModifyIndex moves.
    register("passing");
    let before = dump(a, None);
    let (st, text) = a.put("/v1/txn", None, &request["body"].to_string());
    assert_eq!(st, 409, "{text}");
    assert!(text.contains("index is stale"), "{text}");
    assert_eq!(dump(a, None), before, "a refused transaction deletes nothing");
    // Critical again: a fresh plan's transaction goes through and deletes exactly the instance.
    register("critical");
    let request = planned();
    let before = dump(a, None);
    let (st, text) = a.put("/v1/txn", None, &request["body"].to_string());
    assert_eq!(st, 200, "{text}");
    removed_exactly(&before, &dump(a, None), &[("txn-node", "txn-1")]);
}
