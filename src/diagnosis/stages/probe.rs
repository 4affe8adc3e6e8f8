//! probe stage (`check --probe-register`, the only write `check` may make): registers a
//! throwaway instance with the caller's token and the definition's shape, under the ID
//! `consul-doctor-probe-<random>` and meta `consul_doctor = "probe"`, with a TTL check left
//! critical so neither DNS nor `?passing` ever sends a consumer to it; waits until anti-entropy
//! put it in the catalog (the latency is reported), deregisters it and waits until it is gone.
//!
//! Cleanup runs on every path: the stage deregisters what it registered; a probe still pending
//! when the run ends early (deadline, Ctrl-C) is deregistered by [`cleanup_pending`], called by
//! the pipeline and by `check::run`. When that fails, the report names the ID to remove.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::codes;
use crate::consul::{urlencode, HttpFailure, Reply, SharedClient};
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::{CheckResult, Status};
use crate::service::ServiceDef;

pub const CHECKS: &[&str] = &["probe.register", "probe.catalog", "probe.cleanup"];

pub const ID_PREFIX: &str = "consul-doctor-probe-";

/// A registered probe not yet confirmed deregistered.
struct Pending {
    client: SharedClient,
    id: String,
    name: String,
}

static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<Pending>> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        if !ctx.inputs.probe_register {
            return vec![CheckResult::skipped(
                "probe.register",
                "no --probe-register given: the canary registration (the only write check makes) was not asked for",
            )];
        }
        let (services, client) = match super::service_stage_start(ctx, CHECKS) {
            Ok(started) => started,
            Err(results) => return results,
        };
        let Some(svc) = services.iter().find(|s| s.blocker.is_none()) else {
            return vec![super::service_gate(&services[0], "probe.register")
                .unwrap_or_else(|| super::no_service("probe.register"))];
        };
        let name = ctx.inputs.probe_name.clone().unwrap_or_else(|| svc.def.display_name().to_string());
        let node = ctx.facts().agent.as_ref().map(|a| a.node.clone());
        probe(&client, &svc.def, &name, node.as_deref(), ctx.inputs.timeout).await
    })
}

async fn probe(
    client: &SharedClient,
    def: &ServiceDef,
    name: &str,
    node: Option<&str>,
    timeout: Duration,
) -> Vec<CheckResult> {
    // Ask first; refuse with the ACL finding rather than try a write that must fail.
    let wanted = vec![(name.to_string(), "write")];
    let body = json!([{"Resource": "service", "Segment": name, "Access": "write"}]);
    let reply = client.post_json("/v1/internal/acl/authorize", &body).await;
    let mut probe_def = def.clone();
    probe_def.name = Some(name.to_string());
    let acls_off = matches!(&reply, Ok(r) if r.status == 401 || r.text().contains("ACL support disabled"));
    let mut verdict = if acls_off {
        CheckResult::pass("probe.register", format!("ACLs are disabled: any token may register {name:?}"))
    } else {
        let caller = super::acl::Caller {
            desc: "the caller's token".to_string(),
            agent_addr: client.url(""),
            ..super::acl::Caller::default()
        };
        super::acl::judge_authorize(&probe_def, &wanted, &caller, &reply, timeout)
    };
    verdict.id = "probe.register";
    if verdict.status != Status::Pass {
        verdict.message = format!("{}; the probe was not attempted (nothing written)", verdict.message);
        let code = verdict.code.unwrap_or("ACL-006");
        return vec![verdict, CheckResult::blocked("probe.catalog", code), CheckResult::blocked("probe.cleanup", code)];
    }
    let id = format!("{ID_PREFIX}{}", random_hex());
    let registration = body_for(def, name, &id);
    pending().push(Pending { client: client.clone(), id: id.clone(), name: name.to_string() });
    let started = Instant::now();
    let reply = client.put_json("/v1/agent/service/register", Some(&registration)).await;
    let mut out = Vec::new();
    let registered = judge_register(&id, name, &reply, timeout);
    let accepted = registered.status == Status::Pass;
    let code = registered.code;
    out.push(
        registered
            .with("request", format!("PUT {}", client.url("/v1/agent/service/register")))
            .with("probe_id", id.clone()),
    );
    if accepted {
        let seen = wait_catalog(client, name, &id, node, true, timeout).await;
        out.push(match seen {
            Ok(()) => {
                let ms = started.elapsed().as_millis();
                CheckResult::pass(
                    "probe.catalog",
                    format!("probe {id} reached the catalog {ms} ms after registration: the agent accepted the body and anti-entropy synced it with the caller's token"),
                )
                .with("latency_ms", ms.to_string())
            }
            Err(why) => CheckResult::finding(
                codes::PRB_NOT_SYNCED,
                "probe.catalog",
                format!("the agent accepted probe {id} (200) but it did not reach the catalog within {}: {why}", super::fmt_timeout(timeout)),
                format!("anti-entropy cannot sync registrations of {name:?}: look for \"Service registration blocked by ACLs\" or \"failed to sync remote state\" in the agent log (consul monitor -log-level=debug); the servers must accept the token (service:write on {name:?}, fresh policies) and the agent token needs node:write on its node"),
            ),
        });
    } else {
        out.push(CheckResult::blocked("probe.catalog", code.unwrap_or("PRB-001")));
    }
    out.push(cleanup(client, &id, name, node, timeout).await);
    // Reported here, whatever the outcome: the end-of-run sweep is for probes cut off mid-way.
    pending().retain(|p| p.id != id);
    out
}

/// How long the probe's TTL check runs before it expires. A check created critical does not
/// start Consul's deregister-critical clock (Consul 1.8.7 starts it when the check is next
/// updated to critical, here when the TTL expires), so a leftover probe is reaped by its agent
/// after this TTL, plus [`PROBE_REAP_AFTER`], plus up to one 30 s reaper pass: measured on a real
/// 1.8.7 agent, 87 s after registration (benches/probe_leftover.sh).
pub const PROBE_TTL: &str = "10s";
/// `DeregisterCriticalServiceAfter` of the probe's check: Consul's minimum.
pub const PROBE_REAP_AFTER: &str = "1m";

/// The probe's registration body: the definition's shape, the probe's ID and meta, and a TTL
/// check that stays critical (never routed to) and lets the agent reap it within about 100 s.
pub fn body_for(def: &ServiceDef, name: &str, id: &str) -> Value {
    let mut meta: Map<String, Value> =
        def.meta.iter().filter(|(k, _)| k != "consul_doctor").map(|(k, v)| (k.clone(), json!(v))).collect();
    meta.insert("consul_doctor".into(), json!("probe"));
    let mut body = json!({
        "ID": id,
        "Name": name,
        "Tags": def.tags,
        "Meta": meta,
        "Check": {
            "CheckID": format!("{id}:ttl"),
            "Name": "consul-doctor probe (stays critical, never routed to)",
            "TTL": PROBE_TTL,
            "Status": "critical",
            "DeregisterCriticalServiceAfter": PROBE_REAP_AFTER
        }
    });
    if let Some(a) = def.address.as_ref().filter(|a| !a.is_empty()) {
        body["Address"] = json!(a);
    }
    if let Some(p) = def.port {
        body["Port"] = json!(p);
    }
    body
}

pub fn judge_register(id: &str, name: &str, reply: &Result<Reply, HttpFailure>, timeout: Duration) -> CheckResult {
    let r = match reply {
        Ok(r) => r,
        Err(f) => {
            return CheckResult::finding(
                codes::PRB_REJECTED,
                "probe.register",
                format!("PUT /v1/agent/service/register of probe {id}: {}", f.describe(timeout)),
                "the agent did not answer the write: check its load and log; the probe is deregistered in case it was applied",
            )
        }
    };
    let text = r.snippet();
    match r.status {
        200 => CheckResult::pass("probe.register", format!("the agent accepted probe {id} for {name:?} with the caller's token (200)")),
        403 if text.contains("Permission denied") => CheckResult::finding(
            codes::ACL_NO_SERVICE_WRITE,
            "probe.register",
            format!("the agent refused probe {id}: 403 \"{text}\" although the permission check allowed it (cached or changed policies?)"),
            format!("grant the token service:write on {name:?} (consul acl policy create -name {name}-register -rules 'service \"{name}\" {{ policy = \"write\" }}')"),
        ),
        403 => CheckResult::finding(
            codes::PRB_REJECTED,
            "probe.register",
            format!("the agent refused writes from this host: 403 \"{text}\""),
            "http_config.allow_write_http_from must include this host's address and block_endpoints must not cover /v1/agent/service/register; register from an allowed host",
        ),
        status => CheckResult::finding(
            codes::PRB_REJECTED,
            "probe.register",
            format!("the agent rejected probe {id} with the definition's shape: {status} \"{text}\""),
            "the agent's own validation refuses this definition: fix what the message names (address, port, tags, meta) in the service definition",
        ),
    }
}

/// Waits (blocking queries, bounded by `timeout`) until the catalog lists `id` on `node`
/// (`present`) or no longer does.
async fn wait_catalog(
    client: &SharedClient,
    name: &str,
    id: &str,
    node: Option<&str>,
    present: bool,
    timeout: Duration,
) -> Result<(), String> {
    let until = Instant::now() + timeout;
    let base = format!("/v1/catalog/service/{}", urlencode(name));
    let mut index: Option<String> = None;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(if present {
                "the catalog never listed it".into()
            } else {
                "the catalog still lists it".into()
            });
        }
        // The blocking wait must end before the request's own timeout.
        let wait_ms = (left.min(client.timeout.mul_f32(0.6))).as_millis().max(1);
        let path = match &index {
            Some(i) => format!("{base}?index={i}&wait={wait_ms}ms"),
            None => base.clone(),
        };
        let reply = client.get(&path).await.map_err(|f| format!("GET {path}: {}", f.describe(client.timeout)))?;
        if reply.status != 200 {
            return Err(format!("GET {path} answered {} \"{}\"", reply.status, reply.snippet()));
        }
        let list: Vec<Value> = reply.json().map_err(|e| format!("GET {path}: {e}"))?;
        let listed = list.iter().any(|e| {
            e.get("ServiceID").and_then(Value::as_str) == Some(id)
                && node.is_none_or(|n| e.get("Node").and_then(Value::as_str) == Some(n))
        });
        if listed == present {
            return Ok(());
        }
        let next = reply.header("x-consul-index");
        if next.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        index = next;
    }
}

async fn cleanup(client: &SharedClient, id: &str, name: &str, node: Option<&str>, timeout: Duration) -> CheckResult {
    let path = format!("/v1/agent/service/deregister/{}", urlencode(id));
    let reply = client.put_json(&path, None).await;
    match &reply {
        Ok(r) if r.status == 200 => {
            pending().retain(|p| p.id != id);
            match wait_catalog(client, name, id, node, false, timeout).await {
                Ok(()) => CheckResult::pass(
                    "probe.cleanup",
                    format!("probe {id} deregistered and gone from the catalog: nothing is left behind"),
                ),
                Err(why) => leftover(
                    id,
                    &format!("deregistered on the agent, but {why}: anti-entropy cannot sync the removal"),
                    client,
                ),
            }
        }
        Ok(r) => leftover(id, &format!("PUT {path} answered {} \"{}\"", r.status, r.snippet()), client),
        Err(f) => leftover(id, &format!("PUT {path}: {}", f.describe(timeout)), client),
    }
}

fn leftover(id: &str, why: &str, client: &SharedClient) -> CheckResult {
    CheckResult::finding(
        codes::PRB_LEFTOVER,
        "probe.cleanup",
        format!("probe {id} may be left behind: {why}"),
        format!(
            "remove it: consul services deregister -id {id} (against the same agent), or curl -X PUT {}; while the agent runs it also removes it by itself within about 100 s of registration (its check stays critical: the {PROBE_TTL} TTL expires, then DeregisterCriticalServiceAfter {PROBE_REAP_AFTER}, then the agent's next 30 s reaper pass)",
            client.url(&format!("/v1/agent/service/deregister/{id}"))
        ),
    )
    .with("leftover_id", id.to_string())
}

/// Deregisters every probe still pending (a run cut short by the deadline or Ctrl-C); one
/// result per probe.
pub async fn cleanup_pending(timeout: Duration) -> Vec<CheckResult> {
    let list: Vec<Pending> = std::mem::take(&mut *pending());
    let mut out = Vec::new();
    for p in list {
        let bounded = tokio::time::timeout(timeout * 3, cleanup(&p.client, &p.id, &p.name, None, timeout)).await;
        let mut r = bounded.unwrap_or_else(|_| leftover(&p.id, "the cleanup did not finish in time", &p.client));
        r.stage = "probe";
        r.message = format!("run cut short: {}", r.message);
        out.push(r);
    }
    out
}

fn random_hex() -> String {
    use std::io::Read;
    let mut buf = [0u8; 6];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).is_ok();
    if !ok {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let mixed = t ^ (u128::from(std::process::id()) << 64);
        buf.copy_from_slice(&mixed.to_le_bytes()[..6]);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{read_service, Form, Origin};

    #[test]
    fn probe_body_keeps_the_shape_and_marks_itself() {
        let def = read_service(
            json!({"Name": "web", "Tags": ["v1"], "Meta": {"team": "a"}, "Port": 8080, "Address": "10.0.0.5"})
                .as_object()
                .unwrap(),
            Form::Api,
            Origin::Flags,
        );
        let b = body_for(&def, "web", "consul-doctor-probe-abc");
        assert_eq!(b["Meta"]["consul_doctor"], "probe");
        assert_eq!(b["Meta"]["team"], "a");
        assert_eq!(b["Port"], 8080);
        assert_eq!(b["Address"], "10.0.0.5");
        assert_eq!(b["Check"]["Status"], "critical");
        assert!(random_hex().len() == 12 && random_hex() != random_hex());
    }

    #[test]
    fn refused_writes_and_rejected_bodies() {
        let reply = |status: u16, body: &str| {
            Ok(Reply { status, headers: Default::default(), body: body.as_bytes().to_vec(), elapsed: Duration::ZERO })
        };
        let t = Duration::from_secs(1);
        assert_eq!(judge_register("p", "web", &reply(403, "Access is restricted"), t).code, Some("PRB-001"));
        assert_eq!(judge_register("p", "web", &reply(400, "Invalid service address"), t).code, Some("PRB-001"));
        assert_eq!(judge_register("p", "web", &reply(403, "Permission denied"), t).code, Some("ACL-006"));
        assert_eq!(judge_register("p", "web", &reply(200, ""), t).status, Status::Pass);
    }
}
