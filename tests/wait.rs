//! `check --wait` without an agent: the whole wait is used, `--deadline` bounds the whole
//! invocation, and progress goes to standard error (state changes only, off a terminal). The
//! real-agent case (a server electing its leader while the doctor waits) is in tests/lab.

mod common;

use std::time::Duration;

use common::*;

fn dead_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn the_last_attempt_runs_at_the_end_of_the_wait() {
    let (run, json) = check_json(&["--http-addr", &dead_addr(), "--wait", "2500ms", "--timeout", "1s"], &[]);
    assert_root(&run, &json, "TCP-001", &["api"]);
    // Attempts at 0, 1 s, 2 s and 2.5 s: the half pause left is not thrown away.
    assert_eq!(json["attempts"], 4, "{json:#}");
    assert!(run.elapsed >= Duration::from_millis(2500) && run.elapsed < Duration::from_secs(6), "{:?}", run.elapsed);
    // Not a terminal: the first state and the last attempt, nothing in between.
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert!(lines[0].starts_with("consul-doctor: attempt 1: root cause TCP-001 (tcp.connect); 2."), "{}", lines[0]);
    assert!(lines[0].ends_with(" left, retrying"), "{}", lines[0]);
    assert_eq!(lines[1], "consul-doctor: attempt 4: root cause TCP-001 (tcp.connect); the wait is over");
}

#[test]
fn the_deadline_bounds_the_whole_invocation_waiting_included() {
    let (run, json) = check_json(&["--http-addr", &dead_addr(), "--wait", "30s", "--deadline", "2s"], &[]);
    // The last attempt keeps time to run: the root cause is the real one, not RUN-001.
    assert_root(&run, &json, "TCP-001", &["api"]);
    assert!(json["attempts"].as_u64().unwrap() >= 2, "{json:#}");
    assert!(run.elapsed < Duration::from_secs(5), "--deadline 2s ran {:?}", run.elapsed);
}

#[test]
fn without_wait_nothing_is_said_on_stderr() {
    let (run, _) = check_json(&["--http-addr", &dead_addr()], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}
