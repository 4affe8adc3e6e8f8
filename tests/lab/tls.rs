use crate::common::*;

fn ca(a: &Agent) -> String {
    a.file("consul-agent-ca.pem").display().to_string()
}

/// The agent's CA and a valid client certificate, with this server name.
fn check_with_client_cert(a: &Agent, server_name: &str) -> (Run, serde_json::Value) {
    let (cert, key) = cli_cert(a);
    check_json(
        &[
            "--http-addr",
            &a.https_addr(),
            "--ca-file",
            &ca(a),
            "--client-cert",
            &cert,
            "--client-key",
            &key,
            "--tls-server-name",
            server_name,
        ],
        &[],
    )
}

fn cli_cert(a: &Agent) -> (String, String) {
    (a.file("dc1-cli-consul-0.pem").display().to_string(), a.file("dc1-cli-consul-0-key.pem").display().to_string())
}

#[test]
fn https_without_ca_is_an_unknown_authority() {
    let a = tls();
    let (run, json) = check_json(&["--http-addr", &a.https_addr()], &[]);
    assert_root(&run, &json, "TLS-001", &["api", "leader", "acl", "version"]);
    assert!(result(&json, "tls.handshake")["fix"].as_str().unwrap().contains("CONSUL_CACERT"));
}

#[test]
fn https_with_ca_but_no_client_certificate_under_verify_incoming() {
    let a = tls();
    let (run, json) = check_json(&["--http-addr", &a.https_addr(), "--ca-file", &ca(a)], &[]);
    assert_root(&run, &json, "TLS-004", &["api", "leader", "acl", "version"]);
}

#[test]
fn https_with_ca_and_client_certificate_passes() {
    let a = tls();
    let (cert, key) = cli_cert(a);
    let env = [("CONSUL_CACERT", ca(a)), ("CONSUL_CLIENT_CERT", cert), ("CONSUL_CLIENT_KEY", key)];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (run, json) = check_json(&["--http-addr", &a.https_addr()], &env);
    assert_eq!(run.code, 0, "{json:#}");
    let h = result(&json, "tls.handshake");
    assert!(
        h["message"].as_str().unwrap().contains("TLSv1_3") || h["message"].as_str().unwrap().contains("TLSv1_2"),
        "{h:#}"
    );
    let input = json["inputs"].as_array().unwrap().iter().find(|i| i["name"] == "ca_file").unwrap();
    assert_eq!(input["source"], "env CONSUL_CACERT");
}

#[test]
fn wrong_tls_server_name_is_a_name_mismatch() {
    let (run, json) = check_with_client_cert(tls(), "consul.example.com");
    assert_root(&run, &json, "TLS-002", &["api"]);
    let msg = result(&json, "tls.handshake")["message"].as_str().unwrap();
    assert!(msg.contains("server.dc1.consul"), "lists the names the certificate holds: {msg}");
}

#[test]
fn right_tls_server_name_passes() {
    let (run, json) = check_with_client_cert(tls(), "server.dc1.consul:8501");
    assert_eq!(run.code, 0, "{json:#}");
}

#[test]
fn plain_http_to_the_https_port() {
    let a = tls();
    let (run, json) = check_json(&["--http-addr", &format!("127.0.0.1:{}", a.https.unwrap())], &[]);
    assert_root(&run, &json, "TLS-006", &["api", "leader"]);
    assert!(result(&json, "tls.handshake")["fix"].as_str().unwrap().contains("https://127.0.0.1:"));
}

#[test]
fn https_to_the_plain_http_port() {
    let a = tls();
    let (run, json) = check_json(&["--http-addr", &format!("https://127.0.0.1:{}", a.http), "--ca-file", &ca(a)], &[]);
    assert_root(&run, &json, "TLS-005", &["api"]);
    // CONSUL_HTTP_SSL=true turns an http:// address into HTTPS, with the same result.
    let (run, json) =
        check_json(&["--http-addr", &format!("http://127.0.0.1:{}", a.http)], &[("CONSUL_HTTP_SSL", "true")]);
    assert_root(&run, &json, "TLS-005", &["api"]);
}

#[test]
fn verification_disabled_still_needs_the_client_certificate() {
    let a = tls();
    let (run, json) = check_json(&["--http-addr", &a.https_addr()], &[("CONSUL_HTTP_SSL_VERIFY", "false")]);
    assert_eq!(codes(&json), vec!["CFG-010", "TLS-004"], "{json:#}");
    assert_eq!(run.code, 1);
}

#[test]
fn client_certificate_from_another_ca_is_rejected() {
    let a = tls();
    // A second CA and CLI certificate that the agent does not trust.
    let other = tempfile::tempdir().unwrap();
    for args in [&["tls", "ca", "create"][..], &["tls", "cert", "create", "-cli"]] {
        let out = std::process::Command::new(consul_bin()).args(args).current_dir(other.path()).output().unwrap();
        assert!(out.status.success());
    }
    let cert = other.path().join("dc1-cli-consul-0.pem");
    let key = other.path().join("dc1-cli-consul-0-key.pem");
    let (run, json) = check_json(
        &[
            "--http-addr",
            &a.https_addr(),
            "--ca-file",
            &ca(a),
            "--client-cert",
            cert.to_str().unwrap(),
            "--client-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert_root(&run, &json, "TLS-009", &["api"]);
}

/// A `consul` command in a fix reaches the agent the doctor reached: over HTTPS, with the same
/// CA, client certificate, server name and datacenter.
#[test]
fn fix_commands_carry_the_tls_settings_and_datacenter() {
    let a = tls();
    let (cert, key) = cli_cert(a);
    let (_, json) = check_json(
        &[
            "-http-addr",
            &a.https_addr(),
            "-ca-file",
            &ca(a),
            "-client-cert",
            &cert,
            "-client-key",
            &key,
            "-tls-server-name=localhost",
            "-datacenter=elsewhere",
        ],
        &[],
    );
    assert_eq!(root_cause(&json).as_deref(), Some("API-006"), "{json:#}");
    let fix = result(&json, "api.datacenter")["fix"].as_str().unwrap().to_string();
    let prefix = format!(
        "CONSUL_HTTP_ADDR={} CONSUL_CACERT={} CONSUL_CLIENT_CERT={cert} CONSUL_CLIENT_KEY={key} CONSUL_TLS_SERVER_NAME=localhost consul join -wan",
        a.https_addr(),
        ca(a)
    );
    assert!(fix.contains(&prefix), "{fix}");
}
