//! Sidecar hygiene across the catalog: sidecar proxies whose parent service is gone from their
//! node (SCN-035), and instances of a meshed service that lack the sidecar their other instances
//! have (SCN-036). Findings only: a sidecar finding never makes anything prunable.
//!
//! A whole-catalog scan judges the instances it already read: the model keeps each instance's
//! [`MeshRole`] (`Kind`, `Proxy.DestinationServiceID`, `Connect.Native`), so no second read. A
//! `--service` scan holds only the named services, not their sidecars, so it asks
//! `/v1/internal/ui/services` whether the catalog has a `connect-proxy` at all, and only then
//! `/v1/internal/ui/nodes`. `judge` is pure.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::codes;
use crate::consul::SharedClient;
use crate::report::CheckResult;
use crate::scan::judge::Finding;
use crate::scan::model::{Catalog, MeshRole};

#[derive(Debug, Deserialize)]
pub struct MeshNode {
    #[serde(rename = "Node", default)]
    node: String,
    #[serde(rename = "Services", default)]
    services: Option<Vec<MeshService>>,
}

#[derive(Debug, Deserialize)]
struct MeshService {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Service", default)]
    service: String,
    #[serde(rename = "Kind", default)]
    kind: Option<String>,
    #[serde(rename = "Proxy", default)]
    proxy: Option<MeshProxy>,
    #[serde(rename = "Connect", default)]
    connect: Option<MeshConnect>,
}

#[derive(Debug, Deserialize)]
struct MeshProxy {
    #[serde(rename = "DestinationServiceID", default)]
    destination_id: Option<String>,
    #[serde(rename = "DestinationServiceName", default)]
    destination_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MeshConnect {
    #[serde(rename = "Native", default)]
    native: bool,
}

/// What the sidecar read found, and the endpoints it asked.
#[derive(Default)]
pub struct Sidecars {
    pub findings: Vec<Finding>,
    pub endpoints: Vec<String>,
}

/// One entry of `/v1/internal/ui/services` (a summary per service name; 1.8.7 shape).
#[derive(Debug, Deserialize)]
struct ServiceSummary {
    #[serde(rename = "Kind", default)]
    kind: Option<String>,
}

/// Reads the nodes and judges their sidecars, by `deadline`. Only when the catalog itself was
/// read (an unreadable catalog is reported once, by the gather), and only when the catalog holds
/// a `connect-proxy` service at all: one small `/v1/internal/ui/services` answers that, so a
/// catalog without a mesh costs one request more, not a second read of every node.
pub async fn scan(
    client: &SharedClient,
    gathered: &crate::scan::gather::Gathered,
    dc: Option<&str>,
    wanted: &[String],
    deadline: tokio::time::Instant,
) -> Sidecars {
    let unreadable = gathered.problems.iter().any(|p| p.result.code == Some(codes::SCN_UNREADABLE.code));
    if unreadable {
        return Sidecars::default();
    }
    if wanted.is_empty() {
        // The whole catalog is in hand, sidecars included; without any sidecar there is nothing
        // to judge (and no index of every instance is built).
        let cat = &gathered.catalog;
        let any_sidecar = cat.instances().any(|i| matches!(i.mesh, Some(MeshRole::Sidecar { .. })));
        let findings = if any_sidecar { judge(|| entries_of(cat), wanted) } else { Vec::new() };
        return Sidecars { findings, endpoints: Vec::new() };
    }
    tokio::time::timeout_at(deadline, read(client, dc, wanted)).await.unwrap_or_default()
}

/// The catalog's instances as the judge reads them.
fn entries_of(cat: &Catalog) -> impl Iterator<Item = Entry<'_>> + '_ {
    cat.instances().map(|i| Entry {
        node: cat.node(i.node).name,
        id: i.id,
        service: i.service,
        role: match i.mesh {
            None => Role::Service { native: false },
            Some(MeshRole::Native) => Role::Service { native: true },
            Some(MeshRole::Sidecar { destination_id, destination_name }) => {
                Role::Sidecar { destination_id, destination_name }
            }
            Some(MeshRole::OtherKind) => Role::Other,
        },
    })
}

/// `/v1/internal/ui/nodes` entries as the judge reads them.
fn entries_of_nodes(nodes: &[MeshNode]) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for n in nodes {
        for s in n.services.iter().flatten() {
            let role = match s.kind.as_deref() {
                None | Some("") => Role::Service { native: s.connect.as_ref().is_some_and(|c| c.native) },
                Some("connect-proxy") => {
                    let p = s.proxy.as_ref();
                    Role::Sidecar {
                        destination_id: p.and_then(|p| p.destination_id.as_deref()).unwrap_or(""),
                        destination_name: p.and_then(|p| p.destination_name.as_deref()).unwrap_or(""),
                    }
                }
                Some(_) => Role::Other,
            };
            out.push(Entry { node: &n.node, id: &s.id, service: &s.service, role });
        }
    }
    out
}

/// One instance: its node, ID, service name and part in the mesh.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    node: &'a str,
    id: &'a str,
    service: &'a str,
    role: Role<'a>,
}

#[derive(Clone, Copy)]
enum Role<'a> {
    Service { native: bool },
    Sidecar { destination_id: &'a str, destination_name: &'a str },
    Other,
}

async fn read(client: &SharedClient, dc: Option<&str>, wanted: &[String]) -> Sidecars {
    let dcq = crate::consul::dc_query(dc);
    let summary_path = format!("/v1/internal/ui/services{dcq}");
    let mut out = Sidecars { findings: Vec::new(), endpoints: vec![format!("GET {summary_path}")] };
    let meshed = match client.get_json_streamed::<Vec<ServiceSummary>>(&summary_path).await {
        Ok(Ok(list)) => list.iter().any(|s| s.kind.as_deref() == Some("connect-proxy")),
        other => {
            // Not readable (an older agent, a blocked endpoint): said in the debug log; the
            // catalog read already reported whatever it could not see.
            crate::log::debug(format!(
                "sidecar hygiene not judged: GET {summary_path} {}",
                match other {
                    Ok(Err((r, _))) => format!("answered {}", r.status),
                    Err(f) => f.describe(client.timeout),
                    Ok(Ok(_)) => String::new(),
                }
            ));
            false
        }
    };
    if !meshed {
        return out;
    }
    let path = format!("/v1/internal/ui/nodes{dcq}");
    out.endpoints.push(format!("GET {path}"));
    if let Ok(Ok(nodes)) = client.get_json_streamed::<Vec<MeshNode>>(&path).await {
        let entries = entries_of_nodes(&nodes);
        out.findings = judge(|| entries.iter().copied(), wanted);
    }
    out
}

/// Instances of one service with a sidecar (or native), and the (node, ID) of those without.
type Coverage<'a> = (usize, Vec<(&'a str, &'a str)>);

/// Judges sidecars over `entries()`, read three times: memory follows the number of sidecars
/// and of the instances of meshed services, never the whole catalog's.
pub fn judge<'a, I: Iterator<Item = Entry<'a>>>(entries: impl Fn() -> I, wanted: &[String]) -> Vec<Finding> {
    let in_scope = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    // Listed up to the per-code cap and summed up beyond it, like the catalog's findings.
    let mut out = crate::scan::judge::Findings::default();
    // Each sidecar's (node, destination ID), and which of those are registered.
    let mut covered: HashSet<(&str, &str)> = HashSet::new();
    for e in entries() {
        if let Role::Sidecar { destination_id, .. } = e.role {
            covered.insert((e.node, destination_id));
        }
    }
    let mut registered: HashSet<(&str, &str)> = HashSet::new();
    // Services with at least one sidecar (or native instance): name -> instances with one.
    let mut with: BTreeMap<&str, usize> = BTreeMap::new();
    for e in entries() {
        if covered.contains(&(e.node, e.id)) {
            registered.insert((e.node, e.id));
        }
        if let Role::Service { native } = e.role {
            if native || covered.contains(&(e.node, e.id)) {
                *with.entry(e.service).or_default() += 1;
            }
        }
    }
    let mut meshed: BTreeMap<&str, Coverage<'_>> = BTreeMap::new();
    for e in entries() {
        match e.role {
            Role::Sidecar { destination_id: dest_id, destination_name: dest_name } => {
                if !in_scope(dest_name) && !in_scope(e.service) {
                    continue;
                }
                if !dest_id.is_empty() && !registered.contains(&(e.node, dest_id)) {
                    let (node, id) = (e.node, e.id);
                    out.push(Finding {
                        service: e.service.to_string(),
                        node: Some(node.to_string()),
                        service_id: Some(id.to_string()),
                        address: None,
                        result: CheckResult::finding(
                            codes::SCN_ORPHAN_SIDECAR,
                            "scan.mesh",
                            format!("sidecar {id} on {node} forwards to service ID {dest_id:?} ({dest_name}), which is not registered on {node}: its parent is gone, and it only fails its aliasing check"),
                            format!("on {node}: consul services deregister -id {id} (or re-register {dest_name:?} there with its connect block); scan --prune never removes sidecars"),
                        )
                        .with("node", node.to_string())
                        .with("service_id", id.to_string()),
                    });
                }
            }
            Role::Service { native } => {
                let Some(&n) = with.get(e.service) else { continue };
                let m = meshed.entry(e.service).or_insert((n, Vec::new()));
                if !(covered.contains(&(e.node, e.id)) || native) {
                    m.1.push((e.node, e.id));
                }
            }
            Role::Other => {}
        }
    }
    for (service, (with, without)) in meshed {
        if with == 0 || !in_scope(service) {
            continue;
        }
        for (node, id) in without {
            out.push(Finding {
                service: service.to_string(),
                node: Some(node.to_string()),
                service_id: Some(id.to_string()),
                address: None,
                result: CheckResult::finding(
                    codes::SCN_MISSING_SIDECAR,
                    "scan.mesh",
                    format!("instance {id} of {service:?} on {node} has no sidecar proxy, while {with} other instance(s) have one: mesh consumers never reach it"),
                    format!("on {node}: re-register {id} with its connect {{ sidecar_service {{}} }} block and start its proxy (consul connect proxy -sidecar-for={id})"),
                )
                .with("node", node.to_string())
                .with("service_id", id.to_string()),
            });
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphan_and_missing_sidecars() {
        // The shape of a real 1.8.7 /v1/internal/ui/nodes answer (agent/ui_endpoint.go `UINodes`,
        // NodeServices with Kind and Proxy), the fields the judge reads.
        let body = r#"[
          {"Node": "n1", "Services": [
            {"ID": "web", "Service": "web", "Kind": null, "Proxy": {"MeshGateway": {}, "Expose": {}}},
            {"ID": "web-sidecar-proxy", "Service": "web-sidecar-proxy", "Kind": "connect-proxy",
             "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "web", "LocalServicePort": 9090}},
            {"ID": "api-sidecar-proxy", "Service": "api-sidecar-proxy", "Kind": "connect-proxy",
             "Proxy": {"DestinationServiceName": "api", "DestinationServiceID": "api"}}]},
          {"Node": "n2", "Services": [
            {"ID": "web", "Service": "web"},
            {"ID": "nat", "Service": "web", "Connect": {"Native": true}}]},
          {"Node": "n3", "Services": null}
        ]"#;
        let nodes: Vec<MeshNode> = serde_json::from_str(body).unwrap();
        let f = judge(|| entries_of_nodes(&nodes).into_iter(), &[]);
        let got: Vec<(&str, &str, &str)> = f
            .iter()
            .map(|f| (f.result.code.unwrap(), f.node.as_deref().unwrap(), f.service_id.as_deref().unwrap()))
            .collect();
        assert_eq!(got, vec![("SCN-035", "n1", "api-sidecar-proxy"), ("SCN-036", "n2", "web")]);
        assert!(f[1].result.message.contains("2 other instance(s)"), "{}", f[1].result.message);
        assert!(judge(|| entries_of_nodes(&nodes).into_iter(), &["db".to_string()]).is_empty());
        assert_eq!(judge(|| entries_of_nodes(&nodes).into_iter(), &["api".to_string()]).len(), 1);
        // The same answer read into the scan model judges the same.
        let mut b = crate::scan::model::Builder::default();
        for n in serde_json::from_str::<Vec<crate::scan::model::UiNode>>(body).unwrap() {
            b.add_ui_node(n);
        }
        let cat = b.finish();
        let again: Vec<(&str, String, String)> = judge(|| entries_of(&cat), &[])
            .into_iter()
            .map(|f| (f.result.code.unwrap(), f.node.unwrap(), f.service_id.unwrap()))
            .collect();
        let want: Vec<(&str, String, String)> =
            got.iter().map(|(c, n, i)| (*c, n.to_string(), i.to_string())).collect();
        assert_eq!(again, want);
    }
}
