//! What a scan knows about the catalog: nodes, instances and their checks, decoded from
//! Consul's answers with only the fields the judges use (the rest of a catalog-sized answer is
//! skipped while it streams in).
//!
//! Memory grows with the number of instances only: service names are interned (one copy per
//! name, shared by every instance), node names live once in [`Node`] and instances point at it,
//! owners are interned, and check outputs are clipped.
//!
//! A node is identified by peer + partition + name (`PeerName` and `Partition` of
//! hashicorp/consul `agent/structs/structs.go` `NodeInfo`, both `omitempty`, so absent on
//! 1.8.7 and on OSS): an imported node never merges with a local node of the same name.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

/// A check's status, ordered from best to worst (Consul's aggregation takes the worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    Passing,
    Warning,
    Critical,
}

impl Health {
    /// Consul's statuses; maintenance checks are critical, an unknown word counts as critical.
    pub fn parse(s: &str) -> Health {
        match s {
            "passing" => Health::Passing,
            "warning" => Health::Warning,
            _ => Health::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Passing => "passing",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }
}

/// Whether a check removes its service after being critical for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deregister {
    /// The catalog does not say: Consul 1.8 agents sync an empty `Definition`.
    Unknown,
    /// The catalog holds the definition and it sets no `DeregisterCriticalServiceAfter`.
    Never,
    After(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub id: String,
    pub status: Health,
    pub output: String,
    pub deregister: Deregister,
    /// Raft index of the check's last change (status, output or definition).
    pub modify_index: u64,
}

/// Who keeps a registration up to date besides (or instead of) a Consul agent, from the marks
/// that owner writes on what it registers. A registration with an owner is never pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `consul-esm`, `consul-k8s`, `nomad`, `consul-ecs`, or the value of a generic mark.
    pub name: String,
    /// The mark seen, e.g. `node meta external-node=true`.
    pub mark: String,
    pub kind: OwnerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    /// consul-esm runs the node's and services' checks (hashicorp/consul-esm README.md:
    /// node meta `external-node` = "true", `external-probe` = "true").
    Esm,
    /// consul-k8s endpoints controller, agentless (hashicorp/consul-k8s
    /// control-plane/connect-inject/controllers/endpoints/endpoints_controller.go:
    /// service meta `managed-by` = "consul-k8s-endpoints-controller", node meta
    /// `synthetic-node` = "true").
    K8sEndpoints,
    /// consul-k8s catalog sync (hashicorp/consul-k8s control-plane/catalog/to-consul/resource.go:
    /// meta `external-source` = "kubernetes", `external-k8s-ns`).
    K8sSync,
    /// Nomad (hashicorp/nomad command/agent/consul/service_client.go: service meta
    /// `external-source` = "nomad").
    Nomad,
    /// consul-ecs (hashicorp/consul-ecs mesh-init: node meta `synthetic-node` = "true",
    /// service meta `source` = "consul-ecs").
    Ecs,
    /// Another `synthetic-node`, `managed-by` or `external-source` mark.
    Other,
}

#[derive(Debug, Clone, Default)]
pub struct Node {
    pub name: String,
    pub address: String,
    /// The `serfHealth` check the leader keeps for every agent; catalog-only nodes have none.
    pub serf: Option<Check>,
    /// Other node-level checks (maintenance mode, catalog-registered node checks).
    pub checks: Vec<Check>,
    /// `Meta["external-node"] = "true"`: a node consul-esm keeps the checks of.
    pub external: bool,
    /// `PeerName`: imported from a cluster peer (empty: local).
    pub peer: String,
    /// `Partition` (Enterprise; empty on OSS and before 1.11).
    pub partition: String,
    /// The owner its node meta names (consul-esm, synthetic nodes).
    pub owner: Option<Arc<Owner>>,
}

impl Node {
    /// `name`, or `peer/partition/name` when it is not a local node of the default partition.
    pub fn key(&self) -> String {
        let default_partition = self.partition.is_empty() || self.partition == "default";
        if self.peer.is_empty() && default_partition {
            self.name.clone()
        } else {
            format!("{}/{}/{}", self.peer, self.partition, self.name)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Instance {
    /// Interned: every instance of a service shares one copy of its name.
    pub service: Arc<str>,
    pub id: String,
    /// Index into [`Catalog::nodes`].
    pub node: usize,
    /// `Service.Address`, or the node's address when that is empty (what DNS answers).
    pub address: String,
    pub port: i64,
    /// Interned like service names.
    pub tags: Vec<Arc<str>>,
    pub create_index: u64,
    pub modify_index: u64,
    pub checks: Vec<Check>,
    /// `Namespace` (Enterprise; empty on OSS).
    pub namespace: String,
    /// `PeerName` of the service entry (empty: local).
    pub peer: String,
    /// The owner its service meta (or its node's meta) names.
    pub owner: Option<Arc<Owner>>,
}

impl Instance {
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// Serf member status from `/v1/agent/members`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Alive,
    Leaving,
    Left,
    Failed,
    Other(i64),
}

impl Member {
    pub fn from_code(code: i64) -> Member {
        match code {
            1 => Member::Alive,
            2 => Member::Leaving,
            3 => Member::Left,
            4 => Member::Failed,
            n => Member::Other(n),
        }
    }
}

/// Whether `/v1/agent/members` describes the scanned nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Membership {
    #[default]
    Read,
    /// The member list could not be read (the text says why).
    Unreadable(String),
    /// `--datacenter` names another datacenter: the agent's member list is not its own.
    OtherDatacenter,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub nodes: Vec<Node>,
    pub instances: Vec<Instance>,
    /// Serf members by node name; `None` when the member list does not describe the scanned
    /// datacenter (another `--datacenter`) or could not be read.
    pub members: Option<HashMap<String, Member>>,
    pub membership: Membership,
}

// --- decoding -------------------------------------------------------------------------------

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
pub struct WireCheck {
    #[serde(rename = "CheckID", default)]
    id: String,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Output", default, deserialize_with = "null_default")]
    output: String,
    #[serde(rename = "ServiceID", default, deserialize_with = "null_default")]
    service_id: String,
    #[serde(rename = "Definition", default, deserialize_with = "null_default")]
    definition: HashMap<String, serde_json::Value>,
    #[serde(rename = "ModifyIndex", default)]
    modify_index: u64,
}

/// Longest check output kept (outputs can be 4 KiB each; a scan keeps thousands).
const OUTPUT_KEPT: usize = 200;

impl WireCheck {
    fn into_check(self) -> (String, Check) {
        let deregister = if self.definition.is_empty() {
            Deregister::Unknown
        } else {
            match self.definition.get("DeregisterCriticalServiceAfter").and_then(|v| v.as_str()) {
                Some(d) if !d.is_empty() && d != "0s" => Deregister::After(d.to_string()),
                _ => Deregister::Never,
            }
        };
        let status = Health::parse(&self.status);
        // A passing check's output says nothing the judges use: not kept (a scan holds millions).
        let output = if status == Health::Passing {
            String::new()
        } else {
            let mut output: String = self.output.trim().chars().take(OUTPUT_KEPT).collect();
            if self.output.trim().chars().count() > OUTPUT_KEPT {
                output.push('…');
            }
            output
        };
        let check = Check { id: self.id, status, output, deregister, modify_index: self.modify_index };
        (self.service_id, check)
    }
}

#[derive(Debug, Deserialize)]
pub struct WireService {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Service", default)]
    service: String,
    #[serde(rename = "Tags", default, deserialize_with = "null_default")]
    tags: Vec<String>,
    #[serde(rename = "Address", default, deserialize_with = "null_default")]
    address: String,
    #[serde(rename = "Port", default)]
    port: i64,
    #[serde(rename = "CreateIndex", default)]
    create_index: u64,
    #[serde(rename = "ModifyIndex", default)]
    modify_index: u64,
    #[serde(rename = "Meta", default, deserialize_with = "null_default")]
    meta: HashMap<String, String>,
    /// Enterprise `EnterpriseMeta` is squashed into the service: `Namespace`, `Partition`.
    #[serde(rename = "Namespace", default, deserialize_with = "null_default")]
    namespace: String,
    #[serde(rename = "PeerName", default, deserialize_with = "null_default")]
    peer: String,
}

/// One entry of `/v1/internal/ui/nodes`: a node with all its services and checks
/// (hashicorp/consul `agent/structs/structs.go` `NodeInfo`).
#[derive(Debug, Deserialize)]
pub struct UiNode {
    #[serde(rename = "Node", default)]
    pub(crate) node: String,
    #[serde(rename = "Address", default, deserialize_with = "null_default")]
    pub(crate) address: String,
    #[serde(rename = "Meta", default, deserialize_with = "null_default")]
    pub(crate) meta: HashMap<String, String>,
    #[serde(rename = "PeerName", default, deserialize_with = "null_default")]
    pub(crate) peer: String,
    #[serde(rename = "Partition", default, deserialize_with = "null_default")]
    pub(crate) partition: String,
    #[serde(rename = "Services", default, deserialize_with = "null_default")]
    pub(crate) services: Vec<WireService>,
    #[serde(rename = "Checks", default, deserialize_with = "null_default")]
    pub(crate) checks: Vec<WireCheck>,
}

/// `/v1/internal/ui/nodes` decoded straight into a [`Builder`], one node at a time: the list is
/// never held whole (a million nodes would be gigabytes of decoded wire structs).
pub struct UiNodesInto(pub Builder);

impl<'de> Deserialize<'de> for UiNodesInto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Nodes;
        impl<'de> serde::de::Visitor<'de> for Nodes {
            type Value = UiNodesInto;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of nodes")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UiNodesInto, A::Error> {
                let mut b = Builder::default();
                while let Some(n) = seq.next_element::<UiNode>()? {
                    b.add_ui_node(n);
                }
                Ok(UiNodesInto(b))
            }
        }
        d.deserialize_seq(Nodes)
    }
}

/// `/v1/catalog/node/<node>` (hashicorp/consul `agent/structs/structs.go` `NodeServices`):
/// the node and its services by ID; `null` when the node is not in the catalog.
#[derive(Debug, Deserialize)]
pub struct CatalogNode {
    #[serde(rename = "Node")]
    pub node: Option<CatalogNodeNode>,
    #[serde(rename = "Services", default, deserialize_with = "null_default")]
    pub services: HashMap<String, WireService>,
}

#[derive(Debug, Deserialize)]
pub struct CatalogNodeNode {
    #[serde(rename = "Node", default)]
    pub node: String,
    #[serde(rename = "Address", default, deserialize_with = "null_default")]
    pub address: String,
    #[serde(rename = "Meta", default, deserialize_with = "null_default")]
    pub meta: HashMap<String, String>,
    #[serde(rename = "PeerName", default, deserialize_with = "null_default")]
    pub peer: String,
    #[serde(rename = "Partition", default, deserialize_with = "null_default")]
    pub partition: String,
}

impl CatalogNode {
    /// With the node's checks (`/v1/health/node/<node>`), the node in `/v1/internal/ui/nodes`'s
    /// shape.
    pub fn into_ui_node(self, checks: Vec<WireCheck>) -> Option<UiNode> {
        let n = self.node?;
        Some(UiNode {
            node: n.node,
            address: n.address,
            meta: n.meta,
            peer: n.peer,
            partition: n.partition,
            services: self.services.into_values().collect(),
            checks,
        })
    }
}

/// One entry of `/v1/health/service/<name>`.
#[derive(Debug, Deserialize)]
pub struct HealthEntry {
    #[serde(rename = "Node")]
    node: HealthNode,
    #[serde(rename = "Service")]
    service: WireService,
    #[serde(rename = "Checks", default, deserialize_with = "null_default")]
    checks: Vec<WireCheck>,
}

#[derive(Debug, Deserialize)]
struct HealthNode {
    #[serde(rename = "Node", default)]
    node: String,
    #[serde(rename = "Address", default, deserialize_with = "null_default")]
    address: String,
    #[serde(rename = "Meta", default, deserialize_with = "null_default")]
    meta: HashMap<String, String>,
    #[serde(rename = "PeerName", default, deserialize_with = "null_default")]
    peer: String,
    #[serde(rename = "Partition", default, deserialize_with = "null_default")]
    partition: String,
}

/// One entry of `/v1/agent/members`.
#[derive(Debug, Deserialize)]
pub struct WireMember {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Status", default)]
    pub status: i64,
}

fn is_external(meta: &HashMap<String, String>) -> bool {
    meta.get("external-node").is_some_and(|v| v == "true")
}

fn meta_is(meta: &HashMap<String, String>, key: &str, value: &str) -> bool {
    meta.get(key).is_some_and(|v| v == value)
}

/// The owner a node's meta names. Sources of each mark: see [`OwnerKind`].
fn node_owner(meta: &HashMap<String, String>) -> Option<(OwnerKind, String, String)> {
    if is_external(meta) {
        let probe = if meta_is(meta, "external-probe", "true") { ", external-probe=true" } else { "" };
        return Some((OwnerKind::Esm, "consul-esm".into(), format!("node meta external-node=true{probe}")));
    }
    if meta_is(meta, "external-source", "kubernetes") {
        return Some((
            OwnerKind::K8sSync,
            "consul-k8s catalog sync".into(),
            "node meta external-source=kubernetes".into(),
        ));
    }
    if let Some(v) = meta.get("external-source").filter(|v| !v.is_empty()) {
        return Some((OwnerKind::Other, v.clone(), format!("node meta external-source={v}")));
    }
    if meta_is(meta, "synthetic-node", "true") {
        return Some((
            OwnerKind::Other,
            "an agentless integration (consul-k8s or consul-ecs with consul-dataplane)".into(),
            "node meta synthetic-node=true".into(),
        ));
    }
    None
}

/// The owner a service's meta names (it wins over the node's, being more precise).
fn service_owner(meta: &HashMap<String, String>) -> Option<(OwnerKind, String, String)> {
    if meta_is(meta, "managed-by", "consul-k8s-endpoints-controller") {
        return Some((
            OwnerKind::K8sEndpoints,
            "consul-k8s".into(),
            "service meta managed-by=consul-k8s-endpoints-controller".into(),
        ));
    }
    if let Some(v) = meta.get("managed-by").filter(|v| !v.is_empty()) {
        return Some((OwnerKind::Other, v.clone(), format!("service meta managed-by={v}")));
    }
    match meta.get("external-source").map(String::as_str) {
        Some("kubernetes") => {
            let ns = meta.get("external-k8s-ns").map(|n| format!(", external-k8s-ns={n}")).unwrap_or_default();
            return Some((
                OwnerKind::K8sSync,
                "consul-k8s catalog sync".into(),
                format!("service meta external-source=kubernetes{ns}"),
            ));
        }
        Some("nomad") => {
            return Some((OwnerKind::Nomad, "Nomad".into(), "service meta external-source=nomad".into()));
        }
        Some(v) if !v.is_empty() => {
            return Some((OwnerKind::Other, v.to_string(), format!("service meta external-source={v}")));
        }
        _ => {}
    }
    if meta_is(meta, "source", "consul-ecs") {
        return Some((OwnerKind::Ecs, "consul-ecs".into(), "service meta source=consul-ecs".into()));
    }
    None
}

/// Builds the catalog, keeping only instances of `wanted` services when that is not empty.
#[derive(Default)]
pub struct Builder {
    catalog: Catalog,
    /// Nodes by (peer, partition, name).
    node_index: HashMap<(String, String, String), usize>,
    names: HashSet<Arc<str>>,
    owners: HashMap<(OwnerKind, String, String), Arc<Owner>>,
}

impl Builder {
    fn intern(&mut self, name: String) -> Arc<str> {
        if let Some(n) = self.names.get(name.as_str()) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        self.names.insert(n.clone());
        n
    }

    fn owner(&mut self, found: Option<(OwnerKind, String, String)>) -> Option<Arc<Owner>> {
        let (kind, name, mark) = found?;
        let key = (kind, name, mark);
        if let Some(o) = self.owners.get(&key) {
            return Some(o.clone());
        }
        let o = Arc::new(Owner { name: key.1.clone(), mark: key.2.clone(), kind });
        self.owners.insert(key, o.clone());
        Some(o)
    }

    fn node(
        &mut self,
        name: &str,
        address: &str,
        meta: &HashMap<String, String>,
        peer: &str,
        partition: &str,
    ) -> usize {
        let key = (peer.to_string(), partition.to_string(), name.to_string());
        if let Some(&i) = self.node_index.get(&key) {
            return i;
        }
        let i = self.catalog.nodes.len();
        let owner = self.owner(node_owner(meta));
        self.catalog.nodes.push(Node {
            name: name.to_string(),
            address: address.to_string(),
            external: is_external(meta),
            peer: peer.to_string(),
            partition: partition.to_string(),
            owner,
            ..Node::default()
        });
        self.node_index.insert(key, i);
        i
    }

    fn add_service(&mut self, node: usize, s: WireService, checks: Vec<Check>) {
        let address = if s.address.is_empty() { self.catalog.nodes[node].address.clone() } else { s.address };
        let service = self.intern(s.service);
        let found = service_owner(&s.meta).or_else(|| {
            // consul-lambda-registrator (hashicorp/terraform-aws-consul-lambda
            // consul-lambda/consul-lambda-registrator/upsert_event.go): tag on an external node.
            s.tags.iter().any(|t| t == "managed-by-lambda-registrator").then(|| {
                (
                    OwnerKind::Other,
                    "consul-lambda-registrator".to_string(),
                    "service tag managed-by-lambda-registrator".to_string(),
                )
            })
        });
        let tags: Vec<Arc<str>> = s.tags.into_iter().map(|t| self.intern(t)).collect();
        let owner = match self.owner(found) {
            Some(o) => Some(o),
            None => self.catalog.nodes[node].owner.clone(),
        };
        self.catalog.instances.push(Instance {
            service,
            id: s.id,
            node,
            address,
            port: s.port,
            tags,
            create_index: s.create_index,
            modify_index: s.modify_index,
            checks,
            namespace: s.namespace,
            peer: s.peer,
            owner,
        });
    }

    fn set_node_checks(&mut self, node: usize, checks: Vec<Check>) {
        let n = &mut self.catalog.nodes[node];
        for c in checks {
            if c.id == "serfHealth" {
                n.serf = Some(c);
            } else if !n.checks.iter().any(|x| x.id == c.id) {
                n.checks.push(c);
            }
        }
    }

    pub fn add_ui_node(&mut self, n: UiNode) {
        let node = self.node(&n.node, &n.address, &n.meta, &n.peer, &n.partition);
        let mut by_service: HashMap<String, Vec<Check>> = HashMap::new();
        let mut node_checks = Vec::new();
        for c in n.checks {
            let (sid, check) = c.into_check();
            if sid.is_empty() {
                node_checks.push(check);
            } else {
                by_service.entry(sid).or_default().push(check);
            }
        }
        self.set_node_checks(node, node_checks);
        for s in n.services {
            // A service without an ID gets no checks: an empty ServiceID on a check means "node check".
            let checks = if s.id.is_empty() { Vec::new() } else { by_service.remove(&s.id).unwrap_or_default() };
            self.add_service(node, s, checks);
        }
    }

    /// Adds `/v1/health/service/<name>` entries; Consul matches names case-insensitively, so
    /// entries of other spellings are dropped (they are scanned under their own name).
    pub fn add_health_entries(&mut self, name: &str, entries: Vec<HealthEntry>) {
        for e in entries.into_iter().filter(|e| e.service.service == name) {
            let node = self.node(&e.node.node, &e.node.address, &e.node.meta, &e.node.peer, &e.node.partition);
            let mut node_checks = Vec::new();
            let mut checks = Vec::new();
            for c in e.checks {
                let (sid, check) = c.into_check();
                if sid.is_empty() {
                    node_checks.push(check);
                } else {
                    checks.push(check);
                }
            }
            self.set_node_checks(node, node_checks);
            self.add_service(node, e.service, checks);
        }
    }

    pub fn set_members(&mut self, members: Option<Vec<WireMember>>) {
        self.catalog.members = members.map(|m| m.into_iter().map(|m| (m.name, Member::from_code(m.status))).collect());
    }

    pub fn set_membership(&mut self, membership: Membership) {
        self.catalog.membership = membership;
    }

    pub fn finish(self) -> Catalog {
        self.catalog
    }
}
