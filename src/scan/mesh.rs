//! Sidecar hygiene across the catalog: sidecar proxies whose parent service is gone from their
//! node (SCN-035), and instances of a meshed service that lack the sidecar their other instances
//! have (SCN-036). Findings only: a sidecar finding never makes anything prunable.
//!
//! The scan model keeps no `Kind` or `Proxy`, so this reads them itself: `/v1/internal/ui/services`
//! (one summary per service name) tells whether the catalog has a `connect-proxy` at all, and
//! only then `/v1/internal/ui/nodes` (`Kind`, `Proxy.DestinationServiceID`, `Connect.Native`),
//! decoded while it streams. `judge` is pure.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::codes;
use crate::consul::SharedClient;
use crate::report::CheckResult;
use crate::scan::judge::Finding;

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
    tokio::time::timeout_at(deadline, read(client, dc, wanted)).await.unwrap_or_default()
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
        out.findings = judge(&nodes, wanted);
    }
    out
}

/// Instances of one service with a sidecar (or native), and the (node, ID) of those without.
type Coverage<'a> = (usize, Vec<(&'a str, &'a str)>);

pub fn judge(nodes: &[MeshNode], wanted: &[String]) -> Vec<Finding> {
    let in_scope = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let mut out = Vec::new();
    // (node, service ID) of every instance, and each sidecar's (node, destination ID).
    let mut ids: HashSet<(&str, &str)> = HashSet::new();
    let mut covered: HashSet<(&str, &str)> = HashSet::new();
    for n in nodes {
        for s in n.services.iter().flatten() {
            ids.insert((n.node.as_str(), s.id.as_str()));
            if let Some(d) = s.proxy.as_ref().and_then(|p| p.destination_id.as_deref()) {
                if s.kind.as_deref() == Some("connect-proxy") {
                    covered.insert((n.node.as_str(), d));
                }
            }
        }
    }
    // Services with at least one sidecar: name -> (instances with one, instances without).
    let mut meshed: BTreeMap<&str, Coverage<'_>> = BTreeMap::new();
    for n in nodes {
        for s in n.services.iter().flatten() {
            if s.kind.as_deref() == Some("connect-proxy") {
                let p = s.proxy.as_ref();
                let dest_id = p.and_then(|p| p.destination_id.as_deref()).unwrap_or("");
                let dest_name = p.and_then(|p| p.destination_name.as_deref()).unwrap_or("");
                if !in_scope(dest_name) && !in_scope(&s.service) {
                    continue;
                }
                if !dest_id.is_empty() && !ids.contains(&(n.node.as_str(), dest_id)) {
                    out.push(Finding {
                        service: s.service.clone(),
                        node: Some(n.node.clone()),
                        service_id: Some(s.id.clone()),
                        address: None,
                        result: CheckResult::finding(
                            codes::SCN_ORPHAN_SIDECAR,
                            "scan.mesh",
                            format!("sidecar {} on {} forwards to service ID {dest_id:?} ({dest_name}), which is not registered on {}: its parent is gone, and it only fails its aliasing check", s.id, n.node, n.node),
                            format!("on {}: consul services deregister -id {} (or re-register {dest_name:?} there with its connect block); scan --prune never removes sidecars", n.node, s.id),
                        )
                        .with("node", n.node.clone())
                        .with("service_id", s.id.clone()),
                    });
                }
            } else if s.kind.as_deref().is_none_or(str::is_empty) {
                let native = s.connect.as_ref().is_some_and(|c| c.native);
                let e = meshed.entry(s.service.as_str()).or_default();
                if covered.contains(&(n.node.as_str(), s.id.as_str())) || native {
                    e.0 += 1;
                } else {
                    e.1.push((n.node.as_str(), s.id.as_str()));
                }
            }
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
    out
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
        let f = judge(&nodes, &[]);
        let got: Vec<(&str, &str, &str)> = f
            .iter()
            .map(|f| (f.result.code.unwrap(), f.node.as_deref().unwrap(), f.service_id.as_deref().unwrap()))
            .collect();
        assert_eq!(got, vec![("SCN-035", "n1", "api-sidecar-proxy"), ("SCN-036", "n2", "web")]);
        assert!(f[1].result.message.contains("2 other instance(s)"), "{}", f[1].result.message);
        assert!(judge(&nodes, &["db".to_string()]).is_empty());
        assert_eq!(judge(&nodes, &["api".to_string()]).len(), 1);
    }
}
