//! What `wait` waits for, the instances it reads from `/v1/health/service/<name>`, and the pure
//! judgement of one answer: how many instances match, how many pass, whether the condition holds.

use serde::{Deserialize, Serialize};

/// Longest check output kept per check (Consul keeps up to 4 KiB; the line needs the start).
const MAX_OUTPUT: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// At least this many matching instances with every check passing.
    Passing(usize),
    /// At least one matching instance in the catalog, whatever its health.
    Registered,
    /// No matching instance left in the catalog.
    Gone,
}

/// The condition, as given on the command line (already validated).
#[derive(Debug, Clone, Serialize)]
pub struct Condition {
    pub service: String,
    pub id: Option<String>,
    pub tags: Vec<String>,
    pub node: Option<String>,
    pub goal: Goal,
    /// `--connect`: an instance counts only when its sidecar proxy (or the instance itself,
    /// Connect-native) passes too, as `/v1/health/connect/<name>?passing` lists it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub connect: bool,
    /// `--peer`: the service is imported from this cluster peer (read with `?peer=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

impl Condition {
    pub fn matches(&self, i: &Instance) -> bool {
        self.id.as_ref().is_none_or(|id| *id == i.id)
            && self.node.as_ref().is_none_or(|n| *n == i.node)
            && self.tags.iter().all(|t| i.tags.contains(t))
    }

    /// `"web" (ID web-1, tags [v2]) passing on at least 2 instances`
    pub fn describe(&self) -> String {
        let mut what = format!("{:?}", self.service);
        let mut quals = Vec::new();
        if let Some(id) = &self.id {
            quals.push(format!("ID {id}"));
        }
        if let Some(n) = &self.node {
            quals.push(format!("node {n}"));
        }
        if !self.tags.is_empty() {
            quals.push(format!("tags [{}]", self.tags.join(", ")));
        }
        if let Some(p) = &self.peer {
            quals.push(format!("imported from peer {p}"));
        }
        if !quals.is_empty() {
            what.push_str(&format!(" ({})", quals.join(", ")));
        }
        let mesh = if self.connect { " with its sidecar (mesh)" } else { "" };
        match self.goal {
            Goal::Passing(1) => format!("{what} passing{mesh}"),
            Goal::Passing(n) => format!("{what} passing{mesh} on at least {n} instances"),
            Goal::Registered => format!("{what} registered"),
            Goal::Gone => format!("{what} gone from the catalog"),
        }
    }
}

/// Health of one instance: the worst of its checks (node checks included), or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Absent,
    Passing,
    Warning,
    Critical,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Absent => "absent",
            Health::Passing => "passing",
            Health::Warning => "warning",
            Health::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckState {
    pub name: String,
    pub status: String,
    pub output: String,
}

/// One entry of `/v1/health/service/<name>`, reduced to what the condition needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub node: String,
    pub id: String,
    pub tags: Vec<String>,
    pub checks: Vec<CheckState>,
    /// For a `connect-proxy` entry (of `/v1/health/connect/<name>`): the service ID it is the
    /// sidecar of (`Proxy.DestinationServiceID`).
    pub proxy_for: Option<String>,
    /// Who registered it when no agent did (consul-k8s, a cluster peer): crate::agentless.
    pub owner: Option<crate::agentless::Owner>,
}

impl Instance {
    pub fn health(&self) -> Health {
        self.checks.iter().map(|c| status_health(&c.status)).max().unwrap_or(Health::Passing)
    }

    /// The worst check, as "name: output" (what the operator needs to see first).
    pub fn worst_check(&self) -> Option<String> {
        let worst = self.checks.iter().max_by_key(|c| status_health(&c.status))?;
        if status_health(&worst.status) == Health::Passing {
            return None;
        }
        let output = if worst.output.is_empty() { "(no output yet)" } else { worst.output.as_str() };
        Some(format!("{}: {output}", worst.name))
    }
}

/// Consul check statuses; "maintenance" and anything unknown count as critical.
fn status_health(s: &str) -> Health {
    match s {
        "passing" => Health::Passing,
        "warning" => Health::Warning,
        _ => Health::Critical,
    }
}

impl<'de> Deserialize<'de> for Instance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Node {
            #[serde(rename = "Node")]
            node: String,
            #[serde(rename = "Meta", default)]
            meta: Option<std::collections::HashMap<String, String>>,
        }
        #[derive(Deserialize)]
        struct Proxy {
            #[serde(rename = "DestinationServiceID", default)]
            destination_service_id: Option<String>,
        }
        #[derive(Deserialize)]
        struct Service {
            #[serde(rename = "ID")]
            id: String,
            #[serde(rename = "Tags", default)]
            tags: Option<Vec<String>>,
            #[serde(rename = "Kind", default)]
            kind: Option<String>,
            #[serde(rename = "Proxy", default)]
            proxy: Option<Proxy>,
            #[serde(rename = "Meta", default)]
            meta: Option<std::collections::HashMap<String, String>>,
            #[serde(rename = "PeerName", default)]
            peer: Option<String>,
        }
        #[derive(Deserialize)]
        struct Check {
            #[serde(rename = "Name", default)]
            name: String,
            #[serde(rename = "CheckID", default)]
            id: String,
            #[serde(rename = "Status")]
            status: String,
            #[serde(rename = "Output", default)]
            output: Option<String>,
            #[serde(rename = "Notes", default)]
            notes: Option<String>,
        }
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "Node")]
            node: Node,
            #[serde(rename = "Service")]
            service: Service,
            #[serde(rename = "Checks", default)]
            checks: Option<Vec<Check>>,
        }
        let e = Entry::deserialize(d)?;
        let checks = e
            .checks
            .unwrap_or_default()
            .into_iter()
            .map(|c| CheckState {
                // Only a failing check's output is ever shown: passing ones keep none. A
                // maintenance check has no output: its reason (Notes) is what to show.
                output: if c.status == "passing" {
                    String::new()
                } else if is_maintenance(&c.id) && c.output.as_deref().unwrap_or("").is_empty() {
                    format!(
                        "maintenance: {}",
                        shorten(c.notes.as_deref().filter(|n| !n.is_empty()).unwrap_or("no reason given"))
                    )
                } else {
                    shorten(c.output.as_deref().unwrap_or(""))
                },
                name: if c.name.is_empty() { c.id } else { c.name },
                status: c.status,
            })
            .collect();
        let owner =
            crate::agentless::owner_of(e.node.meta.as_ref(), e.service.meta.as_ref(), e.service.peer.as_deref());
        let proxy_for = match e.service.kind.as_deref() {
            Some("connect-proxy") => e.service.proxy.and_then(|p| p.destination_service_id).filter(|d| !d.is_empty()),
            _ => None,
        };
        Ok(Instance {
            node: e.node.node,
            id: e.service.id,
            tags: e.service.tags.unwrap_or_default(),
            checks,
            proxy_for,
            owner,
        })
    }
}

/// `consul maint` checks: `_service_maintenance:<service id>` and `_node_maintenance`.
pub fn is_maintenance(check_id: &str) -> bool {
    check_id.starts_with("_service_maintenance:") || check_id == "_node_maintenance"
}

pub(crate) fn shorten(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_OUTPUT {
        return one_line;
    }
    let mut out: String = one_line.chars().take(MAX_OUTPUT).collect();
    out.push('…');
    out
}

/// One answer judged against the condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub matching: usize,
    pub passing: usize,
    /// Instances of the service in the answer (matching or not).
    pub total: usize,
    pub met: bool,
}

pub fn judge(cond: &Condition, instances: &[Instance]) -> Tally {
    let matching: Vec<&Instance> = instances.iter().filter(|i| cond.matches(i)).collect();
    let passing = matching.iter().filter(|i| i.health() == Health::Passing).count();
    let met = match cond.goal {
        Goal::Passing(n) => passing >= n,
        Goal::Registered => !matching.is_empty(),
        Goal::Gone => matching.is_empty(),
    };
    Tally { matching: matching.len(), passing, total: instances.len(), met }
}

/// The mesh entry (`/v1/health/connect/<name>`) that stands for instance `i`: its sidecar on
/// the same node, or the instance itself when it is Connect-native.
pub fn mesh_entry<'a>(i: &Instance, mesh: &'a [Instance]) -> Option<&'a Instance> {
    let mine = |m: &&Instance| m.node == i.node && m.proxy_for.as_deref() == Some(i.id.as_str());
    let native = |m: &&Instance| m.node == i.node && m.proxy_for.is_none() && m.id == i.id;
    mesh.iter().find(mine).or_else(|| mesh.iter().find(native))
}

/// `--connect`: the service's instances judged with their sidecars; an instance passes only
/// when it and its mesh entry both pass.
pub fn judge_mesh(cond: &Condition, instances: &[Instance], mesh: &[Instance]) -> Tally {
    let matching: Vec<&Instance> = instances.iter().filter(|i| cond.matches(i)).collect();
    let passing = matching
        .iter()
        .filter(|i| i.health() == Health::Passing)
        .filter(|i| mesh_entry(i, mesh).is_some_and(|m| m.health() == Health::Passing))
        .count();
    let met = match cond.goal {
        Goal::Passing(n) => passing >= n,
        Goal::Registered => !matching.is_empty(),
        Goal::Gone => matching.is_empty(),
    };
    Tally { matching: matching.len(), passing, total: instances.len(), met }
}

/// A change of one matching instance's health between two answers.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub instance: String,
    pub node: String,
    pub from: Health,
    pub to: Health,
    pub at_ms: u64,
    /// Consul's output of the worst check after the change (empty when passing or gone).
    pub output: String,
}

/// What the last answer said about each matching instance: (node, service ID) -> health and
/// worst check. Only this is kept between answers, not the whole list.
pub type Seen = std::collections::BTreeMap<(String, String), (Health, Option<String>)>;

pub fn snapshot(cond: &Condition, list: &[Instance]) -> Seen {
    list.iter()
        .filter(|i| cond.matches(i))
        .map(|i| ((i.node.clone(), i.id.clone()), (i.health(), i.worst_check())))
        .collect()
}

/// The changes from `before` to `after`, in a stable order: a new health, or a new check output
/// while not passing.
pub fn changes(before: &Seen, after: &Seen, at_ms: u64) -> Vec<Change> {
    let mut out = Vec::new();
    for ((node, id), (to, worst)) in after {
        let old = before.get(&(node.clone(), id.clone()));
        let from = old.map(|o| o.0).unwrap_or(Health::Absent);
        let output_changed = old.is_some_and(|o| o.1 != *worst);
        if from != *to || (*to != Health::Passing && output_changed) {
            let output = worst.clone().unwrap_or_default();
            out.push(Change { instance: id.clone(), node: node.clone(), from, to: *to, at_ms, output });
        }
    }
    for ((node, id), (health, _)) in before {
        if !after.contains_key(&(node.clone(), id.clone())) {
            let (instance, node) = (id.clone(), node.clone());
            out.push(Change { instance, node, from: *health, to: Health::Absent, at_ms, output: String::new() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(node: &str, id: &str, tags: &[&str], statuses: &[&str]) -> Instance {
        Instance {
            proxy_for: None,
            node: node.into(),
            id: id.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            checks: statuses
                .iter()
                .enumerate()
                .map(|(n, s)| CheckState { name: format!("c{n}"), status: s.to_string(), output: format!("out {s}") })
                .collect(),
            owner: None,
        }
    }

    fn cond(goal: Goal) -> Condition {
        Condition { service: "web".into(), id: None, tags: vec![], node: None, goal, connect: false, peer: None }
    }

    #[test]
    fn connect_needs_the_sidecar_to_pass_too() {
        // Shapes of a real 1.8.7 /v1/health/connect/web answer (a sidecar and its checks;
        // agent/health_endpoint.go `HealthConnectServiceNodes`).
        let body = r#"[{"Node": {"Node": "n1"}, "Service": {"Kind": "connect-proxy", "ID": "web-sidecar-proxy",
            "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "web"}},
            "Checks": [{"CheckID": "service:web-sidecar-proxy:1", "Name": "Connect Sidecar Listening", "Status": "critical",
                        "Output": "dial tcp 127.0.0.1:21000: connect: connection refused"}]}]"#;
        let mesh: Vec<Instance> = serde_json::from_str(body).unwrap();
        assert_eq!(mesh[0].proxy_for.as_deref(), Some("web"));
        let web = vec![inst("n1", "web", &[], &["passing"])];
        let mut c = cond(Goal::Passing(1));
        c.connect = true;
        assert!(c.describe().contains("with its sidecar"));
        assert!(judge(&c, &web).met, "the plain condition holds");
        assert_eq!(judge_mesh(&c, &web, &mesh), Tally { matching: 1, passing: 0, total: 1, met: false });
        let mut up = mesh.clone();
        up[0].checks[0].status = "passing".into();
        assert!(judge_mesh(&c, &web, &up).met);
        // A sidecar on another node does not count; a native instance stands for itself.
        up[0].node = "n2".into();
        assert!(!judge_mesh(&c, &web, &up).met);
        let native = vec![inst("n1", "web", &[], &["passing"])];
        assert!(judge_mesh(&c, &web, &native).met);
        assert!(!judge_mesh(&c, &web, &[]).met);
    }

    #[test]
    fn decodes_a_health_entry_and_takes_the_worst_check() {
        let body = r#"[{"Node": {"Node": "n1", "Address": "127.0.0.1"},
            "Service": {"ID": "web-1", "Service": "web", "Tags": null, "Port": 80},
            "Checks": [{"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing", "Output": "Agent alive"},
                       {"CheckID": "service:web-1", "Name": "Service 'web' check", "Status": "critical",
                        "Output": "HTTP GET http://127.0.0.1:1/x: 503 Service Unavailable\n"}]}]"#;
        let list: Vec<Instance> = serde_json::from_str(body).unwrap();
        assert_eq!(list[0].health(), Health::Critical);
        assert_eq!(
            list[0].worst_check().unwrap(),
            "Service 'web' check: HTTP GET http://127.0.0.1:1/x: 503 Service Unavailable"
        );
        assert!(serde_json::from_str::<Vec<Instance>>(r#"[{"Service": {}}]"#).is_err());
    }

    #[test]
    fn passing_needs_every_check_and_the_minimum() {
        let list = vec![inst("n1", "a", &[], &["passing", "passing"]), inst("n2", "b", &[], &["passing", "warning"])];
        assert_eq!(judge(&cond(Goal::Passing(1)), &list), Tally { matching: 2, passing: 1, total: 2, met: true });
        assert!(!judge(&cond(Goal::Passing(2)), &list).met);
        assert!(judge(&cond(Goal::Registered), &list).met);
        assert!(!judge(&cond(Goal::Gone), &list).met);
        assert!(judge(&cond(Goal::Gone), &[]).met);
    }

    #[test]
    fn id_node_and_tags_filter() {
        let list = vec![inst("n1", "a", &["v1"], &["passing"]), inst("n2", "b", &["v2", "canary"], &["passing"])];
        let mut c = cond(Goal::Passing(1));
        c.tags = vec!["v2".into(), "canary".into()];
        assert_eq!(judge(&c, &list).matching, 1);
        c.tags = vec!["v3".into()];
        assert!(!judge(&c, &list).met);
        let mut c = cond(Goal::Gone);
        c.node = Some("n1".into());
        assert!(!judge(&c, &list).met);
        c.node = Some("n3".into());
        assert!(judge(&c, &list).met);
        let mut c = cond(Goal::Passing(1));
        c.id = Some("b".into());
        assert_eq!(judge(&c, &list).matching, 1);
        assert!(c.describe().contains("ID b"));
    }

    #[test]
    fn changes_name_instance_from_and_to() {
        let c = cond(Goal::Passing(1));
        let a = vec![inst("n1", "a", &[], &["critical"])];
        let b = vec![inst("n1", "a", &[], &["passing"]), inst("n2", "b", &[], &["critical"])];
        let (a, b) = (snapshot(&c, &a), snapshot(&c, &b));
        let ch = changes(&a, &b, 7);
        assert_eq!(ch.len(), 2);
        assert_eq!((ch[0].instance.as_str(), ch[0].from, ch[0].to), ("a", Health::Critical, Health::Passing));
        assert_eq!(
            (ch[1].from, ch[1].to, ch[1].output.as_str()),
            (Health::Absent, Health::Critical, "c0: out critical")
        );
        let gone = changes(&b, &Seen::new(), 9);
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|g| g.to == Health::Absent));
        assert!(changes(&b, &b, 10).is_empty());
    }
}
