//! The README's example reports are real runs against lab agents: this test runs each scenario,
//! replaces what differs from run to run (ports, node names, AccessorIDs, timings, temporary
//! paths) with the values the README shows, and compares. `UPDATE_README=1 cargo test --test lab
//! readme` rewrites the blocks.

use std::path::Path;

use crate::common::fault::{FaultServer, Route};
use crate::common::*;

struct Example {
    /// The marker `<!-- example: NAME -->` in front of the block.
    name: &'static str,
    text: String,
}

fn normalise(out: &str, pairs: &[(String, &str)]) -> String {
    let mut text = out.to_string();
    for (from, to) in pairs {
        text = text.replace(from.as_str(), to);
    }
    // Timings: "in 12 ms".
    let mut result = String::new();
    for line in text.lines() {
        let l = match line.rfind(" in ") {
            Some(i) if line.ends_with(" ms") && line[i + 4..line.len() - 3].chars().all(|c| c.is_ascii_digit()) => {
                format!("{} in 3 ms", &line[..i])
            }
            _ => line.to_string(),
        };
        result.push_str(&l);
        result.push('\n');
    }
    result
}

fn healthy() -> Example {
    let a = start("readme", Spec { dev: true, ..Spec::default() }, true);
    let app = FaultServer::http(vec![Route::text("/health", 200, "ok")]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("deploy")).unwrap();
    std::fs::write(
        dir.path().join("deploy/web.json"),
        format!(
            r#"{{"service": {{"name": "web", "id": "web-1", "port": {port}, "check": {{"http": "http://127.0.0.1:{port}/health", "interval": "10s", "deregister_critical_service_after": "10m"}}}}}}"#,
            port = app.addr.port()
        ),
    )
    .unwrap();
    let mut cmd = doctor_cmd();
    cmd.current_dir(dir.path())
        .args(["check", "--color", "never", "--service-file", "deploy/web.json"])
        .env("CONSUL_HTTP_ADDR", a.http_addr());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let pairs = [
        (a.http_addr(), "127.0.0.1:8500"),
        (format!("127.0.0.1:{}", a.server_port), "127.0.0.1:8300"),
        (format!("127.0.0.1:{}", app.addr.port()), "127.0.0.1:8080"),
        (a.name.clone(), "consul-1"),
    ];
    Example { name: "healthy", text: normalise(&String::from_utf8_lossy(&out.stdout), &pairs) }
}

/// What a newcomer sees first: `consul-doctor check` against a local dev agent, no service given.
fn first_run() -> Example {
    let a = start("readme-first", Spec { dev: true, ..Spec::default() }, true);
    let out = run_doctor(&["check", "--color", "never"], &[("CONSUL_HTTP_ADDR", &a.http_addr())]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let pairs = [
        (a.http_addr(), "127.0.0.1:8500"),
        (format!("127.0.0.1:{}", a.server_port), "127.0.0.1:8300"),
        (a.name.clone(), "my-laptop"),
    ];
    Example { name: "first-run", text: normalise(&out.stdout, &pairs) }
}

fn acl_denied() -> Example {
    let a = acl();
    let (accessor, secret) = a.acl_token("readme-deploy", r#"service "payments" { policy = "write" }"#, "");
    let app = FaultServer::http(vec![Route::text("/health", 200, "ok")]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("deploy")).unwrap();
    std::fs::write(
        dir.path().join("deploy/web.json"),
        format!(
            r#"{{"service": {{"name": "web", "id": "web-1", "port": 8080, "check": {{"http": "http://127.0.0.1:{}/health", "interval": "10s", "deregister_critical_service_after": "10m"}}}}}}"#,
            app.addr.port()
        ),
    )
    .unwrap();
    let token = dir.path().join("deploy.token");
    std::fs::write(&token, &secret).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = doctor_cmd();
    cmd.current_dir(dir.path())
        .args(["check", "--color", "never", "--service-file", "deploy/web.json"])
        .env("CONSUL_HTTP_ADDR", a.http_addr())
        .env("CONSUL_HTTP_TOKEN_FILE", &token);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!stdout.contains(&secret));
    let pairs = [
        (a.http_addr(), "127.0.0.1:28500"),
        (format!("127.0.0.1:{}", a.server_port), "127.0.0.1:28300"),
        (token.display().to_string(), "/etc/consul/deploy.token"),
        (accessor, "9bb813ee-6369-7003-920d-2104ac4aa765"),
        (format!("127.0.0.1:{}", app.addr.port()), "127.0.0.1:18080"),
    ];
    Example { name: "acl-denied", text: normalise(&stdout, &pairs) }
}

fn refused() -> Example {
    let port = free_port();
    let out = run_doctor(&["check", "--color", "never", "--http-addr", &format!("127.0.0.1:{port}")], &[]);
    assert_eq!(out.code, 1);
    let pairs = [
        (format!("127.0.0.1:{port}"), "127.0.0.1:8501"),
        (format!(":{port}'"), ":8501'"),
        (format!("port {port}"), "port 8501"),
    ];
    Example { name: "refused", text: normalise(&out.stdout, &pairs) }
}

fn mesh_no_proxy() -> Example {
    let a = start("readme-mesh", Spec { dev: true, grpc: true, ..Spec::default() }, true);
    let sidecar_port = free_port();
    let bind = free_port();
    let service = format!(
        r#"{{"service": {{"name": "web", "id": "web-1", "port": 9090, "connect": {{"sidecar_service": {{"port": {sidecar_port}, "proxy": {{"upstreams": [{{"destination_name": "api", "local_bind_port": {bind}}}]}}}}}}}}}}"#
    );
    let (st, body) = a.put(
        "/v1/agent/service/register",
        None,
        &serde_json::from_str::<serde_json::Value>(&service).unwrap()["service"].to_string(),
    );
    assert_eq!(st, 200, "{body}");
    let api =
        format!(r#"{{"name": "api", "port": 9091, "connect": {{"sidecar_service": {{"port": {}}}}}}}"#, free_port());
    assert_eq!(a.put("/v1/agent/service/register", None, &api).0, 200);
    let sidecar = "web-1-sidecar-proxy";
    wait_until(
        std::time::Duration::from_secs(30),
        || {
            let (_, checks) = a.get("/v1/agent/checks", None);
            let checks: serde_json::Value = serde_json::from_str(&checks).unwrap_or_default();
            let refused = checks.as_object().is_some_and(|m| {
                m.values().any(|c| {
                    c["ServiceID"] == sidecar && c["Output"].as_str().is_some_and(|o| o.contains("connection refused"))
                })
            });
            let (_, cat) = a.get("/v1/catalog/service/web-sidecar-proxy", None);
            refused && cat.contains(sidecar) && a.get("/v1/catalog/service/api", None).1.contains("9091")
        },
        "the sidecar registered, synced and its listener check run",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("deploy")).unwrap();
    std::fs::write(dir.path().join("deploy/web.json"), &service).unwrap();
    let mut cmd = doctor_cmd();
    cmd.current_dir(dir.path())
        .args(["check", "--color", "never", "--service-file", "deploy/web.json", "--from", "api"])
        .env("CONSUL_HTTP_ADDR", a.http_addr());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let pairs = [
        (a.http_addr(), "127.0.0.1:8500"),
        (format!("127.0.0.1:{}", a.server_port), "127.0.0.1:8300"),
        (format!("127.0.0.1:{}", a.grpc.unwrap()), "127.0.0.1:8502"),
        (format!("127.0.0.1:{}", a.dns), "127.0.0.1:8600"),
        (format!("127.0.0.1:{sidecar_port}"), "127.0.0.1:21000"),
        (format!("port {sidecar_port}"), "port 21000"),
        (format!("127.0.0.1:{bind}"), "127.0.0.1:9191"),
        (a.name.clone(), "consul-1"),
    ];
    Example { name: "mesh-no-proxy", text: normalise(&String::from_utf8_lossy(&out.stdout), &pairs) }
}

#[test]
fn readme_examples_are_real_runs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let mut readme = std::fs::read_to_string(&path).unwrap();
    let update = std::env::var_os("UPDATE_README").is_some();
    let mut stale = Vec::new();
    for ex in [first_run(), healthy(), acl_denied(), refused(), mesh_no_proxy()] {
        let marker = format!("<!-- example: {} -->\n```text\n", ex.name);
        let start = readme.find(&marker).unwrap_or_else(|| panic!("README has no {marker:?}")) + marker.len();
        let end = start + readme[start..].find("```\n").expect("closing fence");
        if readme[start..end] != ex.text {
            if update {
                readme.replace_range(start..end, &ex.text);
            } else {
                stale.push(format!("--- README ({})\n{}\n--- real run\n{}", ex.name, &readme[start..end], ex.text));
            }
        }
    }
    if update {
        std::fs::write(&path, readme).unwrap();
    }
    assert!(
        stale.is_empty(),
        "README examples are stale (UPDATE_README=1 cargo test --test lab readme rewrites them):\n{}",
        stale.join("\n")
    );
}
