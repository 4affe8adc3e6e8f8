//! The blocking-query rules `wait` follows, as pure functions: how the next index follows from
//! the answer (Consul's "Blocking Queries" documentation), how long one request may wait, and
//! the capped exponential backoff with full jitter between failed attempts.

use std::time::Duration;

/// Longest `wait` asked for in one request (Consul caps it at 10 minutes).
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// First and largest backoff step after a failed request.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Lower bound of a backoff pause, so jitter near zero cannot make a tight loop.
pub const BACKOFF_FLOOR: Duration = Duration::from_millis(50);
/// A blocking query that returns unchanged faster than this was not blocking (a proxy that
/// drops `wait`, an index Consul cannot block on): the next one waits out the rest.
pub const MIN_UNCHANGED_SPACING: Duration = Duration::from_secs(1);

/// First pause between polls once answers show that blocking queries do not work through this
/// path, and the longest: a proxy that strips `X-Consul-Index` or ignores `wait` turns every
/// answer into an immediate one, so without this pacing wait would query in a tight loop.
pub const POLL_FLOOR: Duration = Duration::from_secs(1);
pub const POLL_CAP: Duration = Duration::from_secs(5);

/// The `X-Consul-Index` header as answered: absent, not a number, or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    Missing,
    Garbage,
    Index(u64),
}

impl Answered {
    pub fn parse(header: Option<&str>) -> Answered {
        match header {
            None => Answered::Missing,
            Some(v) => v.trim().parse().map_or(Answered::Garbage, Answered::Index),
        }
    }

    pub fn index(self) -> Option<u64> {
        match self {
            Answered::Index(i) => Some(i),
            _ => None,
        }
    }
}

/// Why an answer shows that this request was not a working blocking query, if it does: no
/// usable index to block on next time, or a blocking request that came back unchanged at once.
pub fn not_blocking(sent: u64, answered: Answered, took: Duration) -> Option<&'static str> {
    match answered {
        Answered::Missing => Some("answers carry no X-Consul-Index header"),
        Answered::Garbage => Some("answers carry an X-Consul-Index that is not a number"),
        Answered::Index(0) => Some("answers carry X-Consul-Index 0"),
        Answered::Index(a) if a < sent => Some("the X-Consul-Index answered went backwards"),
        Answered::Index(a) if sent > 0 && a == sent && took < MIN_UNCHANGED_SPACING => {
            Some("blocking queries return unchanged at once (the wait parameter is not honoured)")
        }
        Answered::Index(_) => None,
    }
}

/// The pause before the next poll after `consecutive` answers in a row that did not block:
/// [`POLL_FLOOR`], doubling, at most [`POLL_CAP`]; none while queries block.
pub fn poll_pause(consecutive: u32) -> Duration {
    if consecutive == 0 {
        return Duration::ZERO;
    }
    POLL_FLOOR.saturating_mul(1u32 << (consecutive - 1).min(8)).min(POLL_CAP)
}

/// The index for the next request, from the one sent and the `X-Consul-Index` answered.
/// An index that goes backwards (a restored snapshot, a restarted agent) resets to 0, so the
/// next answer is immediate and re-baselines; an answered 0 is clamped to 1, so the next
/// request blocks instead of returning at once in a tight loop; no header keeps 0.
pub fn next_index(sent: u64, answered: Option<u64>) -> u64 {
    match answered {
        None => 0,
        Some(a) if a < sent => 0,
        Some(0) => 1,
        Some(a) => a,
    }
}

/// The `wait` of the next blocking request with `remaining` until the deadline: all of it (at
/// most [`MAX_WAIT`]), never more. Consul may add up to wait/16 of jitter before it answers an
/// unchanged index; the caller stops waiting at the deadline, so that jitter never delays the
/// outcome, and no short tail query is needed after an answer that came just before it.
pub fn wait_for(remaining: Duration) -> Duration {
    remaining.min(MAX_WAIT)
}

/// The request's own timeout: longer than its `wait` plus Consul's jitter, by the step timeout.
pub fn request_timeout(wait: Duration, step: Duration) -> Duration {
    wait + wait / 16 + step
}

/// Full-jitter backoff: uniform in [floor, min(cap, base·2^(attempt-1))], `unit` in [0, 1).
pub fn backoff(attempt: u32, unit: f64) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let ceiling = exp.min(BACKOFF_CAP);
    ceiling.mul_f64(unit.clamp(0.0, 1.0)).max(BACKOFF_FLOOR)
}

/// A small xorshift generator for jitter (no need for a crate; not for secrets).
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded() -> Jitter {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(1);
        Jitter((t as u64) ^ (u64::from(std::process::id()) << 32) | 1)
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The query string of one blocking request (index 0: an immediate answer, no `wait`).
pub fn query(service: &str, dc: Option<&str>, index: u64, wait: Duration) -> String {
    let mut q = format!("/v1/health/service/{}", crate::consul::urlencode(service));
    let mut params = Vec::new();
    if let Some(dc) = dc {
        params.push(format!("dc={}", crate::consul::urlencode(dc)));
    }
    if index > 0 {
        params.push(format!("index={index}"));
        params.push(format!("wait={}ms", wait.as_millis().max(1)));
    }
    if !params.is_empty() {
        q.push('?');
        q.push_str(&params.join("&"));
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_rules_follow_consul_documentation() {
        assert_eq!(next_index(0, Some(42)), 42);
        assert_eq!(next_index(42, Some(42)), 42, "no change: block again on the same index");
        assert_eq!(next_index(42, Some(50)), 50);
        assert_eq!(next_index(42, Some(7)), 0, "backwards resets");
        assert_eq!(next_index(0, Some(0)), 1, "zero is clamped so the next query blocks");
        assert_eq!(next_index(42, None), 0);
    }

    #[test]
    fn answers_that_cannot_block_are_named_and_paced() {
        let fast = Duration::from_millis(3);
        assert_eq!(Answered::parse(None), Answered::Missing);
        assert_eq!(Answered::parse(Some("x7")), Answered::Garbage);
        assert_eq!(Answered::parse(Some(" 42 ")), Answered::Index(42));
        assert!(not_blocking(0, Answered::Missing, fast).is_some());
        assert!(not_blocking(0, Answered::Garbage, fast).is_some());
        assert!(not_blocking(0, Answered::Index(0), fast).is_some());
        assert!(not_blocking(50, Answered::Index(7), fast).unwrap().contains("backwards"));
        assert!(not_blocking(50, Answered::Index(50), fast).unwrap().contains("at once"));
        // The first answer, a change, or an unchanged answer after a real wait: blocking works.
        assert_eq!(not_blocking(0, Answered::Index(42), fast), None);
        assert_eq!(not_blocking(42, Answered::Index(43), fast), None);
        assert_eq!(not_blocking(42, Answered::Index(42), Duration::from_secs(30)), None);
        assert_eq!(poll_pause(0), Duration::ZERO);
        assert_eq!(poll_pause(1), POLL_FLOOR);
        assert_eq!(poll_pause(2), POLL_FLOOR * 2);
        assert_eq!(poll_pause(40), POLL_CAP);
    }

    #[test]
    fn wait_stays_inside_the_deadline_and_the_timeout_outlasts_it() {
        let rem = Duration::from_secs(17);
        let w = wait_for(rem);
        assert_eq!(w, rem);
        assert_eq!(wait_for(Duration::from_secs(3600)), MAX_WAIT);
        let t = request_timeout(w, Duration::from_secs(5));
        assert!(t > w + w / 16);
    }

    #[test]
    fn backoff_grows_is_capped_and_never_zero() {
        assert_eq!(backoff(1, 1.0), BACKOFF_BASE);
        assert_eq!(backoff(3, 1.0), BACKOFF_BASE * 4);
        assert_eq!(backoff(30, 1.0), BACKOFF_CAP);
        assert_eq!(backoff(5, 0.0), BACKOFF_FLOOR);
        let mut j = Jitter::seeded();
        for _ in 0..1000 {
            let u = j.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn query_strings() {
        assert_eq!(query("web", None, 0, Duration::from_secs(5)), "/v1/health/service/web");
        assert_eq!(
            query("my web", Some("dc2"), 12, Duration::from_millis(1500)),
            "/v1/health/service/my%20web?dc=dc2&index=12&wait=1500ms"
        );
    }
}
