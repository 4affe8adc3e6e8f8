//! One module per stage, each with the same shape: `CHECKS` (the check ids it reports) and
//! `run(ctx)`, which gathers observations (I/O) and hands them to pure `judge` functions.

pub mod acl;
pub mod api;
pub mod config;
pub mod discovery;
pub mod dns;
pub mod duplicates;
pub mod health;
pub mod leader;
pub mod mesh;
pub mod probe;
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

pub use crate::connection::is_loopback_host;

/// Starts `GET path` in the background, ahead of the stage that reads it (see
/// `pipeline::Early`), on the client the api stage will use; the client's two connections keep
/// the api stage's own read first. Read with [`get`].
pub(crate) fn early_get(ctx: &crate::diagnosis::pipeline::Ctx<'_>, path: String) {
    let Ok(client) = api::client_for(ctx) else { return };
    let asked = path.clone();
    let task = tokio::spawn(async move { client.get(&asked).await });
    ctx.facts().early_gets.push((path, task));
}

/// An answer already in hand for `path` (the tcp stage's probe), read with [`get`] like an
/// early read.
pub(crate) fn early_answer(ctx: &crate::diagnosis::pipeline::Ctx<'_>, path: String, reply: crate::consul::Reply) {
    let task = tokio::spawn(async move { Ok(reply) });
    ctx.facts().early_gets.push((path, task));
}

/// Whether the run asks for no namespace, partition or peer (flags, environment or the
/// definitions' own): the client's scope is then empty whatever the agent turns out to be, so a
/// read of a scoped path can be asked before the api stage settles the scope.
pub(crate) fn unscoped(ctx: &crate::diagnosis::pipeline::Ctx<'_>) -> bool {
    let c = &ctx.inputs.consul;
    c.namespace.is_none()
        && c.partition.is_none()
        && c.peer.is_none()
        && ctx.facts().services.iter().all(|s| s.def.namespace.is_none() && s.def.partition.is_none())
}

/// `GET path`: the answer asked ahead of the stage when there is one, else asked now.
pub(crate) async fn get(
    ctx: &crate::diagnosis::pipeline::Ctx<'_>,
    client: &crate::consul::ConsulClient,
    path: &str,
) -> Result<crate::consul::Reply, crate::consul::HttpFailure> {
    let early = {
        let mut f = ctx.facts();
        let at = f.early_gets.iter().position(|(p, _)| p == path);
        at.map(|i| f.early_gets.swap_remove(i).1)
    };
    match early {
        Some(task) => {
            task.await.unwrap_or_else(|e| Err(crate::consul::HttpFailure::Other(format!("request task stopped: {e}"))))
        }
        None => client.get(path).await,
    }
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

/// What a JSON endpoint gave: the decoded value, a reason not to judge (ACL filtering, an old
/// agent), or an unusable answer that is a finding of its own.
pub(crate) enum Answer<T> {
    Ok(T),
    NotJudged(String),
    Unusable(String),
}

/// Fetches and decodes one endpoint. 403 is an ACL matter (not judged here); `missing_ok` makes
/// a 404/405 "not judged" too (endpoints older agents lack). Everything else that is not a
/// decodable 200 is unusable: 5xx, redirects, bad JSON, cut-off or oversized bodies, timeouts.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    method_path: &str,
    reply: &Result<crate::consul::Reply, crate::consul::HttpFailure>,
    timeout: std::time::Duration,
    missing_ok: bool,
) -> Answer<T> {
    match reply {
        Err(f) => Answer::Unusable(format!("{method_path}: {}", f.describe(timeout))),
        Ok(r) if r.status == 403 => Answer::NotJudged(format!("{method_path} answered 403 \"{}\"", r.snippet())),
        Ok(r) if missing_ok && (r.status == 404 || r.status == 405) => {
            Answer::NotJudged(format!("{method_path} answered {} (endpoint missing on this agent)", r.status))
        }
        Ok(r) if r.status != 200 => {
            let location = r.header("location").map(|l| format!(", redirect to {l}")).unwrap_or_default();
            Answer::Unusable(format!("{method_path} answered {}{location} \"{}\"", r.status, r.snippet()))
        }
        Ok(r) => match crate::jsonclip::from_slice::<T>(&r.body) {
            Ok(v) => Answer::Ok(v),
            Err(e) => Answer::Unusable(format!(
                "{method_path} returned a body that is not the JSON Consul sends ({e}): \"{}\"",
                r.snippet()
            )),
        },
    }
}

/// The finding for an unusable answer.
pub(crate) fn unusable(
    code: &'static crate::codes::Code,
    id: &'static str,
    what: String,
) -> crate::report::CheckResult {
    // `what` starts with "METHOD /path": the request, for the evidence.
    let mut words = what.split_whitespace();
    let request = match (words.next(), words.next()) {
        (Some(m @ ("GET" | "POST")), Some(path)) if path.starts_with('/') => {
            Some(format!("{m} {}", path.trim_end_matches(':')))
        }
        _ => None,
    };
    let finish = |r: crate::report::CheckResult| match &request {
        Some(req) => r.with("request", req.clone()),
        None => r,
    };
    if what.contains("per-client connection limit") {
        return finish(crate::report::CheckResult::finding(
            code,
            id,
            what,
            "count this host's connections to the agent (ss -tn state established dst <agent>), stop the process that holds them, or raise limits { http_max_conns_per_client } in the agent configuration and reload it (consul reload)",
        ));
    }
    finish(crate::report::CheckResult::finding(
        code,
        id,
        what,
        "query the endpoint by hand (curl -sv) from this host and directly on the agent host to see whether the agent or a proxy in between breaks the answer; read the agent log (consul monitor -log-level=debug); raise --timeout for a slow agent",
    ))
}

/// The same judgement as [`decode`] for a list decoded while streaming.
pub(crate) fn streamed<T>(
    method_path: &str,
    result: Result<Result<T, (crate::consul::Reply, String)>, crate::consul::HttpFailure>,
    timeout: std::time::Duration,
) -> Answer<T>
where
    T: serde::de::DeserializeOwned,
{
    match result {
        Ok(Ok(v)) => Answer::Ok(v),
        Ok(Err((reply, e))) if reply.status == 200 => Answer::Unusable(format!(
            "{method_path} returned a body that is not the JSON Consul sends ({e}): \"{}\"",
            reply.snippet()
        )),
        Ok(Err((reply, _))) => decode(method_path, &Ok(reply), timeout, false),
        Err(f) => Answer::Unusable(format!("{method_path}: {}", f.describe(timeout))),
    }
}

/// The common start of the service stages: the services and the API client, or the results to
/// report when there is nothing to check.
pub(crate) fn service_stage_start(
    ctx: &crate::diagnosis::pipeline::Ctx<'_>,
    checks: &'static [&'static str],
) -> Result<(Vec<Svc>, crate::consul::SharedClient), Vec<crate::report::CheckResult>> {
    let services = ctx.facts().services.clone();
    if services.is_empty() {
        return Err(checks.iter().map(|id| no_service(id)).collect());
    }
    match ctx.client() {
        Some(client) => Ok((services, client)),
        None => Err(vec![crate::report::CheckResult::skipped(checks[0], "no API client")]),
    }
}
