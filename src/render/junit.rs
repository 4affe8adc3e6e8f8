//! JUnit XML: one testcase per check, grouped in a testsuite per stage. `fail` is a
//! `<failure>` (type = code), `skip` is `<skipped>`, `warn` passes with the finding in
//! `<system-out>` (CI gates on warnings through `--fail-on warn` and the exit code).

use std::fmt::Write;

use crate::report::{CheckResult, Report, Status};

pub fn render(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total_time = report.elapsed_ms as f64 / 1000.0;
    let _ = writeln!(
        out,
        "<testsuites name=\"consul-doctor\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{total_time:.3}\">",
        report.checks.len(),
        report.summary.fail,
        report.summary.skip
    );
    let stages = report.stages();
    for stage in stages {
        let checks: Vec<&CheckResult> = report.checks.iter().filter(|c| c.stage == stage).collect();
        let fails = checks.iter().filter(|c| c.status == Status::Fail).count();
        let skips = checks.iter().filter(|c| c.status == Status::Skip).count();
        let time: f64 = checks.iter().map(|c| c.elapsed_ms as f64 / 1000.0).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\" skipped=\"{skips}\" time=\"{time:.3}\">",
            esc(stage),
            checks.len()
        );
        for c in checks {
            let name = match c.code {
                Some(code) => format!("{} [{code}]", c.id),
                None => c.id.to_string(),
            };
            let _ = write!(
                out,
                "    <testcase classname=\"consul-doctor.{}\" name=\"{}\" time=\"{:.3}\"",
                esc(stage),
                esc(&name),
                c.elapsed_ms as f64 / 1000.0
            );
            match c.status {
                Status::Pass => {
                    let _ = writeln!(out, ">\n      <system-out>{}</system-out>\n    </testcase>", esc(&c.message));
                }
                Status::Note | Status::Warn => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        esc(&format!(
                            "{} {}: {}\nfix: {}\nexplain: consul-doctor explain {}",
                            c.status.as_str().to_ascii_uppercase(),
                            c.code.unwrap_or(""),
                            c.message,
                            c.fix.as_deref().unwrap_or(""),
                            c.code.unwrap_or("")
                        ))
                    );
                }
                Status::Fail => {
                    let code = c.code.unwrap_or("");
                    let _ = writeln!(
                        out,
                        ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                        esc(code),
                        esc(&c.message),
                        esc(&format!(
                            "{code} {}\n{}\nfix: {}\nexplain: consul-doctor explain {code}",
                            c.title.unwrap_or(""),
                            c.message,
                            c.fix.as_deref().unwrap_or("")
                        ))
                    );
                }
                Status::Skip => {
                    let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", esc(&c.message));
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// XML-escapes text and drops characters XML 1.0 cannot carry.
fn esc(s: &str) -> String {
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

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(esc("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;\u{fffd}");
    }
}
