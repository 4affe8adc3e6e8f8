//! acl stage: are ACLs enabled, and is the token valid? `GET /v1/acl/token/self` answers 401 when
//! ACLs are off, 403 "ACL not found" for unknown, deleted and expired tokens alike (1.15+: 404),
//! and the token's details otherwise. Without a token, the agent's default policy decides whether
//! anonymous requests can do anything; it is read from the agent or probed with
//! `/v1/internal/acl/authorize` (read-only).

use crate::inputs::Access;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::codes;
use crate::consul::{HttpFailure, Reply};
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::CheckResult;

pub const CHECKS: &[&str] = &["acl.token", "acl.service"];

pub const ANONYMOUS_ACCESSOR: &str = "00000000-0000-0000-0000-000000000002";

/// How long before expiry a token is reported.
pub const EXPIRY_WARNING_SECS: i64 = 24 * 3600;

/// The token's own read, asked ahead of the stage (`pipeline::Early`).
pub fn ask_early(ctx: &Ctx<'_>) {
    super::early_get(ctx, "/v1/acl/token/self".to_string());
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let (Some(client), Some(conn)) = (ctx.client(), ctx.conn()) else {
            return vec![CheckResult::skipped("acl.token", "no API client")];
        };
        let reply = super::get(ctx, &client, "/v1/acl/token/self").await;
        let origin = conn.token_origin.clone();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let mut result = match judge_token_self(&reply, origin.as_deref(), now, client.timeout) {
            Judged::Done(r) => r,
            Judged::NeedDefaultPolicy => {
                let known = {
                    let f = ctx.facts();
                    f.default_acl_policy.clone().or_else(|| f.agent.as_ref().and_then(|a| a.acl_default_policy.clone()))
                };
                let policy = match known {
                    Some(p) => DefaultPolicy::Known(p),
                    None => probe_anonymous(&client).await,
                };
                let names: Vec<String> =
                    ctx.facts().services.iter().map(|s| s.def.display_name().to_string()).collect();
                judge_no_token(&policy, &names, &ctx.inputs.access)
            }
        };
        result = result.with("request", format!("GET {}", client.url("/v1/acl/token/self")));
        if let Ok(r) = &reply {
            result.elapsed_ms = super::ms(r.elapsed);
        }
        let acls_off = result.status == crate::report::Status::Pass && result.message.starts_with("ACLs are disabled");
        let blocked = (result.status == crate::report::Status::Fail).then_some(result.code).flatten();
        let token_desc = match (&origin, result.evidence.get("accessor_id")) {
            (Some(o), Some(a)) => format!("the token from {o} (AccessorID {a})"),
            (Some(o), None) => format!("the token from {o}"),
            (None, _) => "the anonymous token (no token given)".to_string(),
        };
        let services = ctx.facts().services.clone();
        let mut out = vec![result];
        if services.is_empty() {
            out.push(super::no_service("acl.service"));
        } else if let Some(code) = blocked {
            out.push(CheckResult::blocked("acl.service", code));
        } else if acls_off {
            ctx.facts().visibility = Some(Visibility::all());
            for svc in &services {
                out.push(super::service_gate(svc, "acl.service").unwrap_or_else(|| {
                    CheckResult::pass(
                        "acl.service",
                        format!("{}: ACLs are disabled, any token may register it", svc.def.label),
                    )
                }));
            }
        } else {
            let node = ctx.facts().agent.as_ref().map(|a| a.node.clone());
            let caller = Caller {
                desc: token_desc.clone(),
                accessor: out[0].evidence.get("accessor_id").cloned(),
                agent_version: ctx.facts().agent.as_ref().map(|a| a.version.clone()),
                agent_addr: conn.display.clone(),
            };
            let (results, seen, reads) = check_services(&client, &services, &caller, node.as_deref()).await;
            out.extend(results);
            ctx.facts().visibility = Some(seen);
            ctx.facts().default_read = reads;
        }
        out
    })
}

/// Who asks, for messages and fixes with the real values.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// "the token from env CONSUL_HTTP_TOKEN (AccessorID …)".
    pub desc: String,
    pub accessor: Option<String>,
    /// The agent's version, when `/v1/agent/self` was readable: Consul's wording depends on it.
    pub agent_version: Option<String>,
    pub agent_addr: String,
}

impl Caller {
    /// Consul's 403 text for a missing permission, as this agent words it (the facts table);
    /// when the wording of this version is not known, the form every version starts with.
    pub fn denied_text(&self, resource: &str, access: &str, name: &str) -> String {
        let version = self.agent_version.as_deref().and_then(crate::consul_facts::ConsulVersion::parse);
        crate::consul_facts::permission_denied_text(
            version.as_ref(),
            self.accessor.as_deref(),
            resource,
            access,
            name,
        )
        .unwrap_or_else(|| format!("Permission denied (the exact wording is not judged for this version; {resource}:{access} on {name} is missing)"))
    }
}

/// What the caller's token may read, so later checks never mistake an ACL-filtered answer for
/// absence: Consul drops catalog entries of nodes and services the token may not read, silently
/// ("dropping node from result due to ACLs" in the agent log).
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    /// Services whose name the token may not read (`service:read`; write implies read).
    pub hidden_services: Vec<String>,
    /// The token may not read this agent's own node (`node:read` on it).
    pub local_node_hidden: bool,
    /// The token may not read every node (`node_prefix "" { policy = "read" }`).
    pub some_nodes_hidden: bool,
}

impl Visibility {
    /// ACLs off: everything can be seen.
    pub fn all() -> Visibility {
        Visibility::default()
    }

    /// Why catalog lists of `name` may be missing entries, if they may.
    pub fn filtered(&self, name: &str, local_only: bool) -> Option<String> {
        let mut why = Vec::new();
        if self.hidden_services.iter().any(|s| s == name) {
            why.push(format!("service:read on {name:?}"));
        }
        if self.local_node_hidden {
            why.push("node:read on this agent's node".to_string());
        } else if !local_only && self.some_nodes_hidden {
            why.push("node:read on every node (node_prefix \"\")".to_string());
        }
        (!why.is_empty()).then(|| {
            format!(
                "the catalog answer is filtered by ACLs: the token lacks {}, and Consul drops what it may not read without saying so",
                why.join(" and ")
            )
        })
    }

    /// The policy rules that would let the doctor see, for a fix line.
    pub fn rules(&self, name: &str, node: Option<&str>) -> String {
        let mut rules = Vec::new();
        if self.hidden_services.iter().any(|s| s == name) {
            rules.push(format!("service \"{name}\" {{ policy = \"read\" }}"));
        }
        if self.local_node_hidden || self.some_nodes_hidden {
            match node {
                Some(n) if !self.some_nodes_hidden => rules.push(format!("node \"{n}\" {{ policy = \"read\" }}")),
                _ => rules.push("node_prefix \"\" { policy = \"read\" }".to_string()),
            }
        }
        rules.join(" ")
    }
}

/// The permissions one service needs, for `/v1/internal/acl/authorize`.
pub fn needed(def: &crate::service::ServiceDef) -> Vec<(String, &'static str)> {
    let name = def.display_name().to_string();
    let mut v = vec![(name.clone(), "write")];
    if def.sidecar {
        v.push((format!("{name}-sidecar-proxy"), "write"));
    }
    v
}

async fn check_services(
    client: &crate::consul::ConsulClient,
    services: &[super::Svc],
    caller: &Caller,
    node: Option<&str>,
) -> (Vec<CheckResult>, Visibility, Vec<(String, bool)>) {
    let mut out = Vec::new();
    let mut reads = Vec::new();
    // What the caller's own token may read (the doctor's later lists use it), asked once.
    let mut seen = Visibility::default();
    let mut questions = vec![json!({"Resource": "node", "Segment": "", "Access": "read"})];
    if let Some(n) = node {
        questions.push(json!({"Resource": "node", "Segment": n, "Access": "read"}));
    }
    let names: Vec<&str> = services.iter().map(|s| s.def.display_name()).collect();
    questions.extend(names.iter().map(|n| json!({"Resource": "service", "Segment": n, "Access": "read"})));
    let allowed: Option<Vec<bool>> =
        match client.post_json("/v1/internal/acl/authorize", &Value::Array(questions)).await {
            Ok(r) if r.status == 200 => r
                .json::<Vec<Value>>()
                .ok()
                .map(|items| items.iter().map(|i| i.get("Allow").and_then(Value::as_bool) == Some(true)).collect()),
            _ => None,
        };
    match allowed {
        Some(a) if a.len() == 1 + usize::from(node.is_some()) + names.len() => {
            seen.some_nodes_hidden = !a[0];
            let offset = 1 + usize::from(node.is_some());
            seen.local_node_hidden = if node.is_some() { !a[1] } else { !a[0] };
            seen.hidden_services =
                names.iter().zip(&a[offset..]).filter(|(_, ok)| !**ok).map(|(n, _)| n.to_string()).collect();
        }
        // Unknown: assume the worst, so no absence is concluded from a list that may be filtered.
        _ => {
            seen.some_nodes_hidden = true;
            seen.local_node_hidden = true;
            seen.hidden_services = names.iter().map(|n| n.to_string()).collect();
        }
    }
    let peer = client.scope().peer;
    for svc in services {
        if let Some(skip) = super::service_gate(svc, "acl.service") {
            out.push(skip);
            continue;
        }
        let def = &svc.def;
        // An imported service is registered in the peer cluster: a consumer here needs read.
        if let Some(peer) = &peer {
            let name = def.display_name();
            let may_read = !seen.hidden_services.iter().any(|h| h == name);
            out.push(match may_read {
                true => CheckResult::pass(
                    "acl.service",
                    format!("{}: imported from peer {peer:?}: {} may read it", def.label, caller.desc),
                ),
                false => CheckResult::finding(
                    codes::ACL_NO_IMPORTED_READ,
                    "acl.service",
                    format!(
                        "{}: imported from peer {peer:?}, but {} may not read {name:?} here (service:read): health and DNS answers for it are filtered to nothing",
                        def.label, caller.desc
                    ),
                    format!(
                        "give the consumer's token read access to the imported service: consul acl policy create -name {name}-read -rules 'service \"{name}\" {{ policy = \"read\" }}', then consul acl token update -id <AccessorID> -policy-name {name}-read -merge-policies"
                    ),
                ),
            });
            continue;
        }
        let wanted = needed(def);
        let body = Value::Array(
            wanted
                .iter()
                .map(|(seg, access)| json!({"Resource": "service", "Segment": seg, "Access": access}))
                .collect(),
        );
        let whose = match &def.token {
            Some(_) => {
                Caller { desc: "the token in the service definition".to_string(), accessor: None, ..caller.clone() }
            }
            None => caller.clone(),
        };
        // DNS and token-less clients use the agent's default token (an empty X-Consul-Token):
        // can they find the service? Both questions are read-only; ask them at once.
        let read = json!([{"Resource": "service", "Segment": def.display_name(), "Access": "read"}]);
        let empty = crate::secret::Secret::new("");
        let (reply, read_reply) = tokio::join!(
            client.post_json_as("/v1/internal/acl/authorize", &body, def.token.as_ref()),
            client.post_json_as("/v1/internal/acl/authorize", &read, Some(&empty)),
        );
        let verdict = judge_authorize(def, &wanted, &whose, &reply, client.timeout);
        let writable = verdict.status == crate::report::Status::Pass;
        out.push(verdict);
        if writable {
            if let Some(r) = judge_discoverable(def, &read_reply) {
                reads.push((def.display_name().to_string(), r.code.is_none()));
                out.push(r);
            }
        }
    }
    (out, seen, reads)
}

/// Judges the authorize answer for one service.
pub fn judge_authorize(
    def: &crate::service::ServiceDef,
    wanted: &[(String, &'static str)],
    caller: &Caller,
    reply: &Result<Reply, HttpFailure>,
    timeout: std::time::Duration,
) -> CheckResult {
    let l = &def.label;
    let name = def.display_name();
    let whose = caller.desc.as_str();
    if let Ok(r) = reply {
        let body_text = r.text();
        if r.status == 403 && body_text.contains("ACL not found") {
            return CheckResult::finding(
                codes::ACL_TOKEN_NOT_FOUND,
                "acl.service",
                format!("{l}: {whose} is not known to the cluster (403 \"ACL not found\")"),
                "replace the token in the definition with a valid one, or drop it to use the caller's token",
            );
        }
        if r.status == 403 {
            if let Some(d) = parse_permission_denied(&body_text) {
                let on = d.segment.unwrap_or_default();
                return missing_write(
                    l,
                    name,
                    caller,
                    &format!("the agent answered: {body_text} ({}:{} on {on})", d.resource, d.access),
                );
            }
        }
    }
    let items: Vec<Value> = match super::decode("POST /v1/internal/acl/authorize", reply, timeout, true) {
        super::Answer::Ok(items) => items,
        super::Answer::NotJudged(why) => {
            return CheckResult::not_judged(
                "acl.service",
                format!("{l}: could not verify service:write ({why}; the endpoint exists since Consul 1.7); check the token's policies with consul acl token read -self"),
            )
        }
        super::Answer::Unusable(what) => return super::unusable(codes::ACL_AUTHORIZE_UNUSABLE, "acl.service", format!("{l}: {what}")),
    };
    let allow = |i: usize| items.get(i).and_then(|v| v.get("Allow")).and_then(Value::as_bool);
    if items.len() != wanted.len() || (0..wanted.len()).any(|i| allow(i).is_none()) {
        return super::unusable(
            codes::ACL_AUTHORIZE_UNUSABLE,
            "acl.service",
            format!("{l}: POST /v1/internal/acl/authorize answered {} item(s) without the expected \"Allow\" flags for {} question(s)", items.len(), wanted.len()),
        );
    }
    let denied: Vec<String> = wanted
        .iter()
        .enumerate()
        .filter(|(i, (_, access))| *access == "write" && allow(*i) != Some(true))
        .map(|(_, (seg, _))| seg.clone())
        .collect();
    if !denied.is_empty() {
        let detail = format!(
            "service:write denied on {}",
            denied.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(", ")
        );
        return missing_write(l, name, caller, &detail);
    }
    CheckResult::pass("acl.service", format!("{l}: {whose} may register {name:?}"))
}

/// Whether the agent's default token (DNS, token-less clients) may read the service.
pub fn judge_discoverable(def: &crate::service::ServiceDef, reply: &Result<Reply, HttpFailure>) -> Option<CheckResult> {
    let r = reply.as_ref().ok().filter(|r| r.status == 200)?;
    let items: Vec<Value> = r.json().ok()?;
    let allowed = items.first()?.get("Allow")?.as_bool()?;
    let name = def.display_name();
    if allowed {
        return Some(CheckResult::pass(
            "acl.service",
            format!(
                "{}: the agent's default token may read {name:?}, so DNS and token-less clients can find it",
                def.label
            ),
        ));
    }
    Some(CheckResult::finding(
        codes::ACL_NO_SERVICE_READ,
        "acl.service",
        format!(
            "{}: it can be registered, but the agent's default token (used by DNS and by requests without a token) may not read {name:?}: Consul DNS answers NXDOMAIN for it and token-less health queries return []",
            def.label
        ),
        "give the agents a default token that can read services: consul acl set-agent-token default <token with service_prefix \"\" { policy = \"read\" }>, or make every consumer send its own token",
    ))
}

fn missing_write(l: &str, name: &str, caller: &Caller, detail: &str) -> CheckResult {
    let whose = &caller.desc;
    let denied = caller.denied_text("service", "write", name);
    let token = match &caller.accessor {
        Some(acc) => format!("consul acl token update -id {acc} -policy-name {name}-register -merge-policies"),
        None if whose.contains("service definition") => format!("consul acl token update -id <AccessorID of the definition's token: consul acl token read -self with that token> -policy-name {name}-register -merge-policies"),
        None => format!("consul acl token create -description \"{name} registration\" -policy-name {name}-register (then use its SecretID)"),
    };
    CheckResult::finding(
        codes::ACL_NO_SERVICE_WRITE,
        "acl.service",
        format!("{l}: {whose} may not register {name:?} ({detail}); Consul answers 403 \"{denied}\""),
        format!(
            "grant it (as an operator whose token has acl:write): consul acl policy create -name {name}-register -rules 'service \"{name}\" {{ policy = \"write\" }}', then {token} (or create a token with -service-identity {name})",
        ),
    )
    .with("denied", denied)
}

/// A "Permission denied" text from any Consul version, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub accessor: Option<String>,
    pub anonymous: bool,
    pub resource: String,
    pub access: String,
    pub segment: Option<String>,
}

/// Understands the 1.12+ form (`token with AccessorID '...' lacks permission 'service:write' on
/// "web"`, or the anonymous variant) and the 1.8-1.11 form (`Missing service:write on web`).
pub fn parse_permission_denied(text: &str) -> Option<Denied> {
    if !text.contains("Permission denied") {
        return None;
    }
    if let Some(pos) = text.find("lacks permission '") {
        let rest = &text[pos + "lacks permission '".len()..];
        let (perm, after) = rest.split_once('\'')?;
        let (resource, access) = perm.split_once(':')?;
        let segment = after.split_once(" on \"").and_then(|(_, s)| s.split_once('"')).map(|(s, _)| s.to_string());
        let accessor =
            text.split_once("AccessorID '").and_then(|(_, s)| s.split_once('\'')).map(|(a, _)| a.to_string());
        return Some(Denied {
            accessor,
            anonymous: text.contains("anonymous token"),
            resource: resource.into(),
            access: access.into(),
            segment,
        });
    }
    if let Some(pos) = text.find("Missing ") {
        let rest = &text[pos + "Missing ".len()..];
        let (perm, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let (resource, access) = perm.split_once(':')?;
        let segment = after.strip_prefix("on ").map(|s| s.split_whitespace().next().unwrap_or("").to_string());
        return Some(Denied {
            accessor: None,
            anonymous: false,
            resource: resource.into(),
            access: access.into(),
            segment,
        });
    }
    Some(Denied { accessor: None, anonymous: false, resource: String::new(), access: String::new(), segment: None })
}

pub enum Judged {
    Done(CheckResult),
    /// No token was sent and ACLs are on: the default policy decides.
    NeedDefaultPolicy,
}

pub fn judge_token_self(
    reply: &Result<Reply, HttpFailure>,
    origin: Option<&str>,
    now: i64,
    timeout: std::time::Duration,
) -> Judged {
    let r = match reply {
        Ok(r) => r,
        Err(f) => {
            return Judged::Done(CheckResult::finding(
                codes::ACL_LOOKUP_FAILED,
                "acl.token",
                format!("GET /v1/acl/token/self: {}", f.describe(timeout)),
                "check the agent's connectivity to the servers and retry",
            ))
        }
    };
    let body = r.text();
    if r.status == 401 || body.contains("ACL support disabled") {
        return Judged::Done(CheckResult::pass("acl.token", "ACLs are disabled on this agent: no token needed"));
    }
    if body.contains("must be bootstrapped") {
        return Judged::Done(CheckResult::finding(
            codes::ACL_NOT_BOOTSTRAPPED,
            "acl.token",
            format!("the ACL system is not bootstrapped: \"{body}\""),
            "bootstrap it once on a server: consul acl bootstrap (store the management token safely), then create policies and tokens for services",
        ));
    }
    if crate::consul_facts::is_unknown_token(r.status, &body).is_some() {
        return match origin {
            None => Judged::NeedDefaultPolicy,
            Some(origin) => Judged::Done(CheckResult::finding(
                codes::ACL_TOKEN_NOT_FOUND,
                "acl.token",
                format!("the token from {origin} is not known to the cluster: {} \"{body}\" (unknown, deleted or expired tokens all answer this way)", r.status),
                format!("check the token with: consul acl token read -self (same token), then create a new one for the service: consul acl token create -description \"my service\" -policy-name <policy>, and put its SecretID in {origin}"),
            )),
        };
    }
    if r.status == 200 {
        let v: Value = match crate::jsonclip::from_slice(&r.body) {
            Ok(v) => v,
            Err(e) => {
                return Judged::Done(CheckResult::finding(
                    codes::ACL_LOOKUP_FAILED,
                    "acl.token",
                    format!("/v1/acl/token/self returned invalid JSON: {e}"),
                    "query the agent directly with curl and check for a proxy rewriting answers",
                ))
            }
        };
        if !v.get("AccessorID").is_some_and(Value::is_string) {
            return Judged::Done(CheckResult::finding(
                codes::ACL_LOOKUP_FAILED,
                "acl.token",
                format!("/v1/acl/token/self returned JSON that is not a token (no AccessorID): {}", r.snippet()),
                "query the agent directly with curl and check for a proxy rewriting answers",
            ));
        }
        return Judged::Done(judge_token(&v, origin, now));
    }
    Judged::Done(CheckResult::finding(
        codes::ACL_LOOKUP_FAILED,
        "acl.token",
        format!("GET /v1/acl/token/self: {} \"{}\"", r.status, r.snippet()),
        "check the agent log (consul monitor) and the servers' health, then retry",
    ))
}

fn judge_token(v: &Value, origin: Option<&str>, now: i64) -> CheckResult {
    let accessor = v.get("AccessorID").and_then(Value::as_str).unwrap_or("?").to_string();
    let description = v.get("Description").and_then(Value::as_str).unwrap_or("").to_string();
    let names = |key: &str, field: &str| -> Vec<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p.get(field).and_then(Value::as_str).map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut grants = names("Policies", "Name");
    grants.extend(names("Roles", "Name").into_iter().map(|r| format!("role {r}")));
    // Identities and templated policies (1.17+) grant permissions too: a token with only those
    // is not a token with "no policies".
    for (key, field) in crate::consul_facts::TOKEN_GRANT_FIELDS {
        let what = match *key {
            "ServiceIdentities" => "service identity",
            "NodeIdentities" => "node identity",
            _ => "templated policy",
        };
        grants.extend(names(key, field).into_iter().map(|s| format!("{what} {s}")));
    }
    let whose = match origin {
        Some(o) => format!("token from {o}"),
        None => "no token given; the agent's default token".into(),
    };
    let granted = if grants.is_empty() { "no policies".to_string() } else { grants.join(", ") };
    let desc = if description.is_empty() { String::new() } else { format!(" \"{description}\"") };
    let base = format!("{whose}: AccessorID {accessor}{desc}, {granted}");
    if let Some(exp) = v.get("ExpirationTime").and_then(Value::as_str) {
        if let Some(at) = parse_rfc3339(exp) {
            let left = at - now;
            if left <= EXPIRY_WARNING_SECS {
                return CheckResult::finding(
                    codes::ACL_EXPIRES_SOON,
                    "acl.token",
                    format!("{base}; it expires at {exp} ({}): after that the agent can no longer sync services registered with it", human_secs(left)),
                    "create a longer-lived token for the service (consul acl token create -policy-name <policy>) or set acl.tokens.agent / the service's token to one that does not expire",
                )
                .with("accessor_id", accessor)
                .with("expiration_time", exp.to_string());
            }
        }
    }
    CheckResult::pass("acl.token", base).with("accessor_id", accessor)
}

fn human_secs(s: i64) -> String {
    if s <= 0 {
        return "already expired".into();
    }
    if s < 3600 {
        format!("in {} min", s / 60)
    } else {
        format!("in {} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// The agent's default ACL policy, as far as it can be learned without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultPolicy {
    Known(String),
    /// Probed: whether the anonymous token may read a service.
    AnonymousCanRead(bool),
    Unknown(String),
}

async fn probe_anonymous(client: &crate::consul::ConsulClient) -> DefaultPolicy {
    let body = json!([
        {"Resource": "service", "Segment": "consul-doctor-probe", "Access": "read"},
        {"Resource": "node", "Segment": "consul-doctor-probe", "Access": "read"}
    ]);
    match client.post_json("/v1/internal/acl/authorize", &body).await {
        Ok(r) if r.status == 200 => match r.json::<Vec<Value>>() {
            Ok(items) => DefaultPolicy::AnonymousCanRead(
                items.iter().any(|i| i.get("Allow").and_then(Value::as_bool) == Some(true)),
            ),
            Err(e) => DefaultPolicy::Unknown(format!("unexpected authorize answer: {e}")),
        },
        Ok(r) => DefaultPolicy::Unknown(format!("/v1/internal/acl/authorize answered {} {}", r.status, r.snippet())),
        Err(e) => DefaultPolicy::Unknown(e.describe(client.timeout)),
    }
}

pub fn judge_no_token(policy: &DefaultPolicy, services: &[String], access: &Access) -> CheckResult {
    let deny = || {
        if let Some(read) = read_only_no_token(access) {
            return read;
        }
        let (fails, identity) = match services.first() {
            Some(name) => (
                format!(
                    "so registering {name:?} fails with 403 \"Permission denied: Missing service:write on {name}\""
                ),
                format!("consul acl token create -description \"{name} service\" -service-identity {name}"),
            ),
            None => (
                "so every registration fails with 403 \"Permission denied: Missing service:write on …\"".to_string(),
                "consul acl token create -description \"web service\" -service-identity web (with your service's name)"
                    .to_string(),
            ),
        };
        CheckResult::finding(
            codes::ACL_NO_TOKEN,
            "acl.token",
            format!(
                "no ACL token was given and ACLs deny by default: requests run as the anonymous token (AccessorID {ANONYMOUS_ACCESSOR}), {fails}"
            ),
            format!("give the service a token (an operator whose token has acl:write runs): {identity}, then pass its SecretID with --token-file / CONSUL_HTTP_TOKEN_FILE (or --token / CONSUL_HTTP_TOKEN)"),
        )
        .with("accessor_id", ANONYMOUS_ACCESSOR)
    };
    match policy {
        DefaultPolicy::Known(p) if p == "deny" => deny().with("default_policy", "deny"),
        DefaultPolicy::AnonymousCanRead(false) => {
            deny().with("default_policy", "deny (anonymous token may not even read)")
        }
        DefaultPolicy::Known(p) => CheckResult::pass(
            "acl.token",
            format!("ACLs are enabled with default policy {p}: no token given, anonymous requests are allowed"),
        ),
        DefaultPolicy::AnonymousCanRead(true) => {
            CheckResult::pass("acl.token", "ACLs are enabled; no token given and the anonymous token may read services")
        }
        DefaultPolicy::Unknown(why) => CheckResult::not_judged(
            "acl.token",
            format!("ACLs are enabled and no token was given; the default policy could not be determined ({why})"),
        ),
    }
}

/// ACL-001 for a command that only reads (`wait`, `scan`): what it cannot see without a token,
/// and a read-only token to create, never a write grant.
fn read_only_no_token(access: &Access) -> Option<CheckResult> {
    let (sees, rules, name) = match access {
        Access::Register => return None,
        Access::ReadService(service) => (
            format!("so the health of {service:?} reads as empty, as if no instance were registered"),
            format!("service \"{service}\" {{ policy = \"read\" }} node_prefix \"\" {{ policy = \"read\" }}"),
            format!("{service}-read"),
        ),
        Access::ReadCatalog => (
            "so the catalog reads as empty or partial".to_string(),
            "service_prefix \"\" { policy = \"read\" } node_prefix \"\" { policy = \"read\" }".to_string(),
            "catalog-read".to_string(),
        ),
    };
    Some(
        CheckResult::finding(
            codes::ACL_NO_TOKEN,
            "acl.token",
            format!(
                "no ACL token was given and ACLs deny by default: requests run as the anonymous token (AccessorID {ANONYMOUS_ACCESSOR}), which may not read services or nodes, {sees}"
            ),
            format!(
                "give it a read-only token (an operator whose token has acl:write runs): consul acl policy create -name {name} -rules '{rules}', then consul acl token create -description \"{name}\" -policy-name {name}, and pass its SecretID with --token-file / CONSUL_HTTP_TOKEN_FILE (service:read and node:read suffice; no write)"
            ),
        )
        .with("accessor_id", ANONYMOUS_ACCESSOR)
        .with("needed", rules),
    )
}

/// Parses `2026-11-27T10:00:00Z`, `…T10:00:00.123456Z` or `…T10:00:00+01:00` to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, mo, da): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => return None,
    };
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let sec: i64 = t.next()?.split('.').next()?.parse().ok()?;
    let off = match offset {
        "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - off)
}

#[cfg(test)]
mod tests {

    #[test]
    fn denied_text_follows_the_agent_version() {
        let mut c = Caller { accessor: Some("abc".into()), agent_version: Some("1.8.7".into()), ..Caller::default() };
        assert_eq!(c.denied_text("service", "write", "web"), "Permission denied: Missing service:write on web");
        c.agent_version = Some("1.15.2".into());
        assert_eq!(
            c.denied_text("service", "write", "web"),
            "Permission denied: token with AccessorID 'abc' lacks permission 'service:write' on \"web\""
        );
        c.accessor = None;
        c.agent_version = Some("2.0.3".into());
        assert!(c
            .denied_text("service", "write", "web")
            .starts_with("Permission denied: anonymous token lacks permission 'service:write' on \"web\""));
        c.agent_version = None;
        assert!(c.denied_text("service", "write", "web").contains("not judged for this version"));
    }

    use super::*;

    #[test]
    fn parses_consul_expiration_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-27T10:00:00Z"), Some(1_795_773_600));
        assert_eq!(parse_rfc3339("2026-11-27T10:00:00.123456789Z"), Some(1_795_773_600));
        assert_eq!(parse_rfc3339("2026-11-27T11:00:00+01:00"), Some(1_795_773_600));
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn understands_permission_denied_texts_of_every_version() {
        let old = parse_permission_denied("Permission denied: Missing service:write on web").unwrap();
        assert_eq!(
            (old.resource.as_str(), old.access.as_str(), old.segment.as_deref()),
            ("service", "write", Some("web"))
        );
        let new = parse_permission_denied(
            "Permission denied: token with AccessorID 'a1b2' lacks permission 'service:write' on \"web\"",
        )
        .unwrap();
        assert_eq!(new.accessor.as_deref(), Some("a1b2"));
        assert_eq!(
            (new.resource.as_str(), new.access.as_str(), new.segment.as_deref()),
            ("service", "write", Some("web"))
        );
        let anon = parse_permission_denied("Permission denied: anonymous token lacks permission 'node:write' on \"n1\". The anonymous token is used implicitly when a request does not specify a token.").unwrap();
        assert!(anon.anonymous);
        assert_eq!(anon.segment.as_deref(), Some("n1"));
        let bare = parse_permission_denied("rpc error making call: Permission denied").unwrap();
        assert_eq!(bare.resource, "");
        assert_eq!(parse_permission_denied("ACL not found"), None);
    }

    #[test]
    fn templated_policies_and_identities_are_grants() {
        // Token shape: api/acl.go (ACLToken.TemplatedPolicies, ACLTemplatedPolicy.TemplateName, 1.17+).
        let v = json!({"AccessorID": "a-2", "Description": "", "Policies": [],
            "TemplatedPolicies": [{"TemplateName": "builtin/service", "TemplateVariables": {"Name": "web"}}]});
        let r = judge_token(&v, Some("env CONSUL_HTTP_TOKEN"), 1_795_773_600);
        assert!(r.message.contains("templated policy builtin/service"), "{}", r.message);
        assert!(!r.message.contains("no policies"), "{}", r.message);
    }

    #[test]
    fn token_expiring_within_a_day_warns() {
        let v = json!({"AccessorID": "a-1", "Description": "web", "Policies": [{"Name": "web"}], "ExpirationTime": "2026-11-27T11:00:00Z"});
        let r = judge_token(&v, Some("env CONSUL_HTTP_TOKEN"), 1_795_773_600);
        assert_eq!(r.code, Some("ACL-004"));
        let r = judge_token(&v, Some("env CONSUL_HTTP_TOKEN"), 1_795_773_600 - 3 * 86_400);
        assert_eq!(r.code, None);
    }
}
