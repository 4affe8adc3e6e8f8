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

/// Who keeps a registration up to date besides (or instead of) a Consul agent, from the marks
/// that owner writes on what it registers. A registration with an owner is never pruned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// A node as the judges read it: a view into the [`Catalog`]'s compact storage.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub name: &'a str,
    /// Shared with the instances that have no address of their own.
    pub address: &'a str,
    /// The `serfHealth` check the leader keeps for every agent; catalog-only nodes have none.
    pub serf: Option<Serf<'a>>,
    /// Other node-level checks (maintenance mode, catalog-registered node checks).
    pub checks: &'a [Check],
    /// `Meta["external-node"] = "true"`: a node consul-esm keeps the checks of.
    pub external: bool,
    /// `PeerName`: imported from a cluster peer (empty: local).
    pub peer: &'a str,
    /// `Partition` (Enterprise; empty on OSS and before 1.11).
    pub partition: &'a str,
    /// The owner its node meta names (consul-esm, synthetic nodes).
    pub owner: Option<&'a Owner>,
}

impl Node<'_> {
    /// `name`, or `peer/partition/name` when it is not a local node of the default partition.
    pub fn key(&self) -> String {
        let default_partition = self.partition.is_empty() || self.partition == "default";
        if self.peer.is_empty() && default_partition {
            self.name.to_string()
        } else {
            format!("{}/{}/{}", self.peer, self.partition, self.name)
        }
    }
}

/// A node's `serfHealth` check: what the judges read of it (its ID is always `serfHealth`, and
/// the leader's check has no definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serf<'a> {
    pub status: Health,
    /// Clipped like [`Check::output`]; empty when passing.
    pub output: &'a str,
    /// Raft index of its last change; kept only while it is not passing (0 when passing: the
    /// judges and the prune re-check only compare it for nodes whose serfHealth is not).
    pub modify_index: u64,
}

/// An instance as the judges read it: a view into the [`Catalog`]'s compact storage.
#[derive(Debug, Clone, Copy)]
pub struct Instance<'a> {
    pub service: &'a str,
    pub id: &'a str,
    /// Index of its node: [`Catalog::node`].
    pub node: usize,
    /// `Service.Address`, or the node's address when that is empty (what DNS answers).
    pub address: &'a str,
    pub port: i64,
    pub tags: &'a [Arc<str>],
    pub create_index: u64,
    pub modify_index: u64,
    /// Its own checks that are not passing (a passing check's ID, output and index say nothing
    /// the judges use, so only [`Instance::passing`] counts them).
    pub failing: &'a [Check],
    /// How many of its own checks pass.
    pub passing: u64,
    /// `Namespace` (Enterprise; empty on OSS).
    pub namespace: &'a str,
    /// `PeerName` of the service entry (empty: local).
    pub peer: &'a str,
    /// The owner its service meta (or its node's meta) names.
    pub owner: Option<&'a Owner>,
    /// Its part in the service mesh, for the few instances that have one.
    pub mesh: Option<MeshRole<'a>>,
}

/// An instance's part in the service mesh, from its `Kind`, `Proxy` and `Connect` fields
/// (hashicorp/consul `agent/structs/structs.go` `NodeService`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshRole<'a> {
    /// `Kind: connect-proxy`: a sidecar forwarding to `Proxy.DestinationServiceID` on its node.
    Sidecar { destination_id: &'a str, destination_name: &'a str },
    /// `Connect.Native`: the service speaks the mesh itself.
    Native,
    /// Any other `Kind` (mesh, terminating or ingress gateways): not a service's instance.
    OtherKind,
}

/// [`MeshRole`] as the catalog stores it (the sidecar's strings in [`Strings`]).
#[derive(Debug, Clone, Copy)]
enum MeshRec {
    Sidecar(Str, Str),
    Native,
    OtherKind,
}

/// A mesh role as decoded, before its strings are stored.
enum WireRole {
    Sidecar(String, String),
    Native,
    OtherKind,
}

impl Instance<'_> {
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// How many checks of its own it has, passing or not.
    pub fn check_count(&self) -> u64 {
        self.passing + self.failing.len() as u64
    }

    /// Whether it has no check of its own.
    pub fn unchecked(&self) -> bool {
        self.passing == 0 && self.failing.is_empty()
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

/// The catalog a scan holds, stored compactly: a million nodes with a service each must fit in
/// well under 100 MiB. Strings live in one buffer ([`Strings`]) and records point into it with
/// 32-bit handles; what most instances share (service name, tags, namespace, peer, owner) is
/// one interned [`Shape`]; what few instances have (checks that are not passing, a mesh role,
/// an index or port past 32/16 bits) lives in side tables keyed by the instance. Judges read
/// it through [`Catalog::instance`] and [`Catalog::node`], which return borrowed views.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    strings: Strings,
    node_recs: Vec<NodeRec>,
    instance_recs: Vec<InstanceRec>,
    shapes: Vec<Shape>,
    scopes: Vec<NodeScope>,
    /// Checks that are not passing, in instance order, and the instance of each.
    failing: Vec<Check>,
    failing_of: Vec<u32>,
    /// Mesh roles, in instance order, and the instance of each.
    mesh: Vec<MeshRec>,
    mesh_of: Vec<u32>,
    /// Node-level checks other than serfHealth, for the few nodes that have any.
    node_checks: HashMap<u32, Vec<Check>>,
    /// serfHealth output and index of nodes where it is not passing.
    serf_detail: HashMap<u32, (Box<str>, u64)>,
    /// Values that do not fit their record's field, by (record, field).
    wide: HashMap<(u32, u8), i64>,
    /// Serf members by node name; `None` when the member list does not describe the scanned
    /// datacenter (another `--datacenter`) or could not be read.
    pub members: Option<HashMap<String, Member>>,
    pub membership: Membership,
}

/// A handle into [`Strings`]; `Str(0)` is the empty string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Str(u32);

/// Every string of the catalog in one buffer, each after its length written as one character
/// (the character whose code is the length: one byte up to 127, three up to 16 KiB), so the
/// buffer stays a `str` and reading a string back needs no UTF-8 check.
#[derive(Debug, Clone)]
struct Strings {
    buf: String,
}

impl Default for Strings {
    fn default() -> Self {
        Strings { buf: String::from('\0') }
    }
}

/// Longest string kept (below the surrogate range, so every length is a character); the
/// builder clips to [`crate::jsonclip::MAX_STRING`] well before.
const LONGEST: usize = 0xD7FF;

impl Strings {
    /// `None` once the buffer would pass 4 GiB (32-bit handles).
    fn push(&mut self, s: &str) -> Option<Str> {
        if s.is_empty() {
            return Some(Str(0));
        }
        let mut end = s.len().min(LONGEST);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let s = &s[..end];
        let at =
            u32::try_from(self.buf.len()).ok().filter(|&at| (at as u64) + s.len() as u64 + 4 <= u32::MAX as u64)?;
        self.buf.push(char::from_u32(s.len() as u32).unwrap_or('\0'));
        self.buf.push_str(s);
        Some(Str(at))
    }

    fn get(&self, s: Str) -> &str {
        let rest = self.buf.get(s.0 as usize..).unwrap_or("");
        match rest.chars().next() {
            Some(len) => rest.get(len.len_utf8()..len.len_utf8() + len as usize).unwrap_or(""),
            None => "",
        }
    }
}

/// 16 bytes a node.
#[derive(Debug, Clone, Copy)]
struct NodeRec {
    name: Str,
    address: Str,
    /// Index into [`Catalog::scopes`].
    scope: u32,
    /// 0: no serfHealth; else 1 + [`Health`] (passing, warning, critical).
    serf: u8,
}

/// What the nodes of a peer, partition and owner share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NodeScope {
    peer: Arc<str>,
    partition: Arc<str>,
    owner: Option<Arc<Owner>>,
    external: bool,
}

/// What the instances of one service usually share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    service: Arc<str>,
    tags: Arc<[Arc<str>]>,
    namespace: Arc<str>,
    peer: Arc<str>,
    /// The owner its service meta (or tags) name; the node's owner applies otherwise.
    owner: Option<Arc<Owner>>,
}

/// 28 bytes an instance.
#[derive(Debug, Clone, Copy)]
struct InstanceRec {
    shape: u32,
    id: Str,
    node: u32,
    address: Str,
    create_index: u32,
    modify_index: u32,
    port: u16,
    passing: u8,
    flags: u8,
}

/// [`InstanceRec::flags`]: the field's value is in [`Catalog::wide`].
const WIDE_PORT: u8 = 1;
const WIDE_CREATE: u8 = 2;
const WIDE_MODIFY: u8 = 4;
const WIDE_PASSING: u8 = 8;
/// It has checks that are not passing ([`Catalog::failing`]).
const FAILING: u8 = 16;
/// It has a mesh role ([`Catalog::mesh`]).
const MESH: u8 = 32;

impl Catalog {
    pub fn instance_count(&self) -> usize {
        self.instance_recs.len()
    }

    pub fn node_count(&self) -> usize {
        self.node_recs.len()
    }

    pub fn instances(&self) -> impl Iterator<Item = Instance<'_>> + '_ {
        (0..self.instance_recs.len()).map(|n| self.instance(n))
    }

    pub fn nodes(&self) -> impl Iterator<Item = Node<'_>> + '_ {
        (0..self.node_recs.len()).map(|n| self.node(n))
    }

    fn wide_or(&self, n: usize, flags: u8, flag: u8, narrow: u64) -> i64 {
        if flags & flag != 0 {
            self.wide.get(&(n as u32, flag)).copied().unwrap_or_default()
        } else {
            narrow as i64
        }
    }

    /// The range of `of` (sorted) that holds `n`.
    fn side(of: &[u32], n: usize) -> std::ops::Range<usize> {
        let n = n as u32;
        let start = of.partition_point(|k| *k < n);
        start..start + of[start..].partition_point(|k| *k == n)
    }

    /// The `n`th instance (panics past [`Catalog::instance_count`], like an index).
    pub fn instance(&self, n: usize) -> Instance<'_> {
        let r = &self.instance_recs[n];
        let shape = &self.shapes[r.shape as usize];
        let node_owner =
            self.node_recs.get(r.node as usize).and_then(|nd| self.scopes[nd.scope as usize].owner.as_deref());
        let failing = if r.flags & FAILING != 0 { &self.failing[Self::side(&self.failing_of, n)] } else { &[] };
        let mesh = if r.flags & MESH != 0 { self.mesh[Self::side(&self.mesh_of, n)].first() } else { None };
        let mesh = mesh.map(|m| match *m {
            MeshRec::Sidecar(id, name) => {
                MeshRole::Sidecar { destination_id: self.strings.get(id), destination_name: self.strings.get(name) }
            }
            MeshRec::Native => MeshRole::Native,
            MeshRec::OtherKind => MeshRole::OtherKind,
        });
        Instance {
            service: &shape.service,
            id: self.strings.get(r.id),
            node: r.node as usize,
            address: self.strings.get(r.address),
            port: self.wide_or(n, r.flags, WIDE_PORT, r.port as u64),
            tags: &shape.tags,
            create_index: self.wide_or(n, r.flags, WIDE_CREATE, r.create_index as u64) as u64,
            modify_index: self.wide_or(n, r.flags, WIDE_MODIFY, r.modify_index as u64) as u64,
            failing,
            passing: self.wide_or(n, r.flags, WIDE_PASSING, r.passing as u64) as u64,
            namespace: &shape.namespace,
            peer: &shape.peer,
            owner: shape.owner.as_deref().or(node_owner),
            mesh,
        }
    }

    /// The checks of instance `n` that are not passing, to overlay what its agent knows.
    pub fn failing_mut(&mut self, n: usize) -> &mut [Check] {
        let range = Self::side(&self.failing_of, n);
        &mut self.failing[range]
    }

    /// Each service name with a tag list its instances carry, once per distinct pair, in the
    /// order first seen.
    pub fn service_tags(&self) -> impl Iterator<Item = (&str, &[Arc<str>])> + '_ {
        self.shapes.iter().map(|s| (&*s.service, &*s.tags))
    }

    /// The `n`th node (panics past [`Catalog::node_count`], like an index).
    pub fn node(&self, n: usize) -> Node<'_> {
        let r = &self.node_recs[n];
        let scope = &self.scopes[r.scope as usize];
        let serf = match r.serf {
            0 => None,
            s => {
                let status = [Health::Passing, Health::Warning, Health::Critical][(s as usize - 1).min(2)];
                let (output, modify_index) =
                    self.serf_detail.get(&(n as u32)).map(|(o, m)| (&**o, *m)).unwrap_or(("", 0));
                Some(Serf { status, output, modify_index })
            }
        };
        Node {
            name: self.strings.get(r.name),
            address: self.strings.get(r.address),
            serf,
            checks: self.node_checks.get(&(n as u32)).map(Vec::as_slice).unwrap_or(&[]),
            external: scope.external,
            peer: &scope.peer,
            partition: &scope.partition,
            owner: scope.owner.as_deref(),
        }
    }
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
    #[serde(rename = "Definition", default)]
    definition: WireDefinition,
    #[serde(rename = "ModifyIndex", default)]
    modify_index: u64,
}

/// Longest check output kept (outputs can be 4 KiB each; a scan keeps thousands).
const OUTPUT_KEPT: usize = 200;

impl WireCheck {
    fn deregister(&self) -> Deregister {
        if !self.definition.present {
            return Deregister::Unknown;
        }
        match self.definition.deregister.as_deref() {
            Some(d) if !d.is_empty() && d != "0s" => Deregister::After(d.to_string()),
            _ => Deregister::Never,
        }
    }

    fn to_check(&self) -> Check {
        let status = Health::parse(&self.status);
        // A passing check's output says nothing the judges use: not kept (a scan holds millions).
        let output = if status == Health::Passing {
            String::new()
        } else {
            let trimmed = self.output.trim();
            let mut output: String = trimmed.chars().take(OUTPUT_KEPT).collect();
            if output.len() < trimmed.len() {
                output.push('…');
            }
            output
        };
        Check {
            id: crate::jsonclip::clip_str(&self.id).into(),
            status,
            output: output.into(),
            deregister: self.deregister(),
            modify_index: self.modify_index,
        }
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
    #[serde(rename = "Meta", default)]
    meta: Marks,
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
    fn mesh_role(&mut self) -> Option<WireRole> {
        match self.kind.as_str() {
            "" => self.connect.as_ref().and_then(|c| c.native).filter(|n| *n).map(|_| WireRole::Native),
            "connect-proxy" => {
                let p = self.proxy.take();
                let (id, name) = p.map(|p| (p.destination_id, p.destination_name)).unwrap_or_default();
                Some(WireRole::Sidecar(id.unwrap_or_default(), name.unwrap_or_default()))
            }
            _ => Some(WireRole::OtherKind),
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
    #[serde(rename = "Meta", default)]
    pub(crate) meta: Marks,
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

/// serde's own streaming decode of the whole list through the same seed: the tests' oracle for
/// [`UiNodesInto::decode`] (which the scan uses).
#[cfg(test)]
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
                while seq.next_element_seed(UiNodeSeed(&mut b))?.is_some() {
                    if b.overflow {
                        return Err(serde::de::Error::custom(
                            "the catalog's names and IDs pass 4 GiB, more than one scan holds; scan it in parts with --service",
                        ));
                    }
                }
                Ok(UiNodesInto(b))
            }
        }
        d.deserialize_seq(Nodes)
    }
}

/// Longest node entry decoded from a slice; a longer one (a node with thousands of services)
/// is decoded as it streams, so memory never holds a whole entry's bytes.
const NODE_SLICE_MAX: usize = 2 << 20;

impl UiNodesInto {
    /// Decodes `/v1/internal/ui/nodes` as it streams in: each node entry from a slice (three to
    /// four times faster than serde_json's reader), or from the stream when it is longer than
    /// [`NODE_SLICE_MAX`]. Builds the same catalog as the `Deserialize` impl. Strings of an
    /// entry decoded from a slice are bounded by the entry's length; the builder clips what it
    /// keeps ([`crate::jsonclip::clip_str`]).
    pub fn decode(r: &mut (dyn std::io::Read + Send)) -> serde_json::Result<UiNodesInto> {
        let mut b = Builder::default();
        Self::decode_into(&mut b, r)?;
        Ok(UiNodesInto(b))
    }

    /// [`UiNodesInto::decode`] into a catalog already begun (one namespace's list after
    /// another's).
    pub fn decode_into(b: &mut Builder, r: &mut (dyn std::io::Read + Send)) -> serde_json::Result<()> {
        // Entries are found on a second thread while this one decodes them.
        crate::jsonsplit::for_each_element_pipelined(r, NODE_SLICE_MAX, |e| {
            // An entry that fails to decode leaves nothing behind (its services were pushed as
            // they streamed in, before the node that ties them was known).
            let start = b.catalog.instance_recs.len();
            let decoded = Self::decode_entry(b, e);
            if decoded.is_err() {
                b.rollback_to(start);
            }
            decoded?;
            if b.overflow {
                return Err(serde::de::Error::custom(
                    "the catalog's names and IDs pass 4 GiB, more than one scan holds; scan it in parts with --service",
                ));
            }
            Ok(())
        })
    }

    fn decode_entry(b: &mut Builder, e: crate::jsonsplit::Element<'_>) -> serde_json::Result<()> {
        use crate::jsonsplit::Element;
        {
            match e {
                Element::Slice(bytes) => {
                    let mut de = serde_json::Deserializer::from_slice(bytes);
                    UiNodeSeed(&mut *b).deserialize(&mut de)?;
                    de.end()?;
                }
                Element::Stream(r) => {
                    // Strings clipped as they stream past (one may be a gigabyte long).
                    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(
                        64 * 1024,
                        crate::jsonclip::ClipStrings::new(r),
                    ));
                    UiNodeSeed(&mut *b).deserialize(&mut de)?;
                    de.end()?;
                }
            }
            Ok(())
        }
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
        let start = b.catalog.instance_recs.len();
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
                UiNodeField::Meta => once(&mut meta, map.next_value::<Marks>()?, "Meta")?,
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
    #[serde(rename = "Meta", default)]
    pub meta: Marks,
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
    #[serde(rename = "Meta", default)]
    meta: Marks,
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

fn is_external(meta: &Marks) -> bool {
    meta.is("external-node", "true")
}

fn meta_is(meta: &Marks, key: &str, value: &str) -> bool {
    meta.is(key, value)
}

/// The owner a node's meta names. Sources of each mark: see [`OwnerKind`].
fn node_owner(meta: &Marks) -> Option<(OwnerKind, String, String)> {
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
fn service_owner(meta: &Marks) -> Option<(OwnerKind, String, String)> {
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

/// The meta keys owners mark their registrations with (see [`OwnerKind`]); the rest of a
/// `Meta` map is skipped while it is decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks(Vec<(&'static str, String)>);

const MARK_KEYS: [&str; 7] =
    ["external-node", "external-probe", "external-source", "synthetic-node", "managed-by", "external-k8s-ns", "source"];

impl Marks {
    fn get(&self, key: &str) -> Option<&String> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn is(&self, key: &str, value: &str) -> bool {
        self.get(key).is_some_and(|v| v == value)
    }
}

impl<'de> Deserialize<'de> for Marks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_option(NullableMap::<Marks>::default())
    }
}

impl<'de> MapEntries<'de> for Marks {
    const EXPECTING: &'static str = "a map of strings";
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        // Values are strings in every Consul version (map[string]string).
        match MARK_KEYS.iter().find(|k| **k == key) {
            Some(k) if !self.0.iter().any(|(m, _)| m == k) => {
                self.0.push((*k, map.next_value::<Option<String>>()?.unwrap_or_default()))
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A JSON object decoded entry by entry into `T`, or `null` (then `T::default()`).
struct NullableMap<T>(std::marker::PhantomData<T>);

impl<T> Default for NullableMap<T> {
    fn default() -> Self {
        NullableMap(std::marker::PhantomData)
    }
}

/// What a [`NullableMap`] fills: one entry at a time, the value read (or skipped) by `entry`.
trait MapEntries<'de>: Default {
    const EXPECTING: &'static str;
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

impl<'de, T: MapEntries<'de>> Visitor<'de> for NullableMap<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_none<E>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut value = T::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            value.entry(&key, &mut map)?;
        }
        Ok(value)
    }
}

/// A check's `Definition`: whether the catalog holds one, and its
/// `DeregisterCriticalServiceAfter`; the rest is skipped.
#[derive(Debug, Default)]
struct WireDefinition {
    present: bool,
    deregister: Option<String>,
}

impl<'de> Deserialize<'de> for WireDefinition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_option(NullableMap::<WireDefinition>::default())
    }
}

impl<'de> MapEntries<'de> for WireDefinition {
    const EXPECTING: &'static str = "a check definition";
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        self.present = true;
        if key == "DeregisterCriticalServiceAfter" {
            self.deregister = match map.next_value::<serde_json::Value>()? {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            };
        } else {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Builds the catalog, keeping only instances of `wanted` services when that is not empty.
#[derive(Default)]
pub struct Builder {
    catalog: Catalog,
    /// Nodes by (peer, partition, name), open addressing: each slot holds node + 1 (0: free).
    /// The names are not copied: 4 to 8 bytes a node.
    node_slots: Vec<u32>,
    hasher: std::hash::RandomState,
    /// Interned strings: service names, tags, namespaces, peers and partitions.
    names: HashSet<Arc<str>>,
    /// Tag lists by a hash of their strings.
    tag_lists: HashMap<u64, Vec<Arc<[Arc<str>]>>>,
    owners: HashMap<(OwnerKind, String, String), Arc<Owner>>,
    /// Shapes by the addresses of their interned parts (equal parts are one allocation).
    shapes: HashMap<[usize; 5], u32>,
    scopes: HashMap<NodeScope, u32>,
    /// The strings passed 4 GiB: the catalog is not complete.
    overflow: bool,
}

/// An instance not tied to its node yet.
const NO_NODE: u32 = u32::MAX;

impl Builder {
    fn intern(&mut self, name: &str) -> Arc<str> {
        let name = &*crate::jsonclip::clip_str(name);
        if let Some(n) = self.names.get(name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        self.names.insert(n.clone());
        n
    }

    fn intern_tags(&mut self, tags: &[String]) -> Arc<[Arc<str>]> {
        // Found by a hash of the strings first: most instances repeat a list already seen.
        let hash = self.hasher.hash_one(tags);
        let same = |t: &Arc<[Arc<str>]>| t.len() == tags.len() && t.iter().zip(tags).all(|(a, b)| **a == **b);
        if let Some(t) = self.tag_lists.get(&hash).and_then(|lists| lists.iter().find(|t| same(t))) {
            return t.clone();
        }
        let list: Arc<[Arc<str>]> = tags.iter().map(|t| self.intern(t)).collect::<Vec<_>>().into();
        self.tag_lists.entry(hash).or_default().push(list.clone());
        list
    }

    fn owner(&mut self, found: Option<(OwnerKind, String, String)>) -> Option<Arc<Owner>> {
        let (kind, name, mark) = found?;
        let key = (kind, crate::jsonclip::clip_str(&name).into_owned(), crate::jsonclip::clip_str(&mark).into_owned());
        if let Some(o) = self.owners.get(&key) {
            return Some(o.clone());
        }
        let o = Arc::new(Owner { name: key.1.clone(), mark: key.2.clone(), kind });
        self.owners.insert(key, o.clone());
        Some(o)
    }

    fn string(&mut self, s: &str) -> Str {
        match self.catalog.strings.push(&crate::jsonclip::clip_str(s)) {
            Some(h) => h,
            None => {
                self.overflow = true;
                Str(0)
            }
        }
    }

    /// Whether the catalog's strings outgrew 32-bit handles (past 4 GiB): it is then not
    /// complete, and says so.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    fn node_hash(&self, peer: &str, partition: &str, name: &str) -> u64 {
        self.hasher.hash_one((peer, partition, name))
    }

    /// The node's slot in `node_slots`: `Ok(node)` when it is there, `Err(free slot)` if not.
    fn find_node(&self, peer: &str, partition: &str, name: &str) -> Result<usize, usize> {
        let mask = self.node_slots.len() - 1;
        let mut at = self.node_hash(peer, partition, name) as usize & mask;
        loop {
            let v = self.node_slots[at];
            if v == 0 {
                return Err(at);
            }
            let n = (v - 1) as usize;
            let r = &self.catalog.node_recs[n];
            let scope = &self.catalog.scopes[r.scope as usize];
            if self.catalog.strings.get(r.name) == name && &*scope.partition == partition && &*scope.peer == peer {
                return Ok(n);
            }
            at = (at + 1) & mask;
        }
    }

    /// Doubles the node index (kept at most three quarters full).
    fn grow_node_index(&mut self) {
        let size = (self.node_slots.len() * 2).max(64);
        let mut slots = vec![0u32; size];
        let mask = size - 1;
        for (n, r) in self.catalog.node_recs.iter().enumerate() {
            let scope = &self.catalog.scopes[r.scope as usize];
            let mut at =
                self.node_hash(&scope.peer, &scope.partition, self.catalog.strings.get(r.name)) as usize & mask;
            while slots[at] != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = n as u32 + 1;
        }
        self.node_slots = slots;
    }

    fn node(&mut self, name: &str, address: &str, meta: &Marks, peer: &str, partition: &str) -> usize {
        // (Past four billion nodes, which no memory holds, the index stops growing.)
        if (self.catalog.node_recs.len() + 1) * 4 > self.node_slots.len() * 3
            && self.catalog.node_recs.len() < (u32::MAX / 2) as usize
        {
            self.grow_node_index();
        }
        let slot = match self.find_node(peer, partition, name) {
            Ok(n) => return n,
            Err(slot) => slot,
        };
        let n = self.catalog.node_recs.len();
        let owner = self.owner(node_owner(meta));
        let scope = NodeScope {
            peer: self.intern(peer),
            partition: self.intern(partition),
            owner,
            external: is_external(meta),
        };
        let scope = match self.scopes.get(&scope) {
            Some(&s) => s,
            None => {
                let s = self.catalog.scopes.len() as u32;
                self.catalog.scopes.push(scope.clone());
                self.scopes.insert(scope, s);
                s
            }
        };
        let (name, address) = (self.string(name), self.string(address));
        self.catalog.node_recs.push(NodeRec { name, address, scope, serf: 0 });
        if let Ok(v) = u32::try_from(n + 1) {
            self.node_slots[slot] = v;
        }
        n
    }

    /// Pushes the instance of `s`, not yet tied to a node: [`Builder::attach`] does that.
    fn push_service(&mut self, mut s: WireService) {
        let n = self.catalog.instance_recs.len();
        if let Some(role) = s.mesh_role() {
            let role = match role {
                WireRole::Sidecar(id, name) => MeshRec::Sidecar(self.string(&id), self.string(&name)),
                WireRole::Native => MeshRec::Native,
                WireRole::OtherKind => MeshRec::OtherKind,
            };
            self.catalog.mesh.push(role);
            self.catalog.mesh_of.push(n as u32);
        }
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
        let shape = Shape {
            service: self.intern(&s.service),
            tags: self.intern_tags(&s.tags),
            namespace: self.intern(&s.namespace),
            peer: self.intern(&s.peer),
            owner: self.owner(found),
        };
        let key = [
            Arc::as_ptr(&shape.service) as *const u8 as usize,
            Arc::as_ptr(&shape.tags) as *const u8 as usize,
            Arc::as_ptr(&shape.namespace) as *const u8 as usize,
            Arc::as_ptr(&shape.peer) as *const u8 as usize,
            shape.owner.as_ref().map_or(0, |o| Arc::as_ptr(o) as usize),
        ];
        let shape = match self.shapes.get(&key) {
            Some(&k) => k,
            None => {
                let k = self.catalog.shapes.len() as u32;
                self.catalog.shapes.push(shape);
                self.shapes.insert(key, k);
                k
            }
        };
        // The address of the instance before, when it is the same (a node's services often
        // share one): one copy.
        let address = match self.catalog.instance_recs.last() {
            _ if s.address.is_empty() => Str(0),
            Some(last) if self.catalog.strings.get(last.address) == s.address => last.address,
            _ => self.string(&s.address),
        };
        let id = self.string(&s.id);
        let mut rec = InstanceRec {
            shape,
            id,
            node: NO_NODE,
            address,
            create_index: 0,
            modify_index: 0,
            port: 0,
            passing: 0,
            flags: if self.catalog.mesh_of.last() == Some(&(n as u32)) { MESH } else { 0 },
        };
        match u16::try_from(s.port) {
            Ok(p) => rec.port = p,
            Err(_) => self.wide(&mut rec, n, WIDE_PORT, s.port),
        }
        match u32::try_from(s.create_index) {
            Ok(v) => rec.create_index = v,
            Err(_) => self.wide(&mut rec, n, WIDE_CREATE, s.create_index as i64),
        }
        match u32::try_from(s.modify_index) {
            Ok(v) => rec.modify_index = v,
            Err(_) => self.wide(&mut rec, n, WIDE_MODIFY, s.modify_index as i64),
        }
        self.catalog.instance_recs.push(rec);
    }

    /// Drops the instances from `start` on, with what the side tables hold of them.
    fn rollback_to(&mut self, start: usize) {
        let c = &mut self.catalog;
        c.instance_recs.truncate(start);
        let keep = |of: &[u32]| of.partition_point(|&k| (k as usize) < start);
        let n = keep(&c.failing_of);
        c.failing_of.truncate(n);
        c.failing.truncate(n);
        let n = keep(&c.mesh_of);
        c.mesh_of.truncate(n);
        c.mesh.truncate(n);
        c.wide.retain(|(k, _), _| (*k as usize) < start);
    }

    fn wide(&mut self, rec: &mut InstanceRec, n: usize, flag: u8, v: i64) {
        rec.flags |= flag;
        self.catalog.wide.insert((n as u32, flag), v);
    }

    /// Ties instance `n` to its node: the node's address when it has none of its own, and its
    /// own checks (`passing` counted, the others kept).
    fn attach(&mut self, n: usize, node: usize, passing: u64, failing: Vec<Check>) {
        let node_address = self.catalog.node_recs[node].address;
        let mut rec = self.catalog.instance_recs[n];
        rec.node = node as u32;
        if rec.address == Str(0) || self.catalog.strings.get(rec.address) == self.catalog.strings.get(node_address) {
            rec.address = node_address;
        }
        match u8::try_from(passing) {
            Ok(p) => rec.passing = p,
            Err(_) => self.wide(&mut rec, n, WIDE_PASSING, passing.min(i64::MAX as u64) as i64),
        }
        if !failing.is_empty() {
            rec.flags |= FAILING;
            self.catalog.failing_of.extend(std::iter::repeat_n(n as u32, failing.len()));
            self.catalog.failing.extend(failing);
        }
        self.catalog.instance_recs[n] = rec;
    }

    fn set_node_checks(&mut self, node: usize, checks: Vec<Check>) {
        let mut others = Vec::new();
        for c in checks {
            if &*c.id == "serfHealth" {
                self.catalog.node_recs[node].serf = 1 + c.status as u8;
                if c.status == Health::Passing {
                    self.catalog.serf_detail.remove(&(node as u32));
                } else {
                    self.catalog.serf_detail.insert(node as u32, (c.output, c.modify_index));
                }
            } else {
                others.push(c);
            }
        }
        if others.is_empty() {
            return;
        }
        // The first of each ID stays (a node seen again adds only checks it did not have).
        let list = self.catalog.node_checks.entry(node as u32).or_default();
        let mut ids: HashSet<Box<str>> = list.iter().map(|c| c.id.clone()).collect();
        for c in others {
            if ids.insert(c.id.clone()) {
                list.push(c);
            }
        }
    }

    pub fn add_ui_node(&mut self, n: UiNode) {
        let start = self.catalog.instance_recs.len();
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
        meta: &Marks,
        peer: &str,
        partition: &str,
        checks: Vec<WireCheck>,
    ) {
        let node = self.node(name, address, meta, peer, partition);
        let end = self.catalog.instance_recs.len();
        let (node_checks, service_checks): (Vec<WireCheck>, Vec<WireCheck>) =
            checks.into_iter().partition(|c| c.service_id.is_empty());
        self.set_node_checks(node, node_checks.iter().map(WireCheck::to_check).collect());
        // Each instance's checks by ServiceID: a scan of the node's checks when it has few,
        // an index when a node holds many services and checks.
        let many = (end - start).saturating_mul(service_checks.len()) > 256;
        let index: HashMap<&str, Vec<usize>> = if many {
            let mut index: HashMap<&str, Vec<usize>> = HashMap::new();
            for (k, c) in service_checks.iter().enumerate() {
                index.entry(c.service_id.as_str()).or_default().push(k);
            }
            index
        } else {
            HashMap::new()
        };
        let mut taken = vec![false; service_checks.len()];
        let mut mine: Vec<usize> = Vec::new();
        for n in start..end {
            mine.clear();
            let id = self.catalog.strings.get(self.catalog.instance_recs[n].id);
            // A service without an ID gets no checks: an empty ServiceID on a check means "node check".
            if !id.is_empty() {
                if many {
                    mine.extend(index.get(id).into_iter().flatten().copied());
                } else {
                    mine.extend((0..service_checks.len()).filter(|&k| service_checks[k].service_id == id));
                }
            }
            // Two services of one ID on a node: the first takes the checks, as a map would.
            mine.retain(|&k| !std::mem::replace(&mut taken[k], true));
            let passing = mine.iter().filter(|&&k| Health::parse(&service_checks[k].status) == Health::Passing).count();
            let failing: Vec<Check> = mine
                .iter()
                .filter(|&&k| Health::parse(&service_checks[k].status) != Health::Passing)
                .map(|&k| service_checks[k].to_check())
                .collect();
            self.attach(n, node, passing as u64, failing);
        }
    }

    /// Adds `/v1/health/service/<name>` entries; Consul matches names case-insensitively, so
    /// entries of other spellings are dropped (they are scanned under their own name).
    pub fn add_health_entries(&mut self, name: &str, entries: Vec<HealthEntry>) {
        for e in entries.into_iter().filter(|e| e.service.service == name) {
            let node = self.node(&e.node.node, &e.node.address, &e.node.meta, &e.node.peer, &e.node.partition);
            let mut node_checks = Vec::new();
            let (mut passing, mut failing) = (0u64, Vec::new());
            for c in e.checks {
                if c.service_id.is_empty() {
                    node_checks.push(c.to_check());
                } else if Health::parse(&c.status) == Health::Passing {
                    passing += 1;
                } else {
                    failing.push(c.to_check());
                }
            }
            self.set_node_checks(node, node_checks);
            self.push_service(e.service);
            self.attach(self.catalog.instance_recs.len() - 1, node, passing, failing);
        }
    }

    pub fn set_members(&mut self, members: Option<Vec<WireMember>>) {
        self.catalog.members = members.map(|m| m.into_iter().map(|m| (m.name, Member::from_code(m.status))).collect());
    }

    pub fn set_membership(&mut self, membership: Membership) {
        self.catalog.membership = membership;
    }

    pub fn finish(mut self) -> Catalog {
        // Services of an entry cut short are never tied to a node: none reach the judges.
        if let Some(p) = self.catalog.instance_recs.iter().position(|r| r.node == NO_NODE) {
            self.rollback_to(p);
        }
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
        let text = body.to_string();
        let by_serde = serde_json::from_str::<UiNodesInto>(&text).unwrap().0.finish();
        let split = UiNodesInto::decode(&mut text.as_bytes()).unwrap().0.finish();
        let all = |c: &Catalog| {
            (format!("{:?}", c.nodes().collect::<Vec<_>>()), format!("{:?}", c.instances().collect::<Vec<_>>()))
        };
        assert_eq!(all(&by_serde), all(&split), "both decoders build the same catalog");
        split
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
        let all = |c: &Catalog| {
            (format!("{:?}", c.nodes().collect::<Vec<_>>()), format!("{:?}", c.instances().collect::<Vec<_>>()))
        };
        assert_eq!(all(&a), all(&b));
        assert_eq!(a.node_count(), 3, "the second n1 entry is the same node");
        let web1 = a.instance(0);
        assert_eq!((web1.address, web1.node, web1.passing, web1.failing.len()), ("10.0.0.1", 0, 1, 1));
        assert_eq!(web1.failing[0].output.as_ref(), "down");
        assert_eq!(web1.owner.map(|o| o.kind), Some(OwnerKind::Esm));
        assert_eq!(a.instance(1).address, "10.0.0.9");
        assert!(a.instance(2).unchecked(), "a service without an ID gets no checks");
        assert_eq!(a.instance(3).owner.map(|o| o.name.as_str()), Some("someone"));
        assert_eq!((a.instance(3).namespace, a.node(2).peer, a.node(2).partition), ("ns1", "east", "p1"));
        assert_eq!((a.instance(4).node, a.instance(4).failing.len()), (0, 1));
        assert_eq!(a.node(0).checks.len(), 1);
        assert_eq!(a.node(0).serf.map(|s| s.status), Some(Health::Passing));
        assert_eq!(a.instance(0).tags, a.instance(1).tags);
        assert_eq!(a.instance(0).tags.len(), 1);
        assert_eq!(a.instance(4).tags.len(), 2);
    }

    #[test]
    fn a_node_too_long_for_a_slice_is_decoded_from_the_stream_alike() {
        // 30,000 services on one node: past NODE_SLICE_MAX, between two small nodes.
        let services: Vec<serde_json::Value> = (0..30_000)
            .map(|k| serde_json::json!({"ID": format!("s-{k}"), "Service": format!("svc-{}", k % 50), "Port": 1000 + k, "Tags": ["a"]}))
            .collect();
        let checks: Vec<serde_json::Value> = (0..30_000)
            .map(|k| serde_json::json!({"CheckID": format!("c-{k}"), "Status": if k % 7 == 0 { "critical" } else { "passing" }, "ServiceID": format!("s-{k}")}))
            .collect();
        let body = serde_json::json!([
            {"Node": "a", "Address": "10.0.0.1", "Services": [{"ID": "x", "Service": "x"}]},
            {"Node": "big", "Address": "10.0.0.2", "Services": services, "Checks": checks},
            {"Node": "z", "Address": "10.0.0.3", "Services": [{"ID": "y", "Service": "y"}]}
        ]);
        assert!(body.to_string().len() > NODE_SLICE_MAX);
        let c = streamed(&body);
        assert_eq!((c.node_count(), c.instance_count()), (3, 30_002));
        assert_eq!(c.instances().filter(|i| !i.failing.is_empty()).count(), 30_000 / 7 + 1);
        assert_eq!(c.instance(30_001).id, "y");
    }

    #[test]
    fn an_entry_that_fails_to_decode_leaves_no_instance_behind() {
        // The second namespace's list breaks inside a node, after two of its services.
        let mut b = Builder::default();
        let good =
            r#"[{"Node": "a", "Services": [{"ID": "a1", "Service": "s", "Kind": "connect-proxy", "Proxy": {}}]}]"#;
        UiNodesInto::decode_into(&mut b, &mut good.as_bytes()).unwrap();
        let bad = r#"[{"Node": "b", "Services": [{"ID": "b1", "Service": "s", "Port": 99999}, {"ID": "b2", "Service": "s", "Kind": "mesh-gateway"}], "Checks": 5}]"#;
        assert!(UiNodesInto::decode_into(&mut b, &mut bad.as_bytes()).is_err());
        let c = b.finish();
        assert_eq!((c.instance_count(), c.node_count()), (1, 1));
        assert!(c.instance(0).mesh.is_some() && c.instance(0).node == 0);
        assert!(c.wide.is_empty() && c.mesh.len() == 1);
    }

    #[test]
    fn kept_strings_are_clipped_however_the_entry_was_decoded() {
        // 100 KiB strings: an entry decoded from a slice; 1 MiB ones: a streamed entry.
        for len in [100 << 10, 1 << 20] {
            let long = "n".repeat(len);
            let body = serde_json::json!([{"Node": long, "Address": "10.0.0.1", "Meta": {"external-source": long},
                "Services": [{"ID": long, "Service": long}]}]);
            let c = UiNodesInto::decode(&mut body.to_string().as_bytes()).unwrap().0.finish();
            let (node, i) = (c.node(0), c.instance(0));
            for kept in [node.name, i.id, i.service, &i.owner.unwrap().name] {
                assert_eq!(kept.len(), crate::jsonclip::MAX_STRING + "…".len(), "{len}");
            }
        }
    }

    #[test]
    fn wide_values_and_long_strings_survive_the_compact_records() {
        // Ports past 16 bits, indexes past 32 bits, and many checks: kept exactly.
        let body = serde_json::json!([{
            "Node": "n1", "Address": "10.0.0.1",
            "Services": [{"ID": "a", "Service": "s", "Port": 70000, "CreateIndex": 5_000_000_000u64, "ModifyIndex": 6_000_000_000u64},
                         {"ID": "b", "Service": "s", "Port": -1, "Address": "x".repeat(300)}],
            "Checks": (0..300).map(|k| serde_json::json!({"CheckID": format!("c{k}"), "Status": "passing", "ServiceID": "a"}))
                .chain([serde_json::json!({"CheckID": "serfHealth", "Status": "critical", "Output": "gone", "ModifyIndex": 7_000_000_000u64, "ServiceID": ""})])
                .collect::<Vec<_>>()
        }]);
        let c = streamed(&body);
        let a = c.instance(0);
        assert_eq!((a.port, a.create_index, a.modify_index, a.passing), (70000, 5_000_000_000, 6_000_000_000, 300));
        let b = c.instance(1);
        assert_eq!((b.port, b.address.len(), b.unchecked()), (-1, 300, true));
        let serf = c.node(0).serf.unwrap();
        assert_eq!((serf.status, serf.output, serf.modify_index), (Health::Critical, "gone", 7_000_000_000));
        let mut st = Strings::default();
        let (two, three) = ("é".repeat(100), "€".repeat(20_000));
        let (h1, h2, h3) = (st.push(&two).unwrap(), st.push("x").unwrap(), st.push(&three).unwrap());
        assert_eq!((st.get(h1), st.get(h2), st.get(Str(0))), (two.as_str(), "x", ""));
        assert_eq!(st.get(h3), "€".repeat(LONGEST / 3), "cut at a character below the longest length");
    }

    #[test]
    fn nodes_are_found_again_by_peer_partition_and_name() {
        // 100,000 names give 32-bit hash collisions about once a run: the chain finds the right one.
        let mut b = Builder::default();
        let meta = Marks::default();
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
        assert_eq!(b.catalog.node_count(), n + 2);
        assert_eq!(b.catalog.node(1).address, "10.0.0.1", "the first entry's address stays");
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
            assert!(UiNodesInto::decode(&mut bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
