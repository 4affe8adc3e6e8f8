//! Scan JUnit XML: a `connection` suite (the connection checks), a `scan` suite with one
//! testcase per service (and one for the catalog itself), and with `--prune` a `prune` suite
//! with one testcase per deregistration. A finding is a `<failure>` exactly when it makes the exit
//! status 1 (fail, and warn with `--fail-on warn`); the others are in `<system-out>`.

use std::fmt::Write;

use crate::render::junit::esc;

use crate::report::Status;
use crate::scan::prune::Outcome;
use crate::scan::report::ScanReport;

/// `fail_on` decides what is a `<failure>`, so the CI report agrees with the exit code.
pub fn render(r: &ScanReport, fail_on: crate::report::FailOn) -> String {
    let failing = |s: Status| s == Status::Fail || (s == Status::Warn && fail_on == crate::report::FailOn::Warn);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let mut cases: Vec<(String, Vec<&crate::scan::judge::Finding>)> = Vec::new();
    if r.findings.iter().any(|f| f.service.is_empty()) || !r.scanned.complete {
        cases.push((String::new(), Vec::new()));
    }
    cases.extend(r.services.iter().map(|s| (s.name.clone(), Vec::new())));
    for f in &r.findings {
        match cases.iter_mut().find(|(n, _)| *n == f.service) {
            Some((_, v)) => v.push(f),
            None => cases.push((f.service.clone(), vec![f])),
        }
    }
    let conn_fail = r.connection.iter().filter(|c| failing(c.status)).count();
    let scan_fail = cases.iter().filter(|(_, f)| f.iter().any(|f| failing(f.result.status))).count();
    let prune_cases = if r.prune.mode == "prune" { r.prune.actions.len() } else { 0 };
    let prune_fail = r.prune.actions.iter().filter(|a| prune_cases > 0 && a.outcome != Outcome::Removed).count();
    let _ = writeln!(
        out,
        "<testsuites name=\"consul-doctor scan\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">",
        r.connection.len() + cases.len() + prune_cases,
        conn_fail + scan_fail + prune_fail,
        r.elapsed_ms as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"connection\" tests=\"{}\" failures=\"{conn_fail}\" errors=\"0\">",
        r.connection.len()
    );
    for c in &r.connection {
        let _ = write!(out, "    <testcase classname=\"consul-doctor.scan.connection\" name=\"{}\"", esc(c.id));
        match c.status {
            s if failing(s) => {
                let _ = writeln!(
                    out,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                    esc(c.code.unwrap_or("")),
                    esc(&c.message),
                    esc(c.fix.as_deref().unwrap_or(""))
                );
            }
            Status::Skip => {
                let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", esc(&c.message));
            }
            _ => {
                let _ = writeln!(out, ">\n      <system-out>{}</system-out>\n    </testcase>", esc(&c.message));
            }
        }
    }
    out.push_str("  </testsuite>\n");
    let _ =
        writeln!(out, "  <testsuite name=\"scan\" tests=\"{}\" failures=\"{scan_fail}\" errors=\"0\">", cases.len());
    for (name, findings) in &cases {
        let label = if name.is_empty() { "catalog".to_string() } else { format!("service {name}") };
        let _ = write!(out, "    <testcase classname=\"consul-doctor.scan\" name=\"{}\"", esc(&label));
        let text: String = findings
            .iter()
            .map(|f| {
                format!(
                    "{} {}: {}\nfix: {}\nexplain: consul-doctor explain {}\n",
                    f.result.status.as_str().to_uppercase(),
                    f.result.code.unwrap_or(""),
                    f.result.message,
                    f.result.fix.as_deref().unwrap_or(""),
                    f.result.code.unwrap_or("")
                )
            })
            .collect();
        match findings.iter().find(|f| failing(f.result.status)) {
            Some(first) => {
                let _ = writeln!(
                    out,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                    esc(first.result.code.unwrap_or("")),
                    esc(&first.result.message),
                    esc(&text)
                );
            }
            None if findings.is_empty() => {
                let _ = writeln!(out, "/>");
            }
            None => {
                let _ = writeln!(out, ">\n      <system-out>{}</system-out>\n    </testcase>", esc(&text));
            }
        }
    }
    out.push_str("  </testsuite>\n");
    if prune_cases > 0 {
        let _ = writeln!(
            out,
            "  <testsuite name=\"prune\" tests=\"{prune_cases}\" failures=\"{prune_fail}\" errors=\"0\">"
        );
        for a in &r.prune.actions {
            let _ = write!(
                out,
                "    <testcase classname=\"consul-doctor.scan.prune\" name=\"{}\"",
                esc(&format!("{} {} on {}", a.service, a.service_id, a.node))
            );
            if a.outcome == Outcome::Removed {
                let _ = writeln!(out, "/>");
            } else {
                let _ = writeln!(
                    out,
                    ">\n      <failure type=\"{:?}\" message=\"{}\"/>\n    </testcase>",
                    a.outcome,
                    esc(a.detail.as_deref().unwrap_or(""))
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
