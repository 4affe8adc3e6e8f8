//! JUnit XML, as CI systems read it: a testsuite per stage, one testcase per check id (its name
//! is the id whatever the outcome, so a CI history follows the same test across runs). When
//! several results share an id (one per service), they make one testcase whose failure lists
//! each failing result. A result is a `<failure>` exactly when it makes the exit status 1:
//! `fail`, and `warn` with `--fail-on warn`; every other status is never a failure. A testcase
//! whose results are all skipped is `<skipped>`.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::report::FailOn;
use crate::report::{CheckResult, Report, Status};

pub fn render(report: &Report, fail_on: FailOn) -> String {
    let finished = SystemTime::now();
    let started = finished.checked_sub(Duration::from_millis(report.elapsed_ms)).unwrap_or(finished);
    render_at(report, fail_on, &iso8601(started), &hostname())
}

/// One testcase: a check id and every result reported under it.
struct Case<'a> {
    id: &'static str,
    results: Vec<&'a CheckResult>,
}

fn is_failure(c: &CheckResult, fail_on: FailOn) -> bool {
    c.status == Status::Fail || (c.status == Status::Warn && fail_on == FailOn::Warn)
}

fn render_at(report: &Report, fail_on: FailOn, timestamp: &str, host: &str) -> String {
    let suites: Vec<(&'static str, Vec<Case>)> = report
        .stages()
        .into_iter()
        .map(|stage| {
            let mut cases: Vec<Case> = Vec::new();
            for c in report.checks.iter().filter(|c| c.stage == stage) {
                match cases.iter_mut().find(|k| k.id == c.id) {
                    Some(k) => k.results.push(c),
                    None => cases.push(Case { id: c.id, results: vec![c] }),
                }
            }
            (stage, cases)
        })
        .collect();
    let failing = |k: &Case| k.results.iter().any(|c| is_failure(c, fail_on));
    let skipped = |k: &Case| !failing(k) && k.results.iter().all(|c| c.status == Status::Skip);
    let count = |f: &dyn Fn(&Case) -> bool| suites.iter().flat_map(|(_, k)| k).filter(|k| f(k)).count();

    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"consul-doctor\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{timestamp}\">",
        count(&|_| true),
        count(&failing),
        count(&skipped),
        report.elapsed_ms as f64 / 1000.0
    );
    for (stage, cases) in &suites {
        let time: f64 = cases.iter().flat_map(|k| &k.results).map(|c| c.elapsed_ms as f64 / 1000.0).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{time:.3}\" timestamp=\"{timestamp}\" hostname=\"{}\">",
            esc(stage),
            cases.len(),
            cases.iter().filter(|k| failing(k)).count(),
            cases.iter().filter(|k| skipped(k)).count(),
            esc(host)
        );
        for case in cases {
            let time: f64 = case.results.iter().map(|c| c.elapsed_ms as f64 / 1000.0).sum();
            let _ = writeln!(
                out,
                "    <testcase classname=\"consul-doctor.{}\" name=\"{}\" time=\"{time:.3}\">",
                esc(stage),
                esc(case.id)
            );
            let failures: Vec<&CheckResult> = case.results.iter().copied().filter(|c| is_failure(c, fail_on)).collect();
            if let Some(first) = failures.first() {
                let mut types: Vec<&str> = Vec::new();
                for code in failures.iter().filter_map(|c| c.code) {
                    if !types.contains(&code) {
                        types.push(code);
                    }
                }
                let message = match failures.len() {
                    1 => format!("{} {}", first.code.unwrap_or(""), first.message),
                    n => format!("{n} findings: {} {} (and more)", first.code.unwrap_or(""), first.message),
                };
                let body: Vec<String> = failures.iter().map(|c| finding_text(c)).collect();
                let _ = writeln!(
                    out,
                    "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                    esc(&types.join(",")),
                    esc(&message),
                    esc(&body.join("\n\n"))
                );
            } else if skipped(case) {
                let _ = writeln!(out, "      <skipped message=\"{}\"/>", esc(&case.results[0].message));
            }
            let others: Vec<String> = case
                .results
                .iter()
                .filter(|c| !is_failure(c, fail_on))
                .map(|c| match c.code {
                    Some(_) => finding_text(c),
                    None => format!("{}: {}", c.status.as_str(), c.message),
                })
                .collect();
            if !others.is_empty() && !skipped(case) {
                let _ = writeln!(out, "      <system-out>{}</system-out>", esc(&others.join("\n")));
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// A finding as the failure body or system-out shows it: status, code, title, message, fix.
fn finding_text(c: &CheckResult) -> String {
    let code = c.code.unwrap_or("");
    format!(
        "{} {code} {}\n{}\nfix: {}\nexplain: consul-doctor explain {code}",
        c.status.as_str().to_uppercase(),
        c.title.unwrap_or(""),
        c.message,
        c.fix.as_deref().unwrap_or("")
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`: ISO 8601 in UTC, with the zone said, so no reader takes it for local time.
fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    crate::duration::format_utc(secs as i64)
}

#[cfg(unix)]
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(not(unix))]
fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "localhost".into())
}

/// XML-escapes text and drops characters XML 1.0 cannot carry.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    fn staged(mut c: CheckResult, stage: &'static str) -> CheckResult {
        c.stage = stage;
        c
    }

    /// Two services under one id (one fails, one warns), a pass, and a blocked stage.
    fn fixture() -> Report {
        let checks = vec![
            staged(CheckResult::pass("config.address", "http://127.0.0.1:8500 (default)"), "config"),
            staged(
                CheckResult::finding(
                    codes::CFG_PORT_RANGE,
                    "config.service",
                    "service \"a\": port 99999",
                    "use a port",
                ),
                "config",
            ),
            staged(
                CheckResult::finding(codes::CFG_DNS_NAME, "config.service", "service \"b\": no ID", "give an ID"),
                "config",
            ),
            staged(CheckResult::finding(codes::CFG_DNS_NAME, "config.token", "only a warning", "fix it"), "config"),
            staged(CheckResult::blocked("dns.resolve", "CFG-019"), "dns"),
            staged(CheckResult::finding(codes::CFG_NO_ID, "dns.note", "advice only", "give an ID"), "dns"),
        ];
        Report::new("http://127.0.0.1:8500".into(), Vec::new(), Default::default(), checks, 1500)
    }

    #[test]
    fn one_testcase_per_check_id_named_by_the_id() {
        let x = render_at(&fixture(), FailOn::Fail, "2026-01-02T03:04:05Z", "ci-runner");
        assert_eq!(x.matches("<testcase ").count(), 5, "{x}");
        assert_eq!(x.matches("name=\"config.service\"").count(), 1, "{x}");
        assert!(x.contains("<failure type=\"CFG-019\" message=\"CFG-019 service &quot;a&quot;: port 99999\">"), "{x}");
        // The warning of the second service is reported beside the failure, not as one.
        assert!(x.contains("WARN CFG-021 "), "{x}");
        assert!(x.contains("<testcase classname=\"consul-doctor.dns\" name=\"dns.resolve\" time=\"0.000\">\n      <skipped message=\"skipped: blocked by CFG-019\"/>\n    </testcase>"), "{x}");
        assert!(x.contains("<testsuites name=\"consul-doctor\" tests=\"5\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.500\" timestamp=\"2026-01-02T03:04:05Z\">"), "{x}");
        assert!(x.contains("<testsuite name=\"config\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"0\" time=\"0.000\" timestamp=\"2026-01-02T03:04:05Z\" hostname=\"ci-runner\">"), "{x}");
        assert!(!x.contains("[CFG-"), "the code stays out of the name: {x}");
    }

    #[test]
    fn fail_on_warn_makes_warnings_failures() {
        let x = render_at(&fixture(), FailOn::Warn, "2026-01-02T03:04:05", "h");
        assert!(x.contains("<failure type=\"CFG-019,CFG-021\" message=\"2 findings: CFG-019 service &quot;a&quot;: port 99999 (and more)\">"), "{x}");
        assert!(x.contains("<failure type=\"CFG-021\" message=\"CFG-021 only a warning\">"), "{x}");
        assert!(x.contains("tests=\"5\" failures=\"2\""), "{x}");
        // A note is advice: never a failure, whatever --fail-on says.
        assert!(!x.contains("<failure type=\"CFG-022\""), "{x}");
        assert!(x.contains("NOTE CFG-022 Service ID omitted: it defaults to the name\nadvice only"), "{x}");
    }

    #[test]
    fn timestamps_are_utc_iso8601() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(1_709_210_096)), "2024-02-29T12:34:56Z");
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(esc("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;\u{fffd}");
    }
}
