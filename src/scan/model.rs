//! What a scan knows about the catalog: nodes, instances and their checks, decoded from
//! Consul's answers with only the fields the judges use (the rest of a catalog-sized answer is
//! skipped while it streams in).
//!
//! Memory grows with the number of instances only: service names, tags, tag lists, namespaces,
//! peers and partitions are interned (one copy per value, shared by every instance), node names
//! live once in [`Node`] and instances point at it, an instance without an address of its own
//! shares its node's, owners are interned, check lists are allocated to their exact length and
//! check outputs are clipped (and not kept for passing checks). The services of a node are
//! turned into instances as they stream in, so a node with a million services is never held
//! twice (once decoded, once built).
//!
//! A node is identified by peer + partition + name (`PeerName` and `Partition` of
//! hashicorp/consul `agent/structs/structs.go` `NodeInfo`, both `omitempty`, so absent on
//! 1.8.7 and on OSS): an imported node never merges with a local node of the same name.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
    pub id: Box<str>,
    pub status: Health,
    pub output: Box<str>,
    pub deregister: Deregister,
    /// Raft index of the check's last change (status, output or definition).
    pub modify_index: u64,
}

/// A node's `serfHealth` check: what the judges read of it (its ID is always `serfHealth`, and
/// the leader's check has no definition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serf {
    pub status: Health,
    /// Clipped like [`Check::output`], empty when passing.
    pub output: Box<str>,
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
    pub name: Box<str>,
    /// Shared with the instances that have no address of their own.
    pub address: Arc<str>,
    /// The `serfHealth` check the leader keeps for every agent; catalog-only nodes have none.
    pub serf: Option<Serf>,
    /// Other node-level checks (maintenance mode, catalog-registered node checks).
    pub checks: Vec<Check>,
    /// `Meta["external-node"] = "true"`: a node consul-esm keeps the checks of.
    pub external: bool,
    /// `PeerName`: imported from a cluster peer (empty: local). Interned (a thin pointer).
    pub peer: Arc<String>,
    /// `Partition` (Enterprise; empty on OSS and before 1.11). Interned (a thin pointer).
    pub partition: Arc<String>,
    /// The owner its node meta names (consul-esm, synthetic nodes).
    pub owner: Option<Arc<Owner>>,
}

impl Node {
    /// `name`, or `peer/partition/name` when it is not a local node of the default partition.
    pub fn key(&self) -> String {
        let default_partition = self.partition.is_empty() || &*self.partition == "default";
        if self.peer.is_empty() && default_partition {
            self.name.to_string()
        } else {
            format!("{}/{}/{}", self.peer, self.partition, self.name)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Instance {
    /// Interned: every instance of a service shares one copy of its name.
    pub service: Arc<str>,
    pub id: Box<str>,
    /// Index into [`Catalog::nodes`].
    pub node: usize,
    /// `Service.Address`, or the node's address when that is empty (what DNS answers); the
    /// node's own copy when they are the same.
    pub address: Arc<str>,
    pub port: i64,
    /// Interned like service names, and the list as a whole too (most instances share one;
    /// a thin pointer).
    pub tags: Arc<Box<[Arc<str>]>>,
    pub create_index: u64,
    pub modify_index: u64,
    pub checks: Box<[Check]>,
    /// `Namespace` (Enterprise; empty on OSS). Interned (a thin pointer).
    pub namespace: Arc<String>,
    /// `PeerName` of the service entry (empty: local). Interned (a thin pointer).
    pub peer: Arc<String>,
    /// The owner its service meta (or its node's meta) names.
    pub owner: Option<Arc<Owner>>,
    /// Its part in the service mesh, for the few instances that have one (a thin pointer).
    pub mesh: Option<Box<MeshRole>>,
}

/// An instance's part in the service mesh, from its `Kind`, `Proxy` and `Connect` fields
/// (hashicorp/consul `agent/structs/structs.go` `NodeService`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshRole {
    /// `Kind: connect-proxy`: a sidecar forwarding to `Proxy.DestinationServiceID` on its node.
    Sidecar { destination_id: Box<str>, destination_name: Box<str> },
    /// `Connect.Native`: the service speaks the mesh itself.
    Native,
    /// Any other `Kind` (mesh, terminating or ingress gateways): not a service's instance.
    OtherKind,
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
        let check =
            Check { id: self.id.into(), status, output: output.into(), deregister, modify_index: self.modify_index };
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
    #[serde(rename = "Kind", default, deserialize_with = "null_default")]
    kind: String,
    #[serde(rename = "Proxy", default)]
    proxy: Option<WireProxy>,
    #[serde(rename = "Connect", default)]
    connect: Option<WireConnect>,
}

#[derive(Debug, Deserialize)]
struct WireProxy {
    #[serde(rename = "DestinationServiceID", default)]
    destination_id: Option<String>,
    #[serde(rename = "DestinationServiceName", default)]
    destination_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireConnect {
    #[serde(rename = "Native", default)]
    native: Option<bool>,
}

impl WireService {
    fn mesh_role(&mut self) -> Option<Box<MeshRole>> {
        match self.kind.as_str() {
            "" => self.connect.as_ref().and_then(|c| c.native).filter(|n| *n).map(|_| Box::new(MeshRole::Native)),
            "connect-proxy" => {
                let p = self.proxy.take();
                let (id, name) = p.map(|p| (p.destination_id, p.destination_name)).unwrap_or_default();
                Some(Box::new(MeshRole::Sidecar {
                    destination_id: id.unwrap_or_default().into(),
                    destination_name: name.unwrap_or_default().into(),
                }))
            }
            _ => Some(Box::new(MeshRole::OtherKind)),
        }
    }
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

/// `/v1/internal/ui/nodes` decoded straight into a [`Builder`], one node at a time and each
/// service of a node as it streams past: neither the list nor one node's services are ever held
/// as wire structs (a million nodes, or a node with a million services, would be gigabytes).
pub struct UiNodesInto(pub Builder);

impl<'de> Deserialize<'de> for UiNodesInto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Nodes;
        impl<'de> Visitor<'de> for Nodes {
            type Value = UiNodesInto;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of nodes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UiNodesInto, A::Error> {
                let mut b = Builder::default();
                while seq.next_element_seed(UiNodeSeed(&mut b))?.is_some() {}
                Ok(UiNodesInto(b))
            }
        }
        d.deserialize_seq(Nodes)
    }
}

/// One [`UiNode`] decoded into the builder: its services become instances as they arrive and
/// are tied to the node (and its checks) once the whole node has been read.
struct UiNodeSeed<'a>(&'a mut Builder);

/// The fields of [`UiNode`]; the others are skipped.
#[derive(Deserialize)]
enum UiNodeField {
    Node,
    Address,
    Meta,
    PeerName,
    Partition,
    Services,
    Checks,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for UiNodeSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_struct(
            "UiNode",
            &["Node", "Address", "Meta", "PeerName", "Partition", "Services", "Checks"],
            self,
        )
    }
}

impl<'de> Visitor<'de> for UiNodeSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("struct UiNode")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let b = self.0;
        let start = b.catalog.instances.len();
        let (mut node, mut address, mut meta, mut peer, mut partition, mut services, mut checks) =
            (None, None, None, None, None, false, None);
        fn once<T, E: Error>(slot: &mut Option<T>, v: T, name: &'static str) -> Result<(), E> {
            if slot.is_some() {
                return Err(E::duplicate_field(name));
            }
            *slot = Some(v);
            Ok(())
        }
        while let Some(key) = map.next_key::<UiNodeField>()? {
            match key {
                UiNodeField::Node => once(&mut node, map.next_value::<String>()?, "Node")?,
                UiNodeField::Address => {
                    once(&mut address, map.next_value::<Option<String>>()?.unwrap_or_default(), "Address")?
                }
                UiNodeField::Meta => {
                    once(&mut meta, map.next_value::<Option<HashMap<String, String>>>()?.unwrap_or_default(), "Meta")?
                }
                UiNodeField::PeerName => {
                    once(&mut peer, map.next_value::<Option<String>>()?.unwrap_or_default(), "PeerName")?
                }
                UiNodeField::Partition => {
                    once(&mut partition, map.next_value::<Option<String>>()?.unwrap_or_default(), "Partition")?
                }
                UiNodeField::Services => {
                    if services {
                        return Err(A::Error::duplicate_field("Services"));
                    }
                    services = true;
                    map.next_value_seed(ServicesSeed(&mut *b))?;
                }
                UiNodeField::Checks => {
                    once(&mut checks, map.next_value::<Option<Vec<WireCheck>>>()?.unwrap_or_default(), "Checks")?
                }
                UiNodeField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        b.finish_ui_node(
            start,
            &node.unwrap_or_default(),
            &address.unwrap_or_default(),
            &meta.unwrap_or_default(),
            &peer.unwrap_or_default(),
            &partition.unwrap_or_default(),
            checks.unwrap_or_default(),
        );
        Ok(())
    }
}

/// A node's `Services` (or `null`), each pushed into the builder as it is decoded.
struct ServicesSeed<'a>(&'a mut Builder);

impl<'de> DeserializeSeed<'de> for ServicesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ServicesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(s) = seq.next_element::<WireService>()? {
            self.0.push_service(s);
        }
        Ok(())
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
    /// Nodes by a 32-bit hash of (peer, partition, name): the last node with that hash;
    /// `same_hash` chains each node to the one before it with the same hash (the names are not
    /// copied; 8 bytes a node).
    node_index: HashMap<u32, u32>,
    same_hash: Vec<u32>,
    hasher: std::hash::RandomState,
    /// Interned strings: service names and tags; namespaces, peers and partitions.
    names: HashSet<Arc<str>>,
    scopes: HashSet<Arc<String>>,
    tag_lists: HashSet<Arc<Box<[Arc<str>]>>>,
    owners: HashMap<(OwnerKind, String, String), Arc<Owner>>,
    /// The empty address of services that have none (they take their node's).
    no_address: Arc<str>,
}

/// An instance not tied to its node yet.
const NO_NODE: usize = usize::MAX;
/// No node before this one has the same hash.
const NO_SLOT: u32 = u32::MAX;

impl Builder {
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.get(name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        self.names.insert(n.clone());
        n
    }

    fn intern_tags(&mut self, tags: Vec<String>) -> Arc<Box<[Arc<str>]>> {
        let tags: Box<[Arc<str>]> = tags.iter().map(|t| self.intern(t)).collect();
        if let Some(t) = self.tag_lists.get(&tags) {
            return t.clone();
        }
        let t = Arc::new(tags);
        self.tag_lists.insert(t.clone());
        t
    }

    fn intern_scope(&mut self, name: String) -> Arc<String> {
        if let Some(n) = self.scopes.get(&name) {
            return n.clone();
        }
        let n = Arc::new(name);
        self.scopes.insert(n.clone());
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
        let hash = self.hasher.hash_one((peer, partition, name)) as u32;
        let mut at = self.node_index.get(&hash).copied().unwrap_or(NO_SLOT);
        while at != NO_SLOT {
            let n = &self.catalog.nodes[at as usize];
            if &*n.name == name && n.partition.as_str() == partition && n.peer.as_str() == peer {
                return at as usize;
            }
            at = self.same_hash[at as usize];
        }
        let i = self.catalog.nodes.len();
        let owner = self.owner(node_owner(meta));
        let peer = self.intern_scope(peer.to_string());
        let partition = self.intern_scope(partition.to_string());
        self.catalog.nodes.push(Node {
            name: name.into(),
            address: Arc::from(address),
            external: is_external(meta),
            peer,
            partition,
            owner,
            ..Node::default()
        });
        // (Past four billion nodes, which no memory holds, a node would just not be found again.)
        let before = match u32::try_from(i).ok().filter(|&slot| slot != NO_SLOT) {
            Some(slot) => self.node_index.insert(hash, slot),
            None => None,
        };
        self.same_hash.push(before.unwrap_or(NO_SLOT));
        i
    }

    /// Pushes the instance of `s`, not yet tied to a node: [`Builder::attach`] does that.
    fn push_service(&mut self, mut s: WireService) {
        let mesh = s.mesh_role();
        // The address of the instance before, when it is the same (a node's services often
        // share one): one copy.
        let address = match self.catalog.instances.last() {
            _ if s.address.is_empty() => Arc::clone(&self.no_address),
            Some(last) if *last.address == *s.address => last.address.clone(),
            _ => Arc::from(s.address),
        };
        let service = self.intern(&s.service);
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
        let tags = self.intern_tags(s.tags);
        let owner = self.owner(found);
        let namespace = self.intern_scope(s.namespace);
        let peer = self.intern_scope(s.peer);
        self.catalog.instances.push(Instance {
            service,
            id: s.id.into(),
            node: NO_NODE,
            address,
            port: s.port,
            tags,
            create_index: s.create_index,
            modify_index: s.modify_index,
            checks: Box::default(),
            namespace,
            peer,
            owner,
            mesh,
        });
    }

    /// Ties instance `n` to its node: the node's address when it has none of its own, the
    /// node's owner when its service meta names none, and its checks.
    fn attach(&mut self, n: usize, node: usize, checks: Vec<Check>) {
        let nd = &self.catalog.nodes[node];
        let i = &mut self.catalog.instances[n];
        i.node = node;
        if i.address.is_empty() || *i.address == *nd.address {
            i.address = nd.address.clone();
        }
        if i.owner.is_none() {
            i.owner = nd.owner.clone();
        }
        i.checks = checks.into_boxed_slice();
    }

    fn set_node_checks(&mut self, node: usize, checks: Vec<Check>) {
        let n = &mut self.catalog.nodes[node];
        for c in checks {
            if &*c.id == "serfHealth" {
                n.serf = Some(Serf { status: c.status, output: c.output, modify_index: c.modify_index });
            } else if !n.checks.iter().any(|x| x.id == c.id) {
                n.checks.push(c);
            }
        }
        n.checks.shrink_to_fit();
    }

    pub fn add_ui_node(&mut self, n: UiNode) {
        let start = self.catalog.instances.len();
        for s in n.services {
            self.push_service(s);
        }
        self.finish_ui_node(start, &n.node, &n.address, &n.meta, &n.peer, &n.partition, n.checks);
    }

    /// The node whose services are the instances from `start` on.
    #[allow(clippy::too_many_arguments)]
    fn finish_ui_node(
        &mut self,
        start: usize,
        name: &str,
        address: &str,
        meta: &HashMap<String, String>,
        peer: &str,
        partition: &str,
        checks: Vec<WireCheck>,
    ) {
        let node = self.node(name, address, meta, peer, partition);
        let mut by_service: HashMap<String, Vec<Check>> = HashMap::new();
        let mut node_checks = Vec::new();
        for c in checks {
            let (sid, check) = c.into_check();
            if sid.is_empty() {
                node_checks.push(check);
            } else {
                // Most services have one check: a list of that length needs no shrinking later.
                by_service.entry(sid).or_insert_with(|| Vec::with_capacity(1)).push(check);
            }
        }
        self.set_node_checks(node, node_checks);
        for n in start..self.catalog.instances.len() {
            let id = &self.catalog.instances[n].id;
            // A service without an ID gets no checks: an empty ServiceID on a check means "node check".
            let checks = if id.is_empty() { Vec::new() } else { by_service.remove(&**id).unwrap_or_default() };
            self.attach(n, node, checks);
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
            self.push_service(e.service);
            self.attach(self.catalog.instances.len() - 1, node, checks);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalog built node by node from decoded [`UiNode`]s, as the re-read before a
    /// deregistration builds it.
    fn one_by_one(body: &serde_json::Value) -> Catalog {
        let mut b = Builder::default();
        for n in serde_json::from_value::<Vec<UiNode>>(body.clone()).unwrap() {
            b.add_ui_node(n);
        }
        b.finish()
    }

    fn streamed(body: &serde_json::Value) -> Catalog {
        serde_json::from_str::<UiNodesInto>(&body.to_string()).unwrap().0.finish()
    }

    #[test]
    fn streamed_nodes_build_the_same_catalog_as_decoded_nodes() {
        // Shapes: hashicorp/consul agent/structs/structs.go NodeInfo (ui/nodes entries).
        let body = serde_json::json!([
            {"Services": [{"ID": "web-1", "Service": "web", "Tags": ["v1"], "Port": 80, "ModifyIndex": 7},
                          {"ID": "web-2", "Service": "web", "Tags": ["v1"], "Address": "10.0.0.9", "Port": 81},
                          {"ID": "", "Service": "noid", "Tags": null, "Address": "10.0.0.1", "Port": 82}],
             "Node": "n1", "Address": "10.0.0.1", "Meta": {"external-node": "true"}, "TaggedAddresses": {"lan": "x"},
             "Checks": [{"CheckID": "serfHealth", "Status": "passing", "ServiceID": ""},
                        {"CheckID": "c1", "Status": "critical", "Output": " down ", "ServiceID": "web-1", "ModifyIndex": 9},
                        {"CheckID": "c2", "Status": "passing", "ServiceID": "web-1"},
                        {"CheckID": "c3", "Status": "warning", "ServiceID": ""}]},
            {"Node": "n2", "Address": "10.0.0.2", "Meta": null, "Services": null, "Checks": null},
            {"Node": "n3", "Address": "10.0.0.3", "PeerName": "east", "Partition": "p1",
             "Services": [{"ID": "db-1", "Service": "db", "Meta": {"managed-by": "someone"}, "Namespace": "ns1"}]},
            {"Node": "n1", "Address": "10.0.0.1",
             "Services": [{"ID": "web-3", "Service": "web", "Tags": ["v2", "x"], "Port": 83}],
             "Checks": [{"CheckID": "c4", "Status": "critical", "ServiceID": "web-3"}]}
        ]);
        let (a, b) = (streamed(&body), one_by_one(&body));
        assert_eq!(format!("{:?}", a.nodes), format!("{:?}", b.nodes));
        assert_eq!(format!("{:?}", a.instances), format!("{:?}", b.instances));
        assert_eq!(a.nodes.len(), 3, "the second n1 entry is the same node");
        let web1 = &a.instances[0];
        assert_eq!((&*web1.address, web1.node, web1.checks.len()), ("10.0.0.1", 0, 2));
        assert!(Arc::ptr_eq(&web1.address, &a.nodes[0].address), "the node's address is shared");
        assert!(Arc::ptr_eq(&web1.tags, &a.instances[1].tags), "equal tag lists are one");
        assert_eq!(web1.owner.as_ref().map(|o| o.kind), Some(OwnerKind::Esm));
        assert_eq!(&*a.instances[1].address, "10.0.0.9");
        assert!(a.instances[2].checks.is_empty(), "a service without an ID gets no checks");
        assert_eq!(a.instances[3].owner.as_ref().map(|o| o.name.as_str()), Some("someone"));
        assert_eq!(
            (a.instances[3].namespace.as_str(), a.nodes[2].peer.as_str(), a.nodes[2].partition.as_str()),
            ("ns1", "east", "p1")
        );
        assert_eq!((a.instances[4].node, a.instances[4].checks.len()), (0, 1));
        assert_eq!(a.nodes[0].checks.len(), 1);
        assert!(a.nodes[0].serf.is_some());
    }

    #[test]
    fn nodes_are_found_again_by_peer_partition_and_name() {
        // 100,000 names give 32-bit hash collisions about once a run: the chain finds the right one.
        let mut b = Builder::default();
        let meta = HashMap::new();
        let n = 100_000;
        for k in 0..n {
            assert_eq!(b.node(&format!("node-{k}"), "10.0.0.1", &meta, "", ""), k);
        }
        for k in 0..n {
            assert_eq!(b.node(&format!("node-{k}"), "10.0.0.2", &meta, "", ""), k);
        }
        assert_eq!(b.node("node-1", "", &meta, "east", ""), n, "a peer's node is another node");
        assert_eq!(b.node("node-1", "", &meta, "", "p1"), n + 1, "so is another partition's");
        assert_eq!(b.node("node-1", "", &meta, "east", ""), n);
        assert_eq!(b.catalog.nodes.len(), n + 2);
        assert_eq!(&*b.catalog.nodes[1].address, "10.0.0.1", "the first entry's address stays");
    }

    #[test]
    fn streamed_nodes_refuse_what_decoded_nodes_refuse() {
        for bad in [
            r#"[{"Node": null}]"#,
            r#"[{"Node": "a", "Node": "b"}]"#,
            r#"[{"Node": "a", "Services": [], "Services": []}]"#,
            r#"[{"Node": "a", "Services": 5}]"#,
            r#"[{"Node": "a", "Services": [{"ID": 5}]}]"#,
            r#"[{"Node": "a", "Checks": {}}]"#,
            r#"[5]"#,
        ] {
            assert!(serde_json::from_str::<Vec<UiNode>>(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<UiNodesInto>(bad).is_err(), "{bad}");
        }
    }
}
