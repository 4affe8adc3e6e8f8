//! The real-Consul test lab and helpers to run the doctor binary.
//!
//! Agents run on loopback only, on free ports, with their own data directories, and are killed
//! when their handle drops. Agents shared between tests live in statics; they are spawned from
//! one long-lived "lab" thread with PR_SET_PDEATHSIG, so they die with the test process even
//! though statics are never dropped. A missing Consul binary is a test failure, never a skip.
#![allow(dead_code)]

pub mod fakeconsul;
pub mod fakedns;
pub mod fault;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Consul binary

/// `$CONSUL_BIN`, a `consul` on PATH, or the project cache filled by scripts/install-consul.sh.
pub fn consul_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CONSUL_BIN").map(PathBuf::from) {
            if p.is_file() {
                return p;
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let c = dir.join("consul");
                if c.is_file() {
                    return c;
                }
            }
        }
        let cached = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/consul/usr/bin/consul");
        if cached.is_file() {
            return cached;
        }
        // Fetch it the documented way (shared package, else Debian bullseye's from this machine's
        // own mirror); a failure here fails the tests: the real-Consul tests never skip.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-consul.sh");
        let out = Command::new("bash").arg(&script).output().expect("run scripts/install-consul.sh");
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            out.status.success() && path.is_file(),
            "no Consul binary and scripts/install-consul.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    })
    .clone()
}

// ---------------------------------------------------------------------------------------------
// Ports

/// A port free for TCP and UDP on 127.0.0.1, never handed out twice in this process.
pub fn free_port() -> u16 {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let used = USED.get_or_init(|| Mutex::new(HashSet::new()));
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = l.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if used.lock().unwrap().insert(port) {
            return port;
        }
    }
    panic!("no free port found");
}

// ---------------------------------------------------------------------------------------------
// Spawning agents that die with the test process

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawn_in_lab(cmd: Command) -> Child {
    static LAB: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = LAB.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("consul-lab".into())
            .spawn(move || {
                // This thread lives as long as the process: PR_SET_PDEATHSIG fires when the
                // spawning thread exits, so children spawned here die only with the process.
                for (mut cmd, reply) in rx {
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("lab thread");
        Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    tx.lock().unwrap().send((cmd, rtx)).expect("lab thread alive");
    rrx.recv().expect("lab reply").expect("spawn consul")
}

/// A running agent; killed on drop.
pub struct Agent {
    child: Mutex<Option<Child>>,
    pub name: String,
    pub dir: tempfile::TempDir,
    pub http: u16,
    pub https: Option<u16>,
    pub dns: u16,
    pub serf_lan: u16,
    pub server_port: u16,
    pub master_token: Option<String>,
    /// The gRPC (xDS) port, when the spec opened one.
    pub grpc: Option<u16>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Agent {
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http)
    }

    pub fn https_addr(&self) -> String {
        format!("https://127.0.0.1:{}", self.https.expect("agent has https"))
    }

    pub fn dns_addr(&self) -> String {
        format!("127.0.0.1:{}", self.dns)
    }

    pub fn serf_addr(&self) -> String {
        format!("127.0.0.1:{}", self.serf_lan)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.file("agent.log")).unwrap_or_default()
    }

    /// Plain-HTTP GET with an optional token; returns (status, body).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        http_request("GET", self.http, path, token, None)
    }

    pub fn put(&self, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        http_request("PUT", self.http, path, token, Some(body))
    }

    /// Creates a policy with `rules` and a token carrying it, through the master token; `extra`
    /// is appended to the token JSON (e.g. `,"ExpirationTTL":"2h"`). Returns (accessor, secret).
    pub fn acl_token(&self, name: &str, rules: &str, extra: &str) -> (String, String) {
        let master = self.master_token.as_deref().expect("an ACL agent");
        let policy = serde_json::json!({ "Name": format!("{name}-policy"), "Rules": rules });
        let (st, body) = self.put("/v1/acl/policy", Some(master), &policy.to_string());
        assert_eq!(st, 200, "policy create: {body}");
        let token = format!(r#"{{"Description":"{name}","Policies":[{{"Name":"{name}-policy"}}]{extra}}}"#);
        let (st, body) = self.put("/v1/acl/token", Some(master), &token);
        assert_eq!(st, 200, "token create: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        (v["AccessorID"].as_str().unwrap().into(), v["SecretID"].as_str().unwrap().into())
    }

    /// Sends a signal to the agent process (SIGSTOP/SIGCONT pause and resume it, as a GC pause
    /// or a short partition would).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = self.child.lock().unwrap().as_ref() {
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Kills the agent now (for scenarios that need it gone).
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What kind of agent to start.
#[derive(Default, Clone)]
pub struct Spec {
    /// `-dev` mode: a single in-memory server that elects itself at once.
    pub dev: bool,
    pub server: bool,
    pub bootstrap_expect: Option<u32>,
    /// ACLs on with default deny, and this master token.
    pub acl_master: Option<String>,
    /// HTTPS listener with certificates from `consul tls`, verify_incoming_https on.
    pub tls: bool,
    /// Serf LAN address to join.
    pub join: Option<String>,
    pub extra_hcl: String,
    /// `ports { dns = -1 }`: no DNS interface.
    pub no_dns: bool,
    /// With `acl_master`: no `acl.tokens.agent` (the agent runs with the anonymous token).
    pub no_agent_token: bool,
    /// The node name instead of `<name>-<http port>` (for name clashes).
    pub node_name: Option<String>,
    /// Open a gRPC (xDS) port for Envoy (otherwise `ports { grpc = -1 }`).
    pub grpc: bool,
}

/// Starts an agent and waits until its HTTP API answers (and, with `wait_leader`, has a leader).
pub fn start(name: &str, spec: Spec, wait_leader: bool) -> Agent {
    let dir = tempfile::Builder::new().prefix("consul-lab-").tempdir().expect("tempdir");
    let (http, dns, serf_lan, serf_wan, server_port) =
        (free_port(), free_port(), free_port(), free_port(), free_port());
    let https = spec.tls.then(free_port);
    let grpc = spec.grpc.then(free_port);
    let node = spec.node_name.clone().unwrap_or_else(|| format!("{name}-{http}"));
    let mut hcl = format!(
        r#"node_name = "{node}"
datacenter = "dc1"
bind_addr = "127.0.0.1"
client_addr = "127.0.0.1"
disable_update_check = true
disable_host_node_id = true
log_level = "debug"
ports {{
  http = {http}
  dns = {dns_port}
  serf_lan = {serf_lan}
  serf_wan = {serf_wan}
  server = {server_port}
  grpc = {grpc_port}
  https = {https}
}}
"#,
        grpc_port = grpc.map(|p| p.to_string()).unwrap_or_else(|| "-1".into()),
        https = https.map(|p| p.to_string()).unwrap_or_else(|| "-1".into()),
        dns_port = if spec.no_dns { "-1".to_string() } else { dns.to_string() },
    );
    if !spec.dev {
        hcl.push_str(&format!("data_dir = \"{}\"\nserver = {}\n", dir.path().join("data").display(), spec.server));
    }
    if let Some(n) = spec.bootstrap_expect {
        hcl.push_str(&format!("bootstrap_expect = {n}\n"));
    }
    if let Some(master) = &spec.acl_master {
        let agent = if spec.no_agent_token { String::new() } else { format!("    agent = \"{master}\"\n") };
        hcl.push_str(&format!(
            "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  down_policy = \"extend-cache\"\n  tokens {{\n    master = \"{master}\"\n{agent}  }}\n}}\n"
        ));
    }
    if spec.tls {
        make_certs(dir.path());
        let d = dir.path().display();
        hcl.push_str(&format!(
            "ca_file = \"{d}/consul-agent-ca.pem\"\ncert_file = \"{d}/dc1-server-consul-0.pem\"\nkey_file = \"{d}/dc1-server-consul-0-key.pem\"\nverify_incoming_https = true\n"
        ));
    }
    if let Some(j) = &spec.join {
        hcl.push_str(&format!("retry_join = [\"{j}\"]\nretry_interval = \"1s\"\n"));
    }
    hcl.push_str(&spec.extra_hcl);
    let config = dir.path().join("agent.hcl");
    std::fs::write(&config, hcl).expect("write config");
    let log = std::fs::File::create(dir.path().join("agent.log")).expect("log file");
    let mut cmd = Command::new(consul_bin());
    cmd.arg("agent");
    if spec.dev {
        cmd.arg("-dev");
    }
    cmd.arg(format!("-config-file={}", config.display()))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let child = spawn_in_lab(cmd);
    let agent = Agent {
        child: Mutex::new(Some(child)),
        name: node,
        dir,
        http,
        https,
        dns,
        serf_lan,
        server_port,
        master_token: spec.acl_master.clone(),
        grpc,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http_request("GET", agent.http, "/v1/status/leader", None, None);
        let up = status != 0;
        let led = status == 200 && body.trim() != "\"\"" && !body.trim().is_empty();
        if up && (!wait_leader || led) {
            break;
        }
        if Instant::now() > deadline {
            panic!("agent {} did not get ready (status {status}, body {body:?}); log:\n{}", agent.name, agent.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let (Some(master), true) = (&spec.acl_master, wait_leader) {
        wait_until(
            Duration::from_secs(30),
            || agent.get("/v1/acl/token/self", Some(master)).0 == 200,
            "ACL system ready",
        );
    }
    agent
}

fn make_certs(dir: &Path) {
    for args in [
        &["tls", "ca", "create"][..],
        &["tls", "cert", "create", "-server", "-dc", "dc1"],
        &["tls", "cert", "create", "-cli", "-dc", "dc1"],
    ] {
        let out = Command::new(consul_bin()).args(args).current_dir(dir).output().expect("consul tls");
        assert!(out.status.success(), "consul {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + limit;
    while !f() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Minimal HTTP/1.1 client for lab set-up (status 0 when the agent does not answer).
pub fn http_request(method: &str, port: u16, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(2))
    else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let body = body.unwrap_or("");
    let tok = token.map(|t| format!("X-Consul-Token: {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{tok}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    let body = if text.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&body) } else { body };
    (status, body)
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared agents (tests that use these must not change them in ways others can see)

pub const MASTER_TOKEN: &str = "8f3a9d2c-5b1e-4c7a-9e6d-2a4b6c8d0e1f";

/// A dev-mode server with ACLs off.
pub fn dev() -> &'static Agent {
    static A: OnceLock<Agent> = OnceLock::new();
    A.get_or_init(|| start("dev", Spec { dev: true, ..Spec::default() }, true))
}

/// A dev-mode server with ACLs on, default deny.
pub fn acl() -> &'static Agent {
    static A: OnceLock<Agent> = OnceLock::new();
    A.get_or_init(|| start("acl", Spec { dev: true, acl_master: Some(MASTER_TOKEN.into()), ..Spec::default() }, true))
}

/// A dev-mode server with an HTTPS listener that requires client certificates.
pub fn tls() -> &'static Agent {
    static A: OnceLock<Agent> = OnceLock::new();
    A.get_or_init(|| start("tls", Spec { dev: true, tls: true, ..Spec::default() }, true))
}

// ---------------------------------------------------------------------------------------------
// Running the doctor

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

/// The doctor binary with a clean environment (no CONSUL_* or proxy variables from the host).
pub fn doctor_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_consul-doctor"));
    for (k, _) in std::env::vars() {
        let upper = k.to_ascii_uppercase();
        if upper.starts_with("CONSUL_")
            || upper.ends_with("_PROXY")
            || upper == "NO_COLOR"
            || upper.starts_with("CLICOLOR")
        {
            cmd.env_remove(&k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

pub fn run_doctor(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = doctor_cmd();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let out = cmd.output().expect("run consul-doctor");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// `consul-doctor check --format json <args>`.
pub fn check_json(args: &[&str], env: &[(&str, &str)]) -> (Run, Value) {
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let run = run_doctor(&all, env);
    let json = run.json();
    (run, json)
}

/// The first failing check's code (the root cause).
pub fn root_cause(json: &Value) -> Option<String> {
    json["root_cause"]["code"].as_str().map(str::to_string)
}

/// Every result with this check id.
pub fn results<'a>(json: &'a Value, id: &str) -> Vec<&'a Value> {
    json["checks"].as_array().unwrap().iter().filter(|c| c["id"] == id).collect()
}

/// The single result with this check id (panics when absent).
pub fn result<'a>(json: &'a Value, id: &str) -> &'a Value {
    results(json, id).into_iter().next().unwrap_or_else(|| panic!("no result {id} in {json:#}"))
}

/// Codes of all warn/fail results, in order.
pub fn codes(json: &Value) -> Vec<String> {
    json["checks"].as_array().unwrap().iter().filter_map(|c| c["code"].as_str().map(str::to_string)).collect()
}

/// Asserts the run failed with `code` as its root cause, exit 1, and that every check of the
/// given later stages is skipped with `blocked_by` = code.
pub fn assert_root(run: &Run, json: &Value, code: &str, blocked_stages: &[&str]) {
    assert_eq!(root_cause(json).as_deref(), Some(code), "root cause; report:\n{json:#}");
    assert_eq!(run.code, 1, "exit code; stderr: {}", run.stderr);
    let fails: Vec<_> = json["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "fail").collect();
    assert_eq!(fails.len(), 1, "exactly one failure expected (no cascade), got {fails:#?}");
    for stage in blocked_stages {
        let in_stage: Vec<_> = json["checks"].as_array().unwrap().iter().filter(|c| c["stage"] == *stage).collect();
        assert!(!in_stage.is_empty(), "stage {stage} missing");
        for c in in_stage {
            assert_eq!(c["status"], "skip", "{stage} check {} should be skipped: {c:#}", c["id"]);
            assert_eq!(c["blocked_by"], code, "{stage} check {} blocked_by", c["id"]);
        }
    }
}

impl Agent {
    /// Starts the agent again with the same configuration and ports (a dev agent comes back
    /// empty, as after a real restart), and waits until its HTTP API answers.
    pub fn restart(&self) {
        self.kill();
        let config = self.file("agent.hcl");
        let dev = !std::fs::read_to_string(&config).unwrap_or_default().contains("data_dir");
        let log = std::fs::OpenOptions::new().append(true).open(self.file("agent.log")).expect("log file");
        let mut cmd = Command::new(consul_bin());
        cmd.arg("agent");
        if dev {
            cmd.arg("-dev");
        }
        cmd.arg(format!("-config-file={}", config.display()))
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        *self.child.lock().unwrap() = Some(spawn_in_lab(cmd));
        wait_until(Duration::from_secs(60), || self.get("/v1/status/leader", None).0 == 200, "agent restart");
    }
}
