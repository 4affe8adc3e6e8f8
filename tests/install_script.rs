//! scripts/install-consul.sh, which fetches the Consul the lab executes: it refuses a package
//! whose SHA-256 is not the one pinned in the repository, and says what to set when Debian's
//! bullseye package cannot be fetched. Run on a copy of the script in a scratch layout, with no
//! `consul` on PATH and every proxy pointed at a dead loopback port, so nothing leaves the host.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `<tmp>/repo/scripts/{install-consul.sh,consul.sha256}`; returns the repo root.
fn layout(tmp: &Path) -> PathBuf {
    let repo = tmp.join("repo");
    std::fs::create_dir_all(repo.join("scripts")).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for f in ["install-consul.sh", "consul.sha256"] {
        std::fs::copy(src.join(f), repo.join("scripts").join(f)).unwrap();
    }
    repo
}

fn run(repo: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let dead = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    let mut cmd = Command::new("bash");
    cmd.arg(repo.join("scripts/install-consul.sh"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", repo)
        .env("http_proxy", &dead)
        .env("https_proxy", &dead)
        .env("HTTP_PROXY", &dead)
        .env("HTTPS_PROXY", &dead);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_package_that_does_not_match_the_pinned_sha256_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = layout(tmp.path());
    // A package beside the checkout whose own SHA256SUMS agrees with it: only the pin catches it.
    let shared = tmp.path().join("shared/consul");
    std::fs::create_dir_all(&shared).unwrap();
    let name = "consul_1.8.7+dfsg1-2+b3_amd64.deb";
    std::fs::write(shared.join(name), b"not the package").unwrap();
    let sum = Command::new("sha256sum").arg(name).current_dir(&shared).output().unwrap();
    std::fs::write(shared.join("SHA256SUMS"), &sum.stdout).unwrap();
    let (code, stdout, stderr) = run(&repo, &[]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "no binary path printed: {stdout}");
    let pinned = std::fs::read_to_string(repo.join("scripts/consul.sha256")).unwrap();
    let want = pinned.lines().find(|l| l.ends_with(name)).unwrap().split_whitespace().next().unwrap().to_string();
    assert!(stderr.contains("SHA-256 mismatch") && stderr.contains(&want), "{stderr}");
    assert!(!repo.join(".cache/consul/usr/bin/consul").exists(), "nothing unpacked");
}

#[test]
fn a_mirror_without_bullseye_says_what_to_set() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = layout(tmp.path());
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let (code, stdout, stderr) = run(&repo, &[("CONSUL_DEBIAN_MIRROR", &format!("file://{}", mirror.display()))]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("CONSUL_BIN=") && stderr.contains("CONSUL_DEBIAN_MIRROR"), "{stderr}");
    assert!(stderr.contains("archive"), "{stderr}");
    // apt's own errors are kept in a log, not stacked on the terminal.
    assert!(!stderr.contains("E: "), "{stderr}");
}
