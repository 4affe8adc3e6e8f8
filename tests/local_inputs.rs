//! Local inputs the doctor does not control: device files, FIFOs without a writer, huge files,
//! huge values, a closed standard output. Each run must return promptly with a clear finding
//! (or exit status 2), never hang or grow without bound.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A port nothing listens on: the network stages stop at TCP-001 at once.
fn dead_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Waits for the child at most `limit` (killing it then, and failing the test).
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Run {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for consul-doctor") {
            let mut stdout = String::new();
            let mut stderr = String::new();
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut stdout);
            }
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            return Run { code: status.code().unwrap_or(-1), stdout, stderr, elapsed: start.elapsed() };
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: consul-doctor still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `check --format json` against a dead address with a short deadline, bounded in time. The
/// report is read into a file, so a huge report cannot fill the pipe and stall the child.
fn check_bounded(args: &[&str], what: &str) -> (Run, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let addr = dead_addr();
    let mut cmd = doctor_cmd();
    cmd.args(["check", "--format", "json", "--http-addr", &addr, "--timeout", "1s", "--deadline", "3s"]);
    cmd.args(args);
    cmd.stdout(std::fs::File::create(&out).unwrap()).stderr(Stdio::piped());
    let mut run = wait_bounded(cmd.spawn().expect("start consul-doctor"), Duration::from_secs(20), what);
    run.stdout = std::fs::read_to_string(&out).unwrap();
    let json = run.json();
    (run, json)
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

fn message<'a>(json: &'a serde_json::Value, id: &str) -> &'a str {
    result(json, id)["message"].as_str().unwrap()
}

#[test]
fn device_files_are_refused_not_read() {
    let (run, json) = check_bounded(&["--token-file", "/dev/zero"], "token file /dev/zero");
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-002"), "{json:#}");
    assert_eq!(run.code, 1);
    assert!(message(&json, "config.token").contains("a character device, not a regular file"), "{json:#}");

    let (run, json) = check_bounded(&["--service-file", "/dev/zero"], "service file /dev/zero");
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-014"), "{json:#}");
    assert_eq!(run.code, 1);

    let (_, json) = check_bounded(&["--ca-file", "/dev/zero"], "CA file /dev/zero");
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-006"), "{json:#}");
}

#[test]
fn a_fifo_without_writer_never_hangs_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    for (flag, code, id) in [
        ("--token-file", "CFG-002", "config.token"),
        ("--service-file", "CFG-014", "config.service"),
        ("--client-cert", "CFG-006", "config.tls"),
        ("--go-mod", "CFG-031", "config.go_mod"),
    ] {
        let mut args = vec![flag, fifo];
        if flag == "--client-cert" {
            args.extend(["--client-key", fifo]);
        }
        let (_, json) = check_bounded(&args, flag);
        let found: Vec<_> = results(&json, id).into_iter().filter(|r| r["code"] == code).collect();
        assert!(!found.is_empty(), "{flag}: no {code} in {json:#}");
        assert!(found[0]["message"].as_str().unwrap().contains("a FIFO (named pipe)"), "{json:#}");
    }
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse: 200 MB long, nothing on disk.
    let big = dir.path().join("big.json");
    std::fs::File::create(&big).unwrap().set_len(200 * 1024 * 1024).unwrap();
    let (_, json) = check_bounded(&["--service-file", big.to_str().unwrap()], "200 MB service file");
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-014"), "{json:#}");
    assert!(message(&json, "config.service").contains("larger than 4 MiB"), "{json:#}");

    let token = dir.path().join("token");
    std::fs::write(&token, "a".repeat(5000)).unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (_, json) = check_bounded(&["--token-file", token.to_str().unwrap()], "5000-byte token file");
    assert_eq!(root_cause(&json).as_deref(), Some("CFG-002"), "{json:#}");
    assert!(message(&json, "config.token").contains("larger than 4 KiB"), "{json:#}");
}

#[test]
fn huge_values_are_echoed_clipped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.json");
    let name = "n".repeat(3 * 1024 * 1024);
    let tag = "t".repeat(100_000);
    std::fs::write(&file, format!(r#"{{"service": {{"name": "{name}", "port": 99999, "tags": ["{tag}"]}}}}"#)).unwrap();
    let (run, json) = check_bounded(&["--service-file", file.to_str().unwrap()], "3 MiB service name");
    assert!(run.stdout.len() < 64 * 1024, "report of {} bytes for one service", run.stdout.len());
    let port = results(&json, "config.service").into_iter().find(|r| r["code"] == "CFG-019");
    let msg = port.unwrap_or_else(|| panic!("no CFG-019 in {json:#}"))["message"].as_str().unwrap();
    assert!(
        msg.contains("nnnn…nnnn") && msg.contains("nnnn\" (web.json #1)") && msg.len() < 1000,
        "{} bytes: {msg}",
        msg.len()
    );
}

#[test]
fn a_huge_flag_value_is_echoed_clipped() {
    let name = "s".repeat(100_000);
    let (run, json) = check_bounded(&["--service", &name, "--service-port", "8080"], "100 KB --service");
    assert!(run.stdout.len() < 64 * 1024, "report of {} bytes", run.stdout.len());
    let entry = json["inputs"].as_array().unwrap().iter().find(|e| e["name"] == "service").expect("service input");
    assert!(entry["value"].as_str().unwrap().contains('…'), "{entry}");
}

#[test]
fn closed_stdout_is_a_usage_error_with_a_message() {
    let addr = dead_addr();
    let mut cmd = std::process::Command::new("bash");
    cmd.args([
        "-c",
        r#"exec "$0" check --http-addr "$1" --timeout 1s >&-"#,
        env!("CARGO_BIN_EXE_consul-doctor"),
        &addr,
    ]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let run = wait_bounded(cmd.spawn().unwrap(), Duration::from_secs(20), "closed stdout");
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("cannot write the report: standard output is closed"), "{}", run.stderr);

    // Output thrown away on purpose is not an error.
    let mut cmd = doctor_cmd();
    cmd.args(["check", "--http-addr", &addr, "--timeout", "1s"]).stdout(Stdio::null()).stderr(Stdio::piped());
    let run = wait_bounded(cmd.spawn().unwrap(), Duration::from_secs(20), "stdout on /dev/null");
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
}

#[test]
fn output_file_leaves_a_summary_on_stderr_and_names_a_failed_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.xml");
    let addr = dead_addr();
    let run = run_doctor(
        &["check", "--http-addr", &addr, "--timeout", "1s", "--format", "junit", "-o", out.to_str().unwrap()],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let line = run.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with("consul-doctor: FAIL: root cause TCP-001 (tcp.connect)"), "{line}");
    assert!(line.ends_with(&format!("report written to {}", out.display())), "{line}");
    assert!(std::fs::read_to_string(&out).unwrap().contains("<testsuites"));

    let missing = dir.path().join("no/such/dir/report.json");
    let run = run_doctor(&["check", "--http-addr", &addr, "--timeout", "1s", "-o", missing.to_str().unwrap()], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(&format!("cannot write the report to {}:", missing.display())), "{}", run.stderr);
}
