//! Reads the catalog for a scan with as few requests as Consul allows, never more than two in
//! flight, backing off when the agent answers 429.
//!
//! The whole catalog comes from `GET /v1/internal/ui/nodes` (every node with its services and
//! checks, one request; what the Consul UI itself reads) beside `GET /v1/agent/members`. When
//! that endpoint is refused (blocked by `http_config`, missing on another version) and for
//! `--service`, it falls back to `GET /v1/catalog/services` and one
//! `GET /v1/health/service/<name>` per service. Catalog-sized answers are decoded while they
//! stream in. What the token may not see is asked of `POST /v1/internal/acl/authorize`, because
//! Consul 1.8 filters list answers silently.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::codes;
use crate::consul::{dc_query, urlencode, ConsulClient, Reply};
use crate::report::CheckResult;
use crate::scan::judge::Finding;
use crate::scan::model::{Builder, Catalog, HealthEntry, Membership, UiNodesInto, WireMember};

/// A segment no rule names, to learn what the token may read by default.
const PROBE: &str = "consul-doctor-scan-probe-7f3c";

pub struct GatherOptions {
    pub datacenter: Option<String>,
    /// The member list describes the scanned datacenter (it is the agent's own).
    pub same_dc: bool,
    pub wanted: Vec<String>,
    /// The agent runs Consul Enterprise: without --namespace/--partition, every namespace (and,
    /// from 1.11, every partition) the token can list is scanned.
    pub enterprise: Option<Enterprise>,
}

/// What an Enterprise agent can be asked for enumeration (consul_facts).
#[derive(Debug, Clone, Copy)]
pub struct Enterprise {
    pub partitions: bool,
}

#[derive(serde::Deserialize)]
struct Named {
    #[serde(rename = "Name")]
    name: String,
}

/// The namespaces (and partitions) to read, as query suffixes (`ns=a&partition=p`); `[""]`
/// when the run is not enumerating (OSS, or a scope given). What cannot be listed is named in
/// `problems`: the scan then says exactly what it left out. Shapes: `GET /v1/partitions` and
/// `GET /v1/namespaces` answer lists of objects with `Name` (api/partition.go, api/namespace.go).
async fn spaces(
    client: &ConsulClient,
    o: &GatherOptions,
    problems: &mut Vec<Finding>,
    endpoints: &mut Vec<String>,
) -> Vec<String> {
    let scope = client.scope();
    let Some(ent) = o.enterprise.filter(|_| scope.namespace.is_none()) else {
        return vec![String::new()];
    };
    let partitions: Vec<Option<String>> = if ent.partitions && scope.partition.is_none() {
        endpoints.push("GET /v1/partitions".to_string());
        match get_list::<Vec<Named>>(client, "/v1/partitions").await {
            Ok(list) if !list.is_empty() => list.into_iter().map(|p| Some(p.name)).collect(),
            Ok(_) => vec![None],
            Err(f) => {
                problems.push(unreadable(format!("{}: only the agent's own partition was scanned", f.what)));
                vec![None]
            }
        }
    } else {
        vec![scope.partition.clone()]
    };
    let mut out = Vec::new();
    for p in partitions {
        let pq = p.as_ref().map(|p| format!("partition={}", urlencode(p)));
        let path = match &pq {
            Some(q) => format!("/v1/namespaces?{q}"),
            None => "/v1/namespaces".to_string(),
        };
        endpoints.push(format!("GET {path}"));
        let names = match get_list::<Vec<Named>>(client, &path).await {
            Ok(list) if !list.is_empty() => list.into_iter().map(|n| n.name).collect(),
            Ok(_) => vec!["default".to_string()],
            Err(f) => {
                let part = p.as_deref().map(|p| format!(" of partition {p}")).unwrap_or_default();
                problems.push(unreadable(format!("{}: only namespace default{part} was scanned", f.what)));
                vec!["default".to_string()]
            }
        };
        for ns in names {
            let mut q = format!("ns={}", urlencode(&ns));
            if let Some(pq) = &pq {
                q.push('&');
                q.push_str(pq);
            }
            out.push(q);
        }
    }
    out
}

pub struct Gathered {
    pub catalog: Catalog,
    /// Findings about the scan itself (hidden or unreadable parts of the catalog).
    pub problems: Vec<Finding>,
    /// Endpoints read, in order, with how many times each was asked.
    pub endpoints: Vec<String>,
    /// Nothing was hidden from the token or failed to read.
    pub complete: bool,
}

/// A line on standard error that a terminal redraws; nothing at all elsewhere.
pub struct Progress {
    on: bool,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress { on: enabled && std::io::stderr().is_terminal(), last: std::sync::Mutex::new(None) }
    }

    pub fn show(&self, text: &str) {
        if !self.on {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        let line = crate::render::fit(&format!("consul-doctor scan: {text}"), crate::render::stderr_width() - 1);
        let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
    }

    pub fn bar(&self, what: &str, done: usize, total: usize) {
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width).min(width);
        self.show(&format!("{what} [{}{}] {done}/{total}", "#".repeat(filled), ".".repeat(width - filled)));
    }

    pub fn clear(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// Why an endpoint gave nothing usable.
pub struct Failure {
    pub status: Option<u16>,
    pub what: String,
}

/// Longest pause asked for by a 429 that is honoured; attempts before giving up.
const MAX_PAUSE: Duration = Duration::from_secs(5);
const ATTEMPTS: u32 = 6;

/// The pause before the next attempt after a 429: `Retry-After` seconds when given, else
/// exponential from 250 ms.
pub fn backoff(reply: &Reply, attempt: u32) -> Duration {
    let asked = reply.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
    asked.unwrap_or_else(|| Duration::from_millis(250u64 << attempt.min(4))).min(MAX_PAUSE)
}

/// GETs and decodes a (possibly catalog-sized) JSON answer, retrying after 429s.
pub async fn get_list<T>(client: &ConsulClient, path: &str) -> Result<T, Failure>
where
    T: DeserializeOwned + Send + 'static,
{
    get_list_with(client, path, std::sync::Arc::new(crate::consul::decode_serde::<T>)).await
}

/// [`get_list`] with the caller's own decoder.
pub async fn get_list_with<T>(
    client: &ConsulClient,
    path: &str,
    decode: crate::consul::Decoder<T>,
) -> Result<T, Failure>
where
    T: Send + 'static,
{
    let mut attempt = 0;
    loop {
        match client.get_streamed_with::<T>(path, decode.clone()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err((reply, e))) if reply.status == 200 => {
                return Err(Failure {
                    status: Some(200),
                    what: format!(
                        "GET {path} returned a body that is not the JSON Consul sends ({e}): \"{}\"",
                        reply.snippet()
                    ),
                })
            }
            Ok(Err((reply, _))) if reply.status == 429 && attempt + 1 < ATTEMPTS => {
                let pause = backoff(&reply, attempt);
                crate::log::debug(format!("GET {path} -> 429; retrying in {} ms", pause.as_millis()));
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Ok(Err((reply, _))) => {
                let hint = if reply.status == 429 {
                    format!(" after {ATTEMPTS} attempts with backoff")
                } else {
                    String::new()
                };
                return Err(Failure {
                    status: Some(reply.status),
                    what: format!("GET {path} answered {}{hint} \"{}\"", reply.status, reply.snippet()),
                });
            }
            Err(f) => {
                return Err(Failure { status: None, what: format!("GET {path}: {}", f.describe(client.timeout)) })
            }
        }
    }
}

fn unreadable(what: String) -> Finding {
    Finding::service_wide(
        "",
        CheckResult::finding(
            codes::SCN_UNREADABLE,
            "scan.catalog",
            format!("{what}; the scan could not read this part of the catalog, so it is not reported clean"),
            "run `consul-doctor check` against the same agent to find the cause; query the endpoint by hand (curl -sv) and read the agent log (consul monitor -log-level=debug); raise --timeout for a large catalog on a slow agent",
        ),
    )
}

fn members_unreadable(what: &str) -> Finding {
    Finding::service_wide(
        "",
        CheckResult::finding(
            codes::SCN_MEMBERS_UNREADABLE,
            "scan.membership",
            format!("{what}: gone nodes cannot be told from live ones, so this scan is not complete and --prune removes nothing"),
            "give the token agent:read and node:read (agent_prefix \"\" { policy = \"read\" } and node_prefix \"\" { policy = \"read\" }), or find what blocks GET /v1/agent/members (http_config.block_endpoints, a proxy): curl -sv <agent>/v1/agent/members",
        ),
    )
}

pub async fn gather(client: &ConsulClient, o: &GatherOptions, progress: &Progress) -> Gathered {
    let dcq = dc_query(o.datacenter.as_deref());
    let mut endpoints = Vec::new();
    let mut problems = Vec::new();
    let mut b = Builder::default();

    // What the token cannot see, before reading what it can.
    endpoints.push("POST /v1/internal/acl/authorize".to_string());
    let hidden = visibility(client, &o.wanted).await;

    let members_path = "/v1/agent/members";
    let members = async {
        if !o.same_dc {
            return Err(None);
        }
        get_list::<Vec<WireMember>>(client, members_path).await.map_err(Some)
    };
    let set_members =
        |b: &mut Builder, problems: &mut Vec<Finding>, m: Result<Vec<WireMember>, Option<Failure>>| match m {
            Ok(m) => b.set_members(Some(m)),
            Err(None) => b.set_membership(Membership::OtherDatacenter),
            Err(Some(f)) => {
                problems.push(members_unreadable(&f.what));
                b.set_membership(Membership::Unreadable(f.what));
            }
        };

    let spaces = if o.wanted.is_empty() { spaces(client, o, &mut problems, &mut endpoints).await } else { Vec::new() };
    if let Some((first, more)) = spaces.split_first().filter(|(_, more)| !more.is_empty()) {
        // Enterprise: one UI node list per namespace (and partition) the token can list.
        progress.show("reading the catalog of every namespace (/v1/internal/ui/nodes)…");
        let sep = if dcq.is_empty() { '?' } else { '&' };
        let first_path = format!("/v1/internal/ui/nodes{dcq}{sep}{first}");
        // Each namespace's list is decoded straight into the one catalog, entry by entry as it
        // streams in: no list is ever held decoded.
        let shared = std::sync::Arc::new(std::sync::Mutex::new(std::mem::take(&mut b)));
        let into = {
            let shared = shared.clone();
            std::sync::Arc::new(move |r: &mut (dyn std::io::Read + Send)| {
                let mut b = shared.lock().unwrap_or_else(|p| p.into_inner());
                UiNodesInto::decode_into(&mut b, r)
            }) as crate::consul::Decoder<()>
        };
        let (nodes, members) = tokio::join!(get_list_with(client, &first_path, into.clone()), members);
        if o.same_dc {
            endpoints.push(format!("GET {members_path}"));
        }
        let mut failed = |path: String, nodes: Result<(), Failure>| {
            endpoints.push(format!("GET {path}"));
            if let Err(f) = nodes {
                problems.push(unreadable(f.what));
            }
        };
        failed(first_path, nodes);
        for q in more {
            let path = format!("/v1/internal/ui/nodes{dcq}{sep}{q}");
            let nodes = get_list_with(client, &path, into.clone()).await;
            failed(path, nodes);
        }
        drop(into);
        b = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
        set_members(&mut b, &mut problems, members);
    } else if o.wanted.is_empty() {
        progress.show("reading the catalog (/v1/internal/ui/nodes)…");
        let sep = if dcq.is_empty() { '?' } else { '&' };
        let nodes_path = match spaces.first().filter(|q| !q.is_empty()) {
            Some(q) => format!("/v1/internal/ui/nodes{dcq}{sep}{q}"),
            None => format!("/v1/internal/ui/nodes{dcq}"),
        };
        let (nodes, members) =
            tokio::join!(get_list_with(client, &nodes_path, std::sync::Arc::new(UiNodesInto::decode)), members);
        endpoints.push(format!("GET {nodes_path}"));
        if o.same_dc {
            endpoints.push(format!("GET {members_path}"));
        }
        let nodes = match nodes {
            Ok(UiNodesInto(built)) => {
                b = built;
                Ok(())
            }
            Err(f) => Err(f),
        };
        set_members(&mut b, &mut problems, members);
        match nodes {
            Ok(()) => {}
            Err(f) if matches!(f.status, Some(403) | Some(404) | Some(405)) => {
                crate::log::debug(format!("falling back to one request per service: {}", f.what));
                let services_path = format!("/v1/catalog/services{dcq}");
                endpoints.push(format!("GET {services_path}"));
                match get_list::<BTreeMap<String, Value>>(client, &services_path).await {
                    Ok(names) => {
                        let names: Vec<String> = names.into_keys().collect();
                        per_service(client, &dcq, &names, &mut b, &mut problems, &mut endpoints, progress).await;
                    }
                    Err(f) => problems.push(unreadable(f.what)),
                }
            }
            Err(f) => problems.push(unreadable(f.what)),
        }
    } else {
        set_members(&mut b, &mut problems, members.await);
        if o.same_dc {
            endpoints.push(format!("GET {members_path}"));
        }
        per_service(client, &dcq, &o.wanted, &mut b, &mut problems, &mut endpoints, progress).await;
    }
    progress.clear();
    if b.overflowed() {
        problems.push(unreadable(
            "the catalog's names and IDs pass 4 GiB, more than one scan holds; scan it in parts with --service".into(),
        ));
    }
    let catalog = b.finish();
    if let Some(why) = hidden {
        let services = {
            let mut names: Vec<&str> = catalog.service_tags().map(|(service, _)| service).collect();
            names.sort();
            names.dedup();
            names.len()
        };
        problems.insert(
            0,
            Finding::service_wide(
                "",
                CheckResult::finding(
                    codes::SCN_HIDDEN,
                    "scan.visibility",
                    format!(
                        "{why}; Consul leaves what a token may not read out of every catalog answer without saying so (1.8 sends no X-Consul-Results-Filtered-By-ACLs header), so this scan saw {services} service(s) and {} instance(s) and cannot vouch for the rest",
                        catalog.instance_count()
                    ),
                    "scan with a token that may read the whole catalog, for example one whose policy has service_prefix \"\" { policy = \"read\" } and node_prefix \"\" { policy = \"read\" } (consul acl token create -description scan -policy-name catalog-read), or limit the scan to the services the token may read with --service",
                )
                .with("services_seen", services.to_string())
                .with("instances_seen", catalog.instance_count().to_string()),
            ),
        );
    }
    // 1.11+ agents say when ACLs shortened an answer: then the scan knows, not guesses.
    if client.saw_filtered_results() && !problems.iter().any(|p| p.result.code == Some(codes::SCN_HIDDEN.code)) {
        problems.insert(
            0,
            Finding::service_wide(
                "",
                CheckResult::finding(
                    codes::SCN_HIDDEN,
                    "scan.visibility",
                    format!(
                        "the agent marked catalog answers as filtered by ACLs ({}: true): this scan saw {} instance(s) and cannot vouch for what the token may not read",
                        crate::consul_facts::FILTERED_BY_ACLS_HEADER,
                        catalog.instance_count()
                    ),
                    "scan with a token that may read the whole catalog (service_prefix \"\" and node_prefix \"\" with policy read), or limit the scan to the services the token may read with --service",
                ),
            ),
        );
    }
    let complete = problems.is_empty();
    Gathered { catalog, problems, endpoints, complete }
}

/// One `/v1/health/service/<name>` per service, two at a time.
async fn per_service(
    client: &ConsulClient,
    dcq: &str,
    names: &[String],
    b: &mut Builder,
    problems: &mut Vec<Finding>,
    endpoints: &mut Vec<String>,
    progress: &Progress,
) {
    endpoints.push(format!("GET /v1/health/service/<name>{dcq} ({} requests)", names.len()));
    let mut done = 0;
    for pair in names.chunks(2) {
        let fetches = pair.iter().map(|name| {
            let path = format!("/v1/health/service/{}{dcq}", urlencode(name));
            Box::pin(async move { get_list::<Vec<HealthEntry>>(client, &path).await })
        });
        let answers = crate::join::join_all(fetches.collect()).await;
        for (name, answer) in pair.iter().zip(answers) {
            match answer {
                Ok(entries) => b.add_health_entries(name, entries),
                Err(f) => problems.push(unreadable(f.what)),
            }
        }
        done += pair.len();
        progress.bar("services", done, names.len());
    }
}

/// Asks the agent whether the token may read services and nodes its rules do not name (and
/// the `--service` names); `Some(why)` when part of the catalog is hidden from it.
async fn visibility(client: &ConsulClient, wanted: &[String]) -> Option<String> {
    let mut asks = vec![json!({"Resource": "node", "Segment": PROBE, "Access": "read"})];
    if wanted.is_empty() {
        asks.push(json!({"Resource": "service", "Segment": PROBE, "Access": "read"}));
    } else {
        asks.extend(wanted.iter().map(|w| json!({"Resource": "service", "Segment": w, "Access": "read"})));
    }
    let reply = match client.post_json("/v1/internal/acl/authorize", &Value::Array(asks.clone())).await {
        Ok(r) => r,
        Err(f) => {
            crate::log::debug(format!("authorize: {}", f.describe(client.timeout)));
            return Some(
                "the token's read permissions could not be checked (POST /v1/internal/acl/authorize failed)".into(),
            );
        }
    };
    if reply.status == 401 {
        return None; // "ACL support disabled": everything is visible
    }
    let items: Vec<Value> = match (reply.status, reply.json::<Vec<Value>>()) {
        (200, Ok(items)) if items.len() == asks.len() => items,
        _ => {
            return Some(format!(
            "the token's read permissions could not be checked (POST /v1/internal/acl/authorize answered {} \"{}\")",
            reply.status,
            reply.snippet()
        ))
        }
    };
    let denied = |n: usize| items[n].get("Allow").and_then(Value::as_bool) != Some(true);
    let mut why = Vec::new();
    if denied(0) {
        why.push("the token may not read nodes its rules do not name (no node_prefix \"\" read), so instances on those nodes are hidden".to_string());
    }
    if wanted.is_empty() {
        if denied(1) {
            why.push("the token may read only the services its rules name (no service_prefix \"\" read), so the others are hidden".to_string());
        }
    } else {
        let refused: Vec<String> =
            wanted.iter().enumerate().filter(|(n, _)| denied(n + 1)).map(|(_, w)| format!("\"{w}\"")).collect();
        if !refused.is_empty() {
            why.push(format!("the token may not read service {}", refused.join(", ")));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(headers: &[(&'static str, &'static str)]) -> Reply {
        let mut h = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        Reply { status: 429, headers: h, body: Vec::new(), elapsed: Duration::ZERO }
    }

    #[test]
    fn backoff_honours_retry_after_and_grows_without_it() {
        assert_eq!(backoff(&reply(&[("retry-after", "2")]), 0), Duration::from_secs(2));
        assert_eq!(backoff(&reply(&[("retry-after", "3600")]), 0), MAX_PAUSE);
        assert_eq!(backoff(&reply(&[]), 0), Duration::from_millis(250));
        assert_eq!(backoff(&reply(&[]), 2), Duration::from_millis(1000));
        assert!(backoff(&reply(&[]), 30) <= MAX_PAUSE);
    }
}
