use crate::common::*;

fn assert_secret_absent(secret: &str, args: &[&str], env: &[(&str, &str)]) {
    for (format, verbose) in [("human", false), ("json", false), ("junit", false), ("human", true), ("json", true)] {
        let mut all = vec!["check", "--format", format];
        if verbose {
            all.push("--verbose");
        }
        all.extend_from_slice(args);
        let run = run_doctor(&all, env);
        assert!(!run.stdout.contains(secret), "{format} stdout leaks the token secret:\n{}", run.stdout);
        assert!(!run.stderr.contains(secret), "{format} stderr leaks the token secret:\n{}", run.stderr);
        if verbose {
            assert!(run.stderr.contains("debug: GET "), "debug logging is on: {}", run.stderr);
        }
    }
}

#[test]
fn no_token_under_default_deny() {
    let a = acl();
    let (run, json) = check_json(&["--http-addr", &a.http_addr()], &[]);
    assert_root(&run, &json, "ACL-001", &[]);
    // agent/self is denied to the anonymous token: not judged (never a green tick), and the
    // stages after it still run.
    let api = result(&json, "api.agent");
    assert_eq!(api["status"], "skip");
    assert_eq!(api["not_judged"], true);
    assert!(api["message"].as_str().unwrap().contains("403"), "{api:#}");
    assert!(result(&json, "acl.token")["fix"].as_str().unwrap().contains("consul acl token create"));
    // Members are filtered by ACLs: the version check says what it could not verify.
    let v = result(&json, "version.members");
    assert_eq!(v["status"], "skip");
    assert_eq!(v["not_judged"], true);
    assert!(v["message"].as_str().unwrap().contains("node:read"), "{v:#}");
}

#[test]
fn unknown_token_is_not_found() {
    let a = acl();
    let bogus = "0c7d6e2f-1111-2222-3333-444455556666";
    let (run, json) = check_json(&["--http-addr", &a.http_addr()], &[("CONSUL_HTTP_TOKEN", bogus)]);
    assert_root(&run, &json, "ACL-002", &[]);
    let msg = result(&json, "acl.token")["message"].as_str().unwrap();
    assert!(msg.contains("env CONSUL_HTTP_TOKEN"), "names the token's source: {msg}");
    assert_secret_absent(bogus, &["--http-addr", &a.http_addr()], &[("CONSUL_HTTP_TOKEN", bogus)]);
}

#[test]
fn deleted_token_is_not_found() {
    let a = acl();
    let (accessor, secret) = a.acl_token("deleted", r#"service "web" { policy = "write" }"#, "");
    let master = a.master_token.as_deref().unwrap();
    let (st, body) = http_request("DELETE", a.http, &format!("/v1/acl/token/{accessor}"), Some(master), None);
    assert_eq!(st, 200, "{body}");
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--token", &secret], &[]);
    assert_root(&run, &json, "ACL-002", &[]);
    assert!(!run.stdout.contains(&secret));
}

#[test]
fn management_token_passes_and_shows_only_the_accessor() {
    let a = acl();
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--token", MASTER_TOKEN], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    let t = result(&json, "acl.token");
    assert!(t["message"].as_str().unwrap().contains("AccessorID"), "{t:#}");
    assert!(t["message"].as_str().unwrap().contains("global-management"), "{t:#}");
    assert_secret_absent(MASTER_TOKEN, &["--http-addr", &a.http_addr(), "--token", MASTER_TOKEN], &[]);
}

#[test]
fn token_read_from_token_file_env() {
    let a = acl();
    let (accessor, secret) =
        a.acl_token("from-file", r#"service "web" { policy = "write" } node_prefix "" { policy = "read" }"#, "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = [("CONSUL_HTTP_TOKEN_FILE", path.to_str().unwrap())];
    let (run, json) = check_json(&["--http-addr", &a.http_addr()], &env);
    assert_eq!(run.code, 0, "{json:#}");
    let t = result(&json, "acl.token");
    assert!(t["message"].as_str().unwrap().contains(&accessor), "{t:#}");
    assert!(t["message"].as_str().unwrap().contains("token file"), "{t:#}");
    assert_eq!(result(&json, "config.token")["status"], "pass");
    assert_secret_absent(&secret, &["--http-addr", &a.http_addr()], &env);
}

#[test]
fn token_file_overrides_flag_token_like_consul() {
    let a = acl();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "0c7d6e2f-aaaa-bbbb-cccc-444455556666").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The flag token is valid, but the (bogus) file token wins, exactly as in the Consul CLI.
    let (run, json) = check_json(
        &["--http-addr", &a.http_addr(), "--token", MASTER_TOKEN],
        &[("CONSUL_HTTP_TOKEN_FILE", path.to_str().unwrap())],
    );
    assert_eq!(codes(&json), vec!["CFG-005", "ACL-002"], "{json:#}");
    assert_eq!(run.code, 1);
    assert!(!run.stdout.contains(MASTER_TOKEN));
}

#[test]
fn token_expiring_within_a_day_warns() {
    let a = acl();
    let (_, secret) = a.acl_token("short-lived", r#"service "web" { policy = "write" }"#, r#","ExpirationTTL":"2h""#);
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--token", &secret], &[]);
    assert_eq!(codes(&json), vec!["ACL-004"], "{json:#}");
    assert_eq!(run.code, 0, "warnings alone exit 0");
    let strict = run_doctor(&["check", "--http-addr", &a.http_addr(), "--token", &secret, "--fail-on", "warn"], &[]);
    assert_eq!(strict.code, 1, "--fail-on warn makes warnings fail");
}

#[test]
fn token_without_agent_read_still_reaches_the_acl_verdict() {
    let a = acl();
    let (_, secret) = a.acl_token("svc-only", r#"service "web" { policy = "write" }"#, "");
    let (run, json) = check_json(&["--http-addr", &a.http_addr(), "--token", &secret], &[]);
    assert_eq!(run.code, 0, "{json:#}");
    assert!(result(&json, "api.agent")["message"].as_str().unwrap().contains("403"));
    assert_eq!(result(&json, "acl.token")["status"], "pass");
}

/// Every ACL scenario, in every output format, with and without debug logging: the secret of
/// the token in play never appears on stdout or stderr.
#[test]
fn token_secrets_never_leak_in_any_acl_scenario() {
    let a = acl();
    let dir = tempfile::tempdir().unwrap();
    let (_, expiring) =
        a.acl_token("leak-expiring", r#"service "leakweb" { policy = "write" }"#, r#","ExpirationTTL":"2h""#);
    let (_, lacking) = a.acl_token("leak-lacking", r#"service "other" { policy = "write" }"#, "");
    let (_, in_definition) = a.acl_token("leak-in-def", r#"service "leakweb" { policy = "write" }"#, "");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &lacking).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let plain = dir.path().join("plain.json");
    std::fs::write(&plain, r#"{"service": {"name": "leakweb", "id": "leakweb-1", "port": 7600}}"#).unwrap();
    let with_token = dir.path().join("with-token.json");
    std::fs::write(
        &with_token,
        format!(r#"{{"service": {{"name": "leakweb", "id": "leakweb-1", "port": 7600, "token": "{in_definition}"}}}}"#),
    )
    .unwrap();
    let bogus = "3f0c2b1a-9d8e-4c7b-a6f5-e4d3c2b1a098".to_string();
    let addr = a.http_addr();
    let plain_s = plain.to_str().unwrap();
    let with_token_s = with_token.to_str().unwrap();
    let tf = token_file.to_str().unwrap();
    // (name, arguments, environment, secrets that must not appear)
    type Scenario<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let scenarios: Vec<Scenario> = vec![
        (
            "unknown token (env)",
            vec!["--service-file", plain_s],
            vec![("CONSUL_HTTP_TOKEN", bogus.as_str())],
            vec![bogus.as_str()],
        ),
        (
            "management token (flag)",
            vec!["--token", MASTER_TOKEN, "--service-file", plain_s],
            vec![],
            vec![MASTER_TOKEN],
        ),
        (
            "expiring token",
            vec!["--token", expiring.as_str(), "--service-file", plain_s],
            vec![],
            vec![expiring.as_str()],
        ),
        (
            "token lacking write, world-readable token file",
            vec!["--service-file", plain_s],
            vec![("CONSUL_HTTP_TOKEN_FILE", tf)],
            vec![lacking.as_str()],
        ),
        (
            "token file overriding a flag token",
            vec!["--token", MASTER_TOKEN],
            vec![("CONSUL_HTTP_TOKEN_FILE", tf)],
            vec![lacking.as_str(), MASTER_TOKEN],
        ),
        (
            "token inside the service definition",
            vec!["--token", MASTER_TOKEN, "--service-file", with_token_s],
            vec![],
            vec![MASTER_TOKEN, in_definition.as_str()],
        ),
    ];
    for (name, args, env, secrets) in &scenarios {
        for format in ["human", "json", "junit"] {
            for verbose in [false, true] {
                let mut all = vec!["check", "--format", format, "--http-addr", addr.as_str()];
                all.extend(args.iter().copied());
                if verbose {
                    all.push("--verbose");
                }
                let run = run_doctor(&all, env);
                assert!(run.code == 0 || run.code == 1, "{name}/{format}: exit {} {}", run.code, run.stderr);
                for secret in secrets {
                    assert!(
                        !run.stdout.contains(secret),
                        "{name}/{format}/verbose={verbose}: stdout leaks a secret:\n{}",
                        run.stdout
                    );
                    assert!(
                        !run.stderr.contains(secret),
                        "{name}/{format}/verbose={verbose}: stderr leaks a secret:\n{}",
                        run.stderr
                    );
                }
            }
        }
    }
}

/// Every `consul` command in a fix can be pasted: it reaches the agent diagnosed (address and
/// datacenter as given), and names the token file, never the token.
#[test]
fn acl_fix_commands_carry_the_address_and_datacenter_never_the_token() {
    let a = acl();
    let (accessor, secret) = a.acl_token("paste-deploy", r#"service "payments" { policy = "write" }"#, "");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("deploy.token");
    std::fs::write(&token, &secret).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (run, json) = check_json(
        &["-http-addr", &a.http_addr(), "-datacenter=dc1", "-token-file", token.to_str().unwrap(), "-service", "web"],
        &[],
    );
    assert_eq!(root_cause(&json).as_deref(), Some("ACL-006"), "{json:#}");
    let fix = result(&json, "acl.service")["fix"].as_str().unwrap().to_string();
    let commands: Vec<&str> = fix.match_indices("consul acl ").map(|(i, _)| &fix[..i]).collect();
    assert_eq!(commands.len(), 2, "{fix}");
    for before in commands {
        assert!(
            before.ends_with(&format!("CONSUL_HTTP_ADDR={} ", a.http_addr())),
            "a command without the address: {fix}"
        );
    }
    assert!(fix.contains("consul acl policy create -datacenter=dc1 -name web-register"), "{fix}");
    assert!(fix.contains(&format!("consul acl token update -datacenter=dc1 -id {accessor}")), "{fix}");
    assert!(!run.stdout.contains(&secret) && !fix.contains(&secret));
}

/// wait and scan only read: without a token they are told about read access, never write.
#[test]
fn read_only_commands_without_a_token_get_read_only_advice() {
    let a = acl();
    let run = run_doctor(
        &["wait", "--format", "json", "--http-addr", &a.http_addr(), "--service", "web", "--deadline", "5s"],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["root_cause"]["code"], "ACL-001", "{json:#}");
    let acl_token = result(&json["diagnosis"], "acl.token");
    for text in [acl_token["message"].as_str().unwrap(), acl_token["fix"].as_str().unwrap()] {
        assert!(!text.contains("service:write") && !text.contains("-service-identity"), "write advice: {text}");
    }
    let fix = acl_token["fix"].as_str().unwrap();
    assert!(fix.contains(r#"service "web" { policy = "read" } node_prefix "" { policy = "read" }"#), "{fix}");
    assert!(fix.contains(&format!("CONSUL_HTTP_ADDR={} consul acl policy create", a.http_addr())), "{fix}");
    assert_eq!(fix.matches("CONSUL_HTTP_ADDR=").count(), 2, "one prefix per command: {fix}");

    let run = run_doctor(&["scan", "--format", "json", "--http-addr", &a.http_addr()], &[]);
    let json = run.json();
    let acl_token = result(&json, "acl.token");
    assert_eq!(acl_token["code"], "ACL-001", "{json:#}");
    let fix = acl_token["fix"].as_str().unwrap();
    assert!(fix.contains(r#"service_prefix "" { policy = "read" } node_prefix "" { policy = "read" }"#), "{fix}");
    assert!(!fix.contains("service:write") && !fix.contains("-service-identity"), "{fix}");
    // check registers, so its advice stays about writing.
    let (_, json) = check_json(&["--http-addr", &a.http_addr()], &[]);
    assert!(result(&json, "acl.token")["fix"].as_str().unwrap().contains("-service-identity"));
}

/// A token the cluster does not know gets no grant advice: no grant helps it.
#[test]
fn unknown_token_gets_no_grant_advice() {
    let a = acl();
    let bogus = "0c7d6e2f-aaaa-4bbb-8ccc-444455556666";
    let (_, json) = check_json(&["--http-addr", &a.http_addr(), "--token", bogus], &[]);
    assert_eq!(root_cause(&json).as_deref(), Some("ACL-002"), "{json:#}");
    let api = result(&json, "api.agent");
    assert!(api["message"].as_str().unwrap().contains("does not know the token"), "{api:#}");
    let text = serde_json::to_string(&json["checks"]).unwrap();
    assert!(
        !text.contains("agent_prefix") && !text.contains("agent:read"),
        "grant advice for an unknown token: {text}"
    );
    let human = run_doctor(&["check", "--color", "never", "--http-addr", &a.http_addr(), "--token", bogus], &[]);
    assert!(!human.stdout.contains("read-only grant") && !human.stdout.contains("agent_prefix"), "{}", human.stdout);
}

/// A least-privilege token is told once what the doctor could not see, with the smallest read
/// grant, instead of a grant suggestion on every check.
#[test]
fn least_privilege_token_is_told_once_what_the_doctor_could_not_see() {
    let a = acl();
    let (_, secret) = a.acl_token("least-priv", r#"service "web" { policy = "write" }"#, "");
    let run = run_doctor(
        &["check", "--color", "never", "--http-addr", &a.http_addr(), "--token", &secret, "--service", "web"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let grants: Vec<&str> = run.stdout.lines().filter(|l| l.contains("read-only grant")).collect();
    assert_eq!(grants.len(), 1, "{}", run.stdout);
    assert!(
        grants[0].contains(r#"agent_prefix "" { policy = "read" }"#) && grants[0].contains("api.agent"),
        "{}",
        grants[0]
    );
    assert!(!run.stdout.contains("to let the doctor see"), "per-check nudges: {}", run.stdout);
    assert_eq!(run.stdout.matches("agent_prefix").count(), 1, "{}", run.stdout);
}
