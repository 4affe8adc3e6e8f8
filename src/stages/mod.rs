//! One module per stage, each with the same shape: `CHECKS` (the check ids it reports) and
//! `run(ctx)`, which gathers observations (I/O) and hands them to pure `judge` functions.

pub mod acl;
pub mod api;
pub mod config;
pub mod dns;
pub mod leader;
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
    let h = host
        .trim_matches(|c| c == '[' || c == ']')
        .trim_end_matches('.');
    if let Ok(ip) = h.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost")
}
