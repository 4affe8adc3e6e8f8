//! Registrations no local agent owns: consul-k8s's endpoints controller registering each pod
//! through the catalog on a synthetic node (consul-dataplane, Consul 1.14+), and instances
//! imported from a cluster peer. `check` and `wait` recognise them from the catalog and judge
//! what matters for them (in the catalog? with which health? owned by whom? what to inspect on
//! the owner's side), never the advice meant for agent registrations.
//!
//! Keys: consul-k8s `control-plane/connect-inject/controllers/endpoints/endpoints_controller.go`
//! (`metaKeySyntheticNode = "synthetic-node"`, `metaKeyManagedBy = "managed-by"`,
//! `metaKeyKubeServiceName = "k8s-service-name"`) and
//! `control-plane/connect-inject/constants` (`MetaKeyKubeNS = "k8s-namespace"`,
//! `MetaKeyPodName = "pod-name"`, `ManagedByValue = "consul-k8s-endpoints-controller"`,
//! `ConsulKubernetesCheckName = "Kubernetes Readiness Check"`). Peers: `PeerName` on imported
//! entries (`agent/structs/structs.go`, 1.13+).

use std::collections::HashMap;

use crate::codes;
use crate::report::CheckResult;

pub const META_SYNTHETIC_NODE: &str = "synthetic-node";
pub const META_MANAGED_BY: &str = "managed-by";
pub const MANAGED_BY_ENDPOINTS_CONTROLLER: &str = "consul-k8s-endpoints-controller";
pub const META_K8S_NAMESPACE: &str = "k8s-namespace";
pub const META_POD_NAME: &str = "pod-name";
pub const META_K8S_SERVICE: &str = "k8s-service-name";

/// Who registered an instance, when it is not an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// consul-k8s's endpoints controller, for a pod (consul-dataplane, no client agent).
    ConsulK8s { k8s_namespace: Option<String>, pod: Option<String>, k8s_service: Option<String> },
    /// Imported from a cluster peer: registered and health-checked in the peer cluster.
    Peer(String),
    /// Written through the catalog by another controller (`managed-by` set to something else).
    Controller(String),
}

impl Owner {
    pub fn describe(&self) -> String {
        match self {
            Owner::ConsulK8s { k8s_namespace, pod, .. } => match (k8s_namespace, pod) {
                (Some(ns), Some(pod)) => format!("consul-k8s's endpoints controller for pod {ns}/{pod}"),
                _ => "consul-k8s's endpoints controller".to_string(),
            },
            Owner::Peer(p) => format!("cluster peer {p:?} (imported)"),
            Owner::Controller(c) => format!("controller {c:?} (managed-by meta)"),
        }
    }
}

/// One instance as the catalog holds it, with its owner when no agent owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub node: String,
    pub id: String,
    pub owner: Option<Owner>,
    /// `passing`, `warning` or `critical` (the worst check).
    pub status: String,
    /// The worst check's name and output.
    pub worst: Option<(String, String)>,
}

/// The owner from the node's and the service's meta and the entry's `PeerName`.
pub fn owner_of(
    node_meta: Option<&HashMap<String, String>>,
    service_meta: Option<&HashMap<String, String>>,
    peer: Option<&str>,
) -> Option<Owner> {
    if let Some(p) = peer.filter(|p| !p.is_empty()) {
        return Some(Owner::Peer(p.to_string()));
    }
    let smeta = |k: &str| service_meta.and_then(|m| m.get(k)).cloned();
    let synthetic = node_meta.and_then(|m| m.get(META_SYNTHETIC_NODE)).is_some_and(|v| v == "true")
        || smeta(META_SYNTHETIC_NODE).is_some_and(|v| v == "true");
    match smeta(META_MANAGED_BY) {
        Some(m) if m == MANAGED_BY_ENDPOINTS_CONTROLLER || synthetic => Some(Owner::ConsulK8s {
            k8s_namespace: smeta(META_K8S_NAMESPACE),
            pod: smeta(META_POD_NAME),
            k8s_service: smeta(META_K8S_SERVICE),
        }),
        Some(m) => Some(Owner::Controller(m)),
        None if synthetic => Some(Owner::ConsulK8s { k8s_namespace: None, pod: None, k8s_service: None }),
        None => None,
    }
}

/// What to inspect on the owner's side, with the real names.
pub fn owner_fix(owner: &Owner) -> String {
    match owner {
        Owner::ConsulK8s { k8s_namespace, pod, .. } => {
            let ns = k8s_namespace.as_deref().unwrap_or("<namespace>");
            let pod = pod.as_deref().unwrap_or("<pod>");
            format!(
                "the pod's readiness decides this check: kubectl -n {ns} get pod {pod} -o wide; kubectl -n {ns} describe pod {pod} (readiness probe, events); the controller's side: kubectl logs -n <consul namespace> deploy/<release>-connect-injector | grep {pod}"
            )
        }
        Owner::Peer(p) => format!(
            "the instance is registered and checked in the peer cluster: ask there (consul-doctor check against one of {p:?}'s agents), and here confirm the peering and the export: consul peering read -name {p}; the peer's exported-services config entry must list the service"
        ),
        Owner::Controller(c) => {
            format!("the instance is written through the catalog by {c:?}: inspect that controller's state and logs, not an agent")
        }
    }
}

/// The sync stage's verdict for a service this agent does not hold, when the catalog's
/// instances of it have an owner other than an agent. `None`: no such instance (agent advice applies).
pub fn judge_owned(label: &str, regs: &[Registration]) -> Option<Vec<CheckResult>> {
    let owned: Vec<&Registration> = regs.iter().filter(|r| r.owner.is_some()).collect();
    let first = owned.first()?;
    let owner = first.owner.as_ref()?;
    let failing: Vec<&&Registration> = owned.iter().filter(|r| r.status != "passing").collect();
    let list = |v: &[&&Registration]| {
        v.iter()
            .take(5)
            .map(|r| match &r.worst {
                Some((name, out)) if !out.is_empty() => format!("{} on {} {}: {name}: {out}", r.id, r.node, r.status),
                _ => format!("{} on {} {}", r.id, r.node, r.status),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let catalog = CheckResult::pass(
        "sync.catalog",
        format!(
            "{label}: no agent holds it; the catalog has {} instance(s) registered by {} (no local registration to compare: the owner writes the catalog directly)",
            owned.len(),
            owner.describe()
        ),
    )
    .with("owner", owner.describe());
    let checks = if failing.is_empty() {
        CheckResult::pass("sync.checks", format!("{label}: all {} owned instance(s) passing", owned.len()))
    } else {
        let owner_of_failing = failing[0].owner.as_ref().unwrap_or(owner);
        CheckResult::finding(
            codes::SYN_OWNED_NOT_READY,
            "sync.checks",
            format!(
                "{label}: {} of {} instance(s) registered by {} are not passing: {}",
                failing.len(),
                owned.len(),
                owner_of_failing.describe(),
                list(&failing)
            ),
            owner_fix(owner_of_failing),
        )
    };
    Some(vec![catalog, checks])
}

/// Check ids whose findings are agent advice: for a service whose instances an owner other than
/// an agent registers, they do not apply.
pub const AGENT_CENTRIC: &[&str] =
    &["config.service", "duplicates.local_id", "health.probe", "probe.register", "sync.catalog", "sync.checks"];

/// Codes of agent advice (missing ID, anti-entropy, the local health probe).
pub const AGENT_CENTRIC_CODES: &[&str] = &["CFG-022", "SYN-001"];

/// Marks the agent advice given for an owned service as not applicable (what the catalog says
/// is judged by [`judge_owned`] instead).
pub fn neutralize(results: &mut [CheckResult], label: &str, owner: &Owner) {
    for r in results.iter_mut() {
        let about = r.message.starts_with(label);
        let agent_advice = r.code.is_some_and(|c| AGENT_CENTRIC_CODES.contains(&c))
            || (AGENT_CENTRIC.contains(&r.id) && r.message.contains("health check defined"));
        if about && agent_advice {
            let stage = r.stage;
            *r = CheckResult::skipped(
                r.id,
                format!(
                    "{label}: not applicable: its instances are registered by {}, not through an agent",
                    owner.describe()
                ),
            );
            r.stage = stage;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn meta(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn consul_k8s_registrations_are_recognised() {
        let node = meta(&[("synthetic-node", "true")]);
        let svc = meta(&[
            ("managed-by", "consul-k8s-endpoints-controller"),
            ("k8s-namespace", "shop"),
            ("pod-name", "web-1"),
            ("synthetic-node", "true"),
        ]);
        let o = owner_of(Some(&node), Some(&svc), None).unwrap();
        assert_eq!(o.describe(), "consul-k8s's endpoints controller for pod shop/web-1");
        assert!(owner_fix(&o).contains("kubectl -n shop describe pod web-1"));
        assert_eq!(owner_of(None, Some(&meta(&[])), None), None);
        assert_eq!(owner_of(None, None, Some("dc2")), Some(Owner::Peer("dc2".into())));
        assert_eq!(
            owner_of(None, Some(&meta(&[("managed-by", "my-operator")])), None),
            Some(Owner::Controller("my-operator".into()))
        );
    }

    #[test]
    fn owned_instances_not_passing_are_syn_006_with_the_owners_fix() {
        let o = Owner::ConsulK8s { k8s_namespace: Some("shop".into()), pod: Some("web-1".into()), k8s_service: None };
        let regs = vec![Registration {
            node: "n-virtual".into(),
            id: "web-1-web".into(),
            owner: Some(o),
            status: "critical".into(),
            worst: Some(("Kubernetes Readiness Check".into(), "Pod \"shop/web-1\" is terminating".into())),
        }];
        let out = judge_owned("service \"web\"", &regs).unwrap();
        assert_eq!(out[0].status, Status::Pass);
        assert_eq!(out[1].code, Some("SYN-006"));
        assert!(out[1].fix.as_deref().unwrap().contains("kubectl -n shop"));
        assert!(!out[1].fix.as_deref().unwrap().contains("agent"), "{:?}", out[1].fix);
        assert!(judge_owned("x", &[]).is_none());
    }
}
