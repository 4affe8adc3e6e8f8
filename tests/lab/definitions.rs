//! Service definitions with each kind of error, judged by the doctor and, where the definition is
//! an API body, confirmed against the real 1.8.7 agent's own answer.

use serde_json::Value;

use crate::common::*;

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Runs the doctor with a definition against the shared dev agent.
fn check_definition(name: &str, text: &str) -> (Run, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir, name, text);
    check_json(&["--http-addr", &dev().http_addr(), "--service-file", &path], &[])
}

/// What the real agent answers when the same body is sent to /v1/agent/service/register.
fn agent_verdict(body: &str) -> (u16, String) {
    let a = dev();
    let (status, text) = a.put("/v1/agent/service/register", None, body);
    if status == 200 {
        // Accepted: remove it again so other tests see a clean agent.
        let v: Value = serde_json::from_str(body).unwrap();
        let id = v.get("ID").or(v.get("Name")).and_then(Value::as_str).unwrap_or("");
        a.put(&format!("/v1/agent/service/deregister/{id}"), None, "");
    }
    (status, text)
}

/// The definition fails with `code`, the connection stages are untouched, and the service's own
/// checks are skipped with `blocked_by` = code.
fn assert_definition_fails(run: &Run, json: &Value, code: &str) {
    assert_eq!(root_cause(json).as_deref(), Some(code), "{json:#}");
    assert_eq!(run.code, 1);
    assert_eq!(result(json, "api.agent")["status"], "pass", "a broken definition must not block the connection checks");
    assert_eq!(result(json, "leader.status")["status"], "pass");
    for id in ["health.probe", "acl.service", "duplicates.local_id", "sync.catalog", "version.definition"] {
        let r = result(json, id);
        if r["status"] == "skip" && r["blocked_by"].is_string() {
            assert_eq!(r["blocked_by"], code, "{id}: {r:#}");
        }
    }
    assert_eq!(result(json, "health.probe")["blocked_by"], code);
}

#[test]
fn json_syntax_error_with_position() {
    let (run, json) = check_definition("web.json", "{\"service\": {\"name\": \"web\",\n  \"port\": 80,\n}}");
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-014"));
    assert_eq!(run.code, 1);
    let msg = result(&json, "config.service")["message"].as_str().unwrap();
    assert!(msg.contains("line 3, column 1"), "{msg}");
    assert_eq!(result(&json, "leader.status")["status"], "pass");
}

#[test]
fn hcl_syntax_error_with_position() {
    let (_, json) = check_definition(
        "web.hcl",
        "service {\n  name = \"web\"\n  port = 80\n  check {\n    interval = 10s\n  }\n}\n",
    );
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-014"));
    assert!(result(&json, "config.service")["message"].as_str().unwrap().contains("line 5"));
}

#[test]
fn valid_hcl_with_repeated_checks_blocks() {
    let hcl = "service {\n  name = \"hcl-ok\"\n  id = \"hcl-ok-1\"\n  port = 18081\n  checks {\n    ttl = \"30s\"\n    deregister_critical_service_after = \"10m\"\n  }\n  checks {\n    ttl = \"60s\"\n  }\n}\n";
    let (run, json) = check_definition("svc.hcl", hcl);
    assert_eq!(run.code, 0, "{json:#}");
    assert!(result(&json, "config.service")["message"].as_str().unwrap().contains("2 checks"));
}

#[test]
fn missing_name_is_rejected_like_consul() {
    let body = r#"{"ID": "noname-1", "Port": 80}"#;
    assert_eq!(agent_verdict(body), (400, "Missing service name".into()));
    let (run, json) = check_definition("noname.json", body);
    assert_definition_fails(&run, &json, "CFG-015");
}

#[test]
fn duration_without_unit_is_rejected_like_consul() {
    let body = r#"{"Name": "dur", "ID": "dur-1", "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "10", "DeregisterCriticalServiceAfter": "5m"}}"#;
    let (st, text) = agent_verdict(body);
    assert_eq!(st, 400);
    assert!(text.contains("time: missing unit in duration \"10\""), "{text}");
    let (run, json) = check_definition("dur.json", body);
    assert_definition_fails(&run, &json, "CFG-016");
    assert!(result(&json, "config.service")["message"]
        .as_str()
        .unwrap()
        .contains("time: missing unit in duration \"10\""));
}

#[test]
fn check_combinations_consul_rejects() {
    for (body, consul_says) in [
        (r#"{"Name": "cmb", "ID": "cmb-1", "Check": {"HTTP": "http://127.0.0.1:1/"}}"#, "Interval must be > 0"),
        (
            r#"{"Name": "cmb", "ID": "cmb-1", "Check": {"TTL": "5s", "Interval": "5s"}}"#,
            "Interval and TTL cannot both be specified",
        ),
        (r#"{"Name": "cmb", "ID": "cmb-1", "Check": {"Notes": "no type"}}"#, "TTL must be > 0 for TTL checks"),
        (r#"{"Name": "cmb", "ID": "cmb-1", "Check": {"TTL": "5s", "Status": "ok"}}"#, "Status for checks must"),
    ] {
        let (st, text) = agent_verdict(body);
        assert_eq!(st, 400, "{body}");
        assert!(text.contains(consul_says), "{text}");
        let (run, json) = check_definition("cmb.json", body);
        assert_definition_fails(&run, &json, "CFG-017");
        assert!(result(&json, "config.service")["message"].as_str().unwrap().contains(consul_says), "{json:#}");
    }
}

#[test]
fn wildcard_address_meta_weights_unknown_field_and_types() {
    for (body, code, consul_says) in [
        (r#"{"Name": "x", "ID": "x-1", "Address": "0.0.0.0"}"#, "CFG-020", "Invalid service address"),
        (r#"{"Name": "x", "ID": "x-1", "Meta": {"consul-owner": "me"}}"#, "CFG-024", "Invalid Service Meta"),
        (r#"{"Name": "x", "ID": "x-1", "Meta": {"bad key!": "v"}}"#, "CFG-024", "Key contains invalid characters"),
        (r#"{"Name": "x", "ID": "x-1", "Weights": {"Warning": 1}}"#, "CFG-029", "Passing must be greater than 0"),
        (r#"{"Name": "x", "ID": "x-1", "Foo": true}"#, "CFG-025", "unknown field \"Foo\""),
        (
            r#"{"Name": "x", "ID": "x-1", "Check": {"check_id": "c", "TTL": "5s"}}"#,
            "CFG-025",
            "unknown field \"check_id\"",
        ),
        (
            r#"{"Name": "x", "ID": "x-1", "Port": "80"}"#,
            "CFG-027",
            "cannot unmarshal string into Go struct field .Port of type int",
        ),
        (r#"{"Name": "x", "ID": "x-1", "Tags": "a"}"#, "CFG-027", "cannot unmarshal string"),
    ] {
        let (st, text) = agent_verdict(body);
        assert_eq!(st, 400, "{body}: {text}");
        assert!(text.contains(consul_says), "agent: {text}");
        let (run, json) = check_definition("x.json", body);
        assert_definition_fails(&run, &json, code);
        assert!(result(&json, "config.service")["message"].as_str().unwrap().contains(consul_says), "{json:#}");
    }
}

#[test]
fn pitfalls_consul_accepts_silently() {
    for (body, code) in [
        (r#"{"Name": "silent", "ID": "silent-1", "Port": 70000}"#, "CFG-019"),
        (r#"{"Name": "silent", "ID": "silent-1", "Port": -1}"#, "CFG-019"),
        (r#"{"Name": "my_silent.svc", "ID": "silent-1"}"#, "CFG-021"),
        (r#"{"Name": "silent", "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "5m"}}"#, "CFG-022"),
        (r#"{"Name": "silent", "ID": "silent-1", "Check": {"TTL": "30s"}}"#, "CFG-023"),
        (
            r#"{"Name": "silent", "ID": "silent-1", "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "10s"}}"#,
            "CFG-037",
        ),
        (r#"{"Name": "silent", "ID": "silent-1", "Address": "http://10.0.0.5", "Port": 8080}"#, "CFG-038"),
        (
            r#"{"Name": "silent", "ID": "silent-1", "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": 10, "DeregisterCriticalServiceAfter": "5m"}}"#,
            "CFG-026",
        ),
        (
            r#"{"Name": "silent", "ID": "silent-1", "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "5s", "Timeout": "10s", "DeregisterCriticalServiceAfter": "5m"}}"#,
            "CFG-018",
        ),
        (
            r#"{"Name": "silent", "ID": "silent-1", "Check": {"HTTP": "127.0.0.1:1/health", "Interval": "5s", "DeregisterCriticalServiceAfter": "5m"}}"#,
            "CFG-030",
        ),
    ] {
        let (st, text) = agent_verdict(body);
        assert_eq!(st, 200, "Consul 1.8.7 accepts {body} ({text})");
        let (_, json) = check_definition("silent.json", body);
        assert!(codes(&json).contains(&code.to_string()), "{body}: {:?}", codes(&json));
    }
}

#[test]
fn deregister_below_the_minimum_is_a_warning_of_its_own() {
    let a = dev();
    let body = r#"{"Name": "dereg-short", "ID": "dereg-short-1", "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "10s"}}"#;
    let (st, text) = a.put("/v1/agent/service/register", None, body);
    assert_eq!(st, 200, "{text}");
    wait_until(
        std::time::Duration::from_secs(10),
        || a.log().contains("check has deregister interval below minimum: check=service:dereg-short-1"),
        "the agent's own warning",
    );
    a.put("/v1/agent/service/deregister/dereg-short-1", None, "");
    let (run, json) = check_definition("short.json", body);
    let r = result(&json, "config.service");
    assert_eq!((r["code"].as_str(), r["status"].as_str()), (Some("CFG-037"), Some("warn")), "{json:#}");
    assert!(!codes(&json).contains(&"CFG-023".to_string()), "one code, one meaning: {json:#}");
    assert_eq!(run.code, 0);
}

#[test]
fn body_shapes_consul_decodes_strictly() {
    // /v1/agent/services' shape sent back to register, and a configuration file's wrapper.
    for (body, consul_says) in [
        (
            r#"{"ID": "shape-1", "Service": "shape", "Port": 80}"#,
            r#"Request decode failed: json: unknown field "Service""#,
        ),
        (
            r#"{"Name": "shape", "Service": "shape", "Port": 80}"#,
            r#"Request decode failed: json: unknown field "Service""#,
        ),
    ] {
        let (st, text) = agent_verdict(body);
        assert_eq!((st, text.trim()), (400, consul_says), "{body}");
        let (run, json) = check_definition("shape.json", body);
        assert_definition_fails(&run, &json, "CFG-025");
        let msg = result(&json, "config.service")["message"].as_str().unwrap().to_string();
        assert!(msg.contains(consul_says) && msg.contains("Name"), "{msg}");
    }
    let wrapped = r#"{"service": {"Name": "shape", "ID": "shape-1", "Port": 80}}"#;
    let (st, text) = agent_verdict(wrapped);
    assert_eq!((st, text.trim()), (400, r#"Request decode failed: json: unknown field "service""#));
    let (_, json) = check_definition("wrapped.json", wrapped);
    let notes: Vec<&Value> = results(&json, "config.service").into_iter().filter(|r| r["code"] == "CFG-039").collect();
    assert_eq!(notes.len(), 1, "{json:#}");
    assert!(notes[0]["message"].as_str().unwrap().contains(text.trim()), "{:#}", notes[0]);
}

#[test]
fn address_with_a_url_scheme_is_accepted_and_breaks_consumers() {
    let a = dev();
    let body = r#"{"Name": "url-addr", "ID": "url-addr-1", "Address": "http://10.0.0.5", "Port": 8080}"#;
    let (st, text) = a.put("/v1/agent/service/register", None, body);
    assert_eq!(st, 200, "Consul 1.8.7 accepts it: {text}");
    let (_, catalog) = a.get("/v1/catalog/service/url-addr", None);
    a.put("/v1/agent/service/deregister/url-addr-1", None, "");
    assert!(catalog.contains(r#""ServiceAddress": "http://10.0.0.5""#), "handed out as written: {catalog}");
    let (run, json) = check_definition("url.json", body);
    let r = result(&json, "config.service");
    assert_eq!(r["code"], "CFG-038", "{json:#}");
    assert!(r["fix"].as_str().unwrap().contains(r#""Address": "10.0.0.5", "Port": 8080"#), "{r:#}");
    assert_eq!(run.code, 1);
}

#[test]
fn script_check_is_refused_over_http_unless_enabled() {
    let body = r#"{"Name": "scr", "ID": "scr-1", "Check": {"Args": ["/bin/true"], "Interval": "10s", "DeregisterCriticalServiceAfter": "5m"}}"#;
    let (st, text) = agent_verdict(body);
    assert_eq!(st, 500);
    assert!(text.contains("Scripts are disabled"), "{text}");
    let (_, json) = check_definition("scr.json", body);
    assert!(codes(&json).contains(&"CFG-028".to_string()), "{json:#}");
}

#[test]
fn two_services_with_one_id() {
    let (run, json) =
        check_definition("two.json", r#"{"services": [{"name": "twin", "port": 1}, {"name": "twin", "port": 2}]}"#);
    assert!(codes(&json).contains(&"CFG-032".to_string()), "{json:#}");
    assert_eq!(run.code, 1);
}

#[test]
fn field_newer_than_the_agent() {
    let body = r#"{"Name": "newer", "ID": "newer-1", "Check": {"TTL": "30s", "TLSServerName": "web.internal", "DeregisterCriticalServiceAfter": "5m"}}"#;
    let (st, text) = agent_verdict(body);
    assert_eq!(st, 400);
    assert!(text.contains("unknown field \"TLSServerName\""), "{text}");
    let (run, json) = check_definition("newer.json", body);
    assert_eq!(root_cause(&json).as_deref(), Some("VER-005"), "{json:#}");
    assert_eq!(run.code, 1);
    let msg = result(&json, "version.definition")["message"].as_str().unwrap();
    assert!(msg.contains("added in 1.10.0"), "{msg}");
    // The Enterprise-only Namespace field is rejected by every OSS agent: the api stage names it
    // (API-007, with the agent's own 400 text) before anything is asked in that namespace.
    let (st, text) = agent_verdict(r#"{"Name": "ns", "ID": "ns-1", "Namespace": "team-a"}"#);
    assert_eq!(st, 400);
    let (_, json) = check_definition("ns.json", r#"{"Name": "ns", "ID": "ns-1", "Namespace": "team-a"}"#);
    assert_eq!(root_cause(&json).as_deref(), Some("API-007"), "{json:#}");
    let finding = json["checks"].as_array().unwrap().iter().find(|c| c["code"] == "API-007").unwrap();
    assert!(
        finding["message"].as_str().unwrap().contains(text.trim().trim_start_matches("Request decode failed: ")),
        "{text} {finding:#}"
    );
}

#[test]
fn go_mod_version_is_reported_beside_the_servers() {
    let dir = tempfile::tempdir().unwrap();
    let gomod = file(
        &dir,
        "go.mod",
        "module example.com/web\n\ngo 1.22\n\nrequire (\n\tgithub.com/hashicorp/consul/api v1.29.1\n)\n",
    );
    let (run, json) = check_json(&["--http-addr", &dev().http_addr(), "--go-mod", &gomod], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    let msg = result(&json, "version.go_mod")["message"].as_str().unwrap();
    assert!(msg.contains("v1.29.1") && msg.contains("servers 1.8.7"), "{msg}");
    let (run, json) = check_json(&["--http-addr", &dev().http_addr(), "--go-mod", "/nonexistent/go.mod"], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-031"));
    assert_eq!(run.code, 1);
    assert_eq!(result(&json, "leader.status")["status"], "pass");
}

#[test]
fn a_configuration_directory_is_read_like_the_agent_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    file(&dir, "agent.hcl", "datacenter = \"dc1\"\ndata_dir = \"/opt/consul\"\nserver = false\n");
    file(&dir, "web.json", r#"{"service": {"name": "dirweb", "id": "dirweb-1", "port": 18091}}"#);
    file(&dir, "db.hcl", "services {\n  name = \"dirdb\"\n  id = \"dirdb-1\"\n  port = 5432\n  check {\n    tcp = \"127.0.0.1:5432\"\n  }\n}\n");
    file(&dir, "README.txt", "not a configuration file");
    let (run, json) =
        check_json(&["--http-addr", &dev().http_addr(), "--service-file", dir.path().to_str().unwrap()], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-017"), "the tcp check has no interval: {json:#}");
    assert_eq!(run.code, 1);
    let labels: Vec<String> =
        results(&json, "config.service").iter().map(|r| r["message"].as_str().unwrap().to_string()).collect();
    assert!(labels.iter().any(|m| m.contains("service \"dirweb\" (web.json #1)")), "{labels:?}");
    assert!(labels.iter().any(|m| m.contains("service \"dirdb\" (db.hcl #1)")), "{labels:?}");
    assert!(!labels.iter().any(|m| m.contains("agent.hcl")), "agent settings are not a service: {labels:?}");
    // The valid service still gets its own checks; the broken one is skipped with its code.
    let dups = results(&json, "duplicates.local_id");
    assert!(
        dups.iter().any(|r| r["status"] == "pass" && r["message"].as_str().unwrap().contains("dirweb")),
        "{dups:#?}"
    );
    assert!(dups.iter().any(|r| r["blocked_by"] == "CFG-017"), "{dups:#?}");
}

#[test]
fn numeric_timeout_is_nanoseconds_and_never_passes() {
    let s = crate::common::fault::FaultServer::http(vec![crate::common::fault::Route::text("/health", 200, "ok")]);
    let body = format!(
        r#"{{"Name": "nanos", "ID": "nanos-1", "Check": {{"HTTP": "http://{}/health", "Interval": "1s", "Timeout": 5, "DeregisterCriticalServiceAfter": "5m"}}}}"#,
        s.addr
    );
    // The real agent accepts it, and its check then fails on a healthy endpoint.
    let a = dev();
    let (st, _) = a.put("/v1/agent/service/register", None, &body);
    assert_eq!(st, 200);
    wait_until(
        std::time::Duration::from_secs(15),
        || {
            a.get("/v1/agent/checks", None).1.contains("deadline exceeded")
                || a.get("/v1/agent/checks", None).1.contains("timeout")
        },
        "the agent's check to time out",
    );
    a.put("/v1/agent/service/deregister/nanos-1", None, "");
    let (run, json) = check_definition("nanos.json", &body);
    assert_definition_fails(&run, &json, "CFG-033");
}

// --- definitions judged against the live agent -----------------------------------------------

#[test]
fn script_check_on_an_agent_with_scripts_disabled() {
    // The dev agent runs no scripts: the agent's own answer, and the doctor's verdict from
    // /v1/agent/self before anything is registered.
    let body = r#"{"Name": "scripted", "ID": "scripted-1", "Port": 7430, "Check": {"Args": ["/bin/true"], "Interval": "10s", "DeregisterCriticalServiceAfter": "10m"}}"#;
    let (status, text) = agent_verdict(body);
    assert_eq!(status, 500);
    let consul_words =
        "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true";
    assert_eq!(text.trim(), consul_words);
    let (run, json) = check_definition("scripted.json", body);
    assert_eq!(root_cause(&json).as_deref(), Some("VER-007"), "{json:#}");
    assert_eq!(run.code, 1);
    let r = result(&json, "version.definition");
    assert!(r["message"].as_str().unwrap().contains(consul_words), "{r:#}");
    assert_eq!(r["evidence"]["enable_script_checks"], "false");
    // Before the agent is known, the same script check is only advice.
    let c = results(&json, "config.service");
    assert!(c.iter().any(|r| r["code"] == "CFG-028" && r["status"] == "note"), "{json:#}");
}

#[test]
fn script_check_on_an_agent_that_allows_local_scripts_only() {
    let a = start(
        "localscripts",
        Spec { dev: true, extra_hcl: "enable_local_script_checks = true\n".into(), ..Spec::default() },
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let hcl = file(&dir, "web.hcl", "service {\n  name = \"scripted\"\n  id = \"scripted-1\"\n  port = 7431\n  check {\n    args = [\"/bin/true\"]\n    interval = \"10s\"\n  }\n}\n");
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &hcl], &[]);
    let r = result(&json, "version.definition");
    assert_eq!(r["status"], "pass", "a configuration file works with enable_local_script_checks: {json:#}");
    assert!(r["message"].as_str().unwrap().contains("configuration directory"), "{r:#}");
    // ...while the API form of the same check is refused by that agent.
    let api = file(
        &dir,
        "web.json",
        r#"{"Name": "scripted", "ID": "scripted-1", "Port": 7431, "Check": {"Args": ["/bin/true"], "Interval": "10s"}}"#,
    );
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--service-file", &api], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("VER-007"), "{json:#}");
    let (st, text) = a.put(
        "/v1/agent/service/register",
        None,
        r#"{"Name": "scripted", "Port": 7431, "Check": {"Args": ["/bin/true"], "Interval": "10s"}}"#,
    );
    assert_eq!((st, text.contains("Scripts are disabled on this agent from remote calls")), (500, true));
}

#[test]
fn consul_services_register_drops_args() {
    let dir = tempfile::tempdir().unwrap();
    let hcl = "service {\n  name = \"cliargs\"\n  port = 7432\n  check {\n    args = [\"/bin/true\"]\n    interval = \"10s\"\n  }\n}\n";
    let path = file(&dir, "cliargs.hcl", hcl);
    // What the real 1.8.7 CLI does with this file.
    let out = std::process::Command::new(consul_bin())
        .args(["services", "register", &format!("-http-addr={}", dev().http_addr()), &path])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("TTL must be > 0 for TTL checks"), "{said}");
    let (_, json) = check_json(&["--http-addr", &dev().http_addr(), "--service-file", &path], &[]);
    let c = results(&json, "config.service");
    let found = c.iter().find(|r| r["code"] == "CFG-036").unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(found["status"], "warn");
    assert!(found["message"].as_str().unwrap().contains("TTL must be > 0 for TTL checks"));
}

#[test]
fn check_with_both_http_and_tcp_keeps_only_http() {
    let body = r#"{"Name": "twotypes", "ID": "twotypes-1", "Port": 7433, "Check": {"CheckID": "twotypes-chk", "HTTP": "http://127.0.0.1:7433/h", "TCP": "127.0.0.1:7433", "Interval": "10s", "DeregisterCriticalServiceAfter": "10m"}}"#;
    // The real agent accepts it and registers an HTTP check only.
    let a = dev();
    let (st, text) = a.put("/v1/agent/service/register", None, body);
    assert_eq!(st, 200, "{text}");
    let checks: Value = serde_json::from_str(&a.get("/v1/agent/checks", None).1).unwrap();
    assert_eq!(checks["twotypes-chk"]["Type"], "http", "{checks:#}");
    a.put("/v1/agent/service/deregister/twotypes-1", None, "");
    let (run, json) = check_definition("twotypes.json", body);
    assert_definition_fails(&run, &json, "CFG-035");
    let msg = result(&json, "config.service")["message"].as_str().unwrap().to_string();
    assert!(msg.contains("http and tcp") && msg.contains("ignores tcp"), "{msg}");
}

#[test]
fn http_check_urls_go_cannot_parse_fail_with_consul_words() {
    let a = dev();
    for (n, url, words) in [
        (1, "http://${HOST}:8080/health", r#"invalid character "{" in host name"#),
        (2, "http://localhost:abc/health", r#"invalid port ":abc" after host"#),
    ] {
        let body = format!(
            r#"{{"Name": "badurl{n}", "ID": "badurl{n}-1", "Port": 7434, "Check": {{"CheckID": "badurl{n}-chk", "HTTP": "{url}", "Interval": "1s", "DeregisterCriticalServiceAfter": "10m"}}}}"#
        );
        // Consul accepts it; the check's output is Go's parse error.
        let (st, text) = a.put("/v1/agent/service/register", None, &body);
        assert_eq!(st, 200, "{text}");
        let mut output = String::new();
        wait_until(
            std::time::Duration::from_secs(10),
            || {
                let checks: Value = serde_json::from_str(&a.get("/v1/agent/checks", None).1).unwrap();
                output = checks[format!("badurl{n}-chk")]["Output"].as_str().unwrap_or("").to_string();
                !output.is_empty()
            },
            "the check to run",
        );
        a.put(&format!("/v1/agent/service/deregister/badurl{n}-1"), None, "");
        let (run, json) = check_definition("badurl.json", &body);
        assert_definition_fails(&run, &json, "CFG-030");
        let msg = result(&json, "config.service")["message"].as_str().unwrap().to_string();
        assert!(msg.contains(words), "{msg}");
        assert!(msg.contains(&output), "the doctor quotes Consul's own output {output:?}: {msg}");
    }
}

/// Every row of the facts table that judges 1.8.7 is the real agent's answer: each key is PUT
/// in a registration body, and a decode rejection (400 `Request decode failed`) must be exactly
/// the rows the table says 1.8.7 rejects.
#[test]
fn facts_table_matches_the_real_1_8_7_agent_for_every_key() {
    use consul_doctor::consul_facts::{accepts, ConsulVersion, Object, Support, API_FIELDS};
    let v187 = ConsulVersion::parse("1.8.7").unwrap();
    let value = |key: &str| -> Value {
        let k = key.to_ascii_lowercase();
        if k.ends_with("tls") || k.contains("tls_") || k == "disableredirects" || k == "tls_skip_verify" {
            Value::Bool(true)
        } else if k.contains("before") {
            Value::from(1)
        } else if k.contains("args") {
            serde_json::json!(["/bin/true"])
        } else if k.contains("deregister") {
            Value::from("10m")
        } else if k == "tagged_addresses" || k == "locality" {
            serde_json::json!({})
        } else if k == "ports" {
            serde_json::json!([])
        } else if k == "enable_tag_override" {
            Value::Bool(true)
        } else {
            Value::from("x")
        }
    };
    let mut checked = 0;
    for fact in API_FIELDS {
        let expected = accepts(fact, &v187);
        if expected == Support::NotJudged {
            continue;
        }
        let mut body = serde_json::json!({"Name": "facts-probe"});
        match fact.object {
            Object::Service => body[fact.key] = value(fact.key),
            Object::Check => {
                let mut check = serde_json::json!({"TTL": "10s"});
                check[fact.key] = value(fact.key);
                body["Check"] = check;
            }
        }
        let (status, text) = agent_verdict(&body.to_string());
        let rejected_by_decoder = status == 400 && text.contains("Request decode failed");
        assert_eq!(
            rejected_by_decoder,
            expected == Support::No,
            "{} ({:?}): the table says {expected:?} for 1.8.7, the agent answered {status} {text:?}",
            fact.key,
            fact.object
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} rows judged 1.8.7");
}

/// The doctor's own verdict on an API body with the keys live 1.8.7 rejects (success_before_passing,
/// failures_before_critical, alias_service, alias_node, grpc_use_tls), confirmed by the agent.
#[test]
fn snake_keys_1_8_7_rejects_are_findings() {
    for key in ["success_before_passing", "failures_before_critical", "alias_service", "alias_node", "grpc_use_tls"] {
        let value = if key.contains("before") {
            "1".to_string()
        } else if key == "grpc_use_tls" {
            "true".into()
        } else {
            "\"x\"".into()
        };
        let body =
            format!("{{\"Name\": \"snake\", \"Port\": 80, \"Check\": {{\"TTL\": \"10s\", \"{key}\": {value}}}}}");
        let (status, text) = agent_verdict(&body);
        assert_eq!(status, 400, "{key}: {text}");
        let (_run, json) = check_definition("snake.json", &body);
        let codes = codes(&json);
        assert!(
            codes.iter().any(|c| c.starts_with("CFG-") || c.starts_with("VER-")),
            "{key}: the doctor passed a body 1.8.7 rejects: {json:#}"
        );
    }
}
