//! What a scan knows about the catalog: nodes, instances and their checks, decoded from
//! Consul's answers with only the fields the judges use (the rest of a catalog-sized answer is
//! skipped while it streams in).

use std::collections::HashMap;

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
    pub name: String,
    pub status: Health,
    pub output: String,
    pub deregister: Deregister,
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
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub service: String,
    pub id: String,
    /// Index into [`Catalog::nodes`].
    pub node: usize,
    /// `Service.Address`, or the node's address when that is empty (what DNS answers).
    pub address: String,
    pub port: i64,
    pub tags: Vec<String>,
    pub create_index: u64,
    pub checks: Vec<Check>,
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

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub nodes: Vec<Node>,
    pub instances: Vec<Instance>,
    /// Serf members by node name; `None` when the member list does not describe the scanned
    /// datacenter (another `--datacenter`) or could not be read.
    pub members: Option<HashMap<String, Member>>,
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
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "Output", default, deserialize_with = "null_default")]
    output: String,
    #[serde(rename = "ServiceID", default, deserialize_with = "null_default")]
    service_id: String,
    #[serde(rename = "Definition", default, deserialize_with = "null_default")]
    definition: HashMap<String, serde_json::Value>,
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
        let mut output: String = self.output.trim().chars().take(OUTPUT_KEPT).collect();
        if self.output.trim().chars().count() > OUTPUT_KEPT {
            output.push('…');
        }
        let check = Check { id: self.id, name: self.name, status: Health::parse(&self.status), output, deregister };
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
}

/// One entry of `/v1/internal/ui/nodes`: a node with all its services and checks.
#[derive(Debug, Deserialize)]
pub struct UiNode {
    #[serde(rename = "Node", default)]
    node: String,
    #[serde(rename = "Address", default, deserialize_with = "null_default")]
    address: String,
    #[serde(rename = "Meta", default, deserialize_with = "null_default")]
    meta: HashMap<String, String>,
    #[serde(rename = "Services", default, deserialize_with = "null_default")]
    services: Vec<WireService>,
    #[serde(rename = "Checks", default, deserialize_with = "null_default")]
    checks: Vec<WireCheck>,
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

/// Builds the catalog, keeping only instances of `wanted` services when that is not empty.
#[derive(Default)]
pub struct Builder {
    catalog: Catalog,
    node_index: HashMap<String, usize>,
}

impl Builder {
    fn node(&mut self, name: &str, address: &str, meta: &HashMap<String, String>) -> usize {
        if let Some(&i) = self.node_index.get(name) {
            return i;
        }
        let i = self.catalog.nodes.len();
        self.catalog.nodes.push(Node {
            name: name.to_string(),
            address: address.to_string(),
            external: is_external(meta),
            ..Node::default()
        });
        self.node_index.insert(name.to_string(), i);
        i
    }

    fn add_service(&mut self, node: usize, s: WireService, checks: Vec<Check>) {
        let address = if s.address.is_empty() { self.catalog.nodes[node].address.clone() } else { s.address };
        self.catalog.instances.push(Instance {
            service: s.service,
            id: s.id,
            node,
            address,
            port: s.port,
            tags: s.tags,
            create_index: s.create_index,
            checks,
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
        let node = self.node(&n.node, &n.address, &n.meta);
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
            let checks = by_service.remove(&s.id).unwrap_or_default();
            self.add_service(node, s, checks);
        }
    }

    /// Adds `/v1/health/service/<name>` entries; Consul matches names case-insensitively, so
    /// entries of other spellings are dropped (they are scanned under their own name).
    pub fn add_health_entries(&mut self, name: &str, entries: Vec<HealthEntry>) {
        for e in entries.into_iter().filter(|e| e.service.service == name) {
            let node = self.node(&e.node.node, &e.node.address, &e.node.meta);
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

    pub fn finish(self) -> Catalog {
        self.catalog
    }
}
