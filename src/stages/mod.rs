//! One module per stage, each with the same shape: `CHECKS` (the check ids it reports) and
//! `run(ctx)`, which gathers observations (I/O) and hands them to pure `judge` functions.

pub mod acl;
pub mod api;
pub mod config;
pub mod dns;
pub mod duplicates;
pub mod health;
pub mod leader;
pub mod sync;
pub mod tcp;
pub mod tls;
pub mod version;

use std::time::Duration;

pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

pub(crate) fn fmt_timeout(d: Duration) -> String {
    crate::duration::format_go(d.as_nanos() as i64)
}

/// True for loopback IPs and `localhost` names.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_matches(|c| c == '[' || c == ']').trim_end_matches('.');
    if let Ok(ip) = h.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost")
}

/// A service to register and what blocks its service-specific checks.
#[derive(Debug, Clone)]
pub struct Svc {
    pub def: crate::service::ServiceDef,
    /// First failing definition code: every later check of this service is skipped with it.
    pub blocker: Option<&'static str>,
}

/// The skip result for a service whose definition failed, if it did.
pub(crate) fn service_gate(s: &Svc, id: &'static str) -> Option<crate::report::CheckResult> {
    s.blocker.map(|code| {
        let mut r = crate::report::CheckResult::blocked(id, code);
        r.message = format!("{}: skipped: blocked by {code}", s.def.label);
        r
    })
}

/// The skip result when no service was given.
pub(crate) fn no_service(id: &'static str) -> crate::report::CheckResult {
    crate::report::CheckResult::skipped(id, "no service given (--service-file or --service)")
}
