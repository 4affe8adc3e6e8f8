//! check, wait and scan against fakes that answer as Consul 1.15, 1.22 and 2.0 do, open source
//! and Enterprise, with a consul-k8s synthetic node (agentless registrations) and a peered
//! service. What the real 1.8.7 lab can show (namespaces refused on OSS, unknown fields, ?peer=
//! ignored) is tested against the real agent in tests/lab; these fakes cover the rest. Every
//! body names the source file its shape comes from.

mod common;

use common::fakeconsul::{Answer, FakeConsul, Req};
use common::*;
use serde_json::{json, Value};

/// How the fake cluster is set up.
#[derive(Clone)]
struct Cluster {
    version: &'static str,
    /// Namespace the service `web` lives in (Enterprise); `None`: the default namespace.
    web_namespace: Option<&'static str>,
    /// `web` is registered by consul-k8s's endpoints controller on a synthetic node.
    agentless: bool,
    /// `web` has no instance at all (the consul-k8s pods of other services are still there when
    /// `agentless`).
    web_absent: bool,
    /// Status of web's instance check.
    web_status: &'static str,
    /// A peer `dc2` exports `api`.
    peer_api: bool,
    /// ACLs on: the token may write/read `web` only in `web_namespace`.
    acls: bool,
    /// `GET /v1/namespaces` is refused (a token without namespace list rights).
    ns_list_denied: bool,
}

impl Cluster {
    fn oss(version: &'static str) -> Cluster {
        Cluster {
            version,
            web_namespace: None,
            agentless: false,
            web_absent: false,
            web_status: "passing",
            peer_api: false,
            acls: false,
            ns_list_denied: false,
        }
    }

    fn enterprise(&self) -> bool {
        self.version.contains("+ent")
    }

    fn ns_ok(&self, r: &Req) -> bool {
        // Enterprise: a request without ?ns= is in "default" (agent/http_ent.go parseEntMeta).
        r.q("ns").unwrap_or("default") == self.web_namespace.unwrap_or("default")
    }

    fn answer(&self, r: &Req) -> Answer {
        let ent = self.enterprise();
        // OSS refuses ?ns= on every handler that reads it (observed on 1.8.7; agent/http_ce.go).
        if !ent && r.q("ns").is_some() {
            return Answer::text(
                400,
                "Bad request: Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature",
            );
        }
        match r.path.as_str() {
            // agent/agent_endpoint.go (Self: Config, DebugConfig, Member); 1.8.7 observed for the keys.
            "/v1/agent/self" => Answer::json(
                json!({
                    "Config": {"Datacenter": "dc1", "NodeName": "consul-server-0", "Server": true, "Version": self.version.split('+').next().unwrap(), "Revision": "abc"},
                    "DebugConfig": {"ACLsEnabled": self.acls, "ACLResolverSettings": {"ACLDefaultPolicy": if self.acls {"deny"} else {"allow"}}},
                    "Member": {"Name": "consul-server-0", "Addr": "127.0.0.1", "Port": 8301,
                               "Tags": {"build": format!("{}:abc", self.version), "role": "consul", "dc": "dc1"}},
                    "Stats": {"consul": {"server": "true", "known_servers": "1"}}
                })
                .to_string(),
            ),
            // agent/status_endpoint.go
            "/v1/status/leader" => Answer::json("\"127.0.0.1:8300\""),
            "/v1/status/peers" => Answer::json("[\"127.0.0.1:8300\"]"),
            // agent/agent_endpoint.go AgentMembers (serf.Member)
            "/v1/agent/members" => Answer::json(
                json!([{"Name": "consul-server-0", "Addr": "127.0.0.1", "Port": 8301, "Status": 1,
                        "Tags": {"build": format!("{}:abc", self.version), "role": "consul", "dc": "dc1", "vsn": "2", "vsn_min": "2", "vsn_max": "3", "raft_vsn": "3"}}])
                .to_string(),
            ),
            "/v1/acl/token/self" if !self.acls => Answer::text(401, "ACL support disabled"), // acl/errors.go errDisabled
            // api/acl.go ACLToken
            "/v1/acl/token/self" => Answer::json(
                json!({"AccessorID": "5e1f0f5c-0000-4000-8000-000000000001", "Description": "deploy", "Policies": [],
                       "TemplatedPolicies": [{"TemplateName": "builtin/service", "TemplateVariables": {"Name": "web"}}]})
                .to_string(),
            ),
            // agent/acl_endpoint.go ACLAuthorize: each item in its own namespace (acl.EnterpriseMeta).
            "/v1/internal/acl/authorize" => {
                let items: Vec<Value> = serde_json::from_str(&r.body).unwrap_or_default();
                let out: Vec<Value> = items
                    .into_iter()
                    .map(|mut i| {
                        let ns = i.get("Namespace").and_then(Value::as_str).unwrap_or("default").to_string();
                        let segment = i.get("Segment").and_then(Value::as_str).unwrap_or("");
                        let allow = !self.acls || ns == self.web_namespace.unwrap_or("default") || segment != "web";
                        i["Allow"] = Value::Bool(allow);
                        i
                    })
                    .collect();
                Answer::json(Value::Array(out).to_string())
            }
            // agent/agent_endpoint.go AgentServices: the server holds no service of the pods.
            "/v1/agent/services" => Answer::json(if self.agentless || self.web_absent || !self.ns_ok(r) { "{}".to_string() } else {
                json!({"web-1": {"ID": "web-1", "Service": "web", "Address": "", "Port": 8080, "Tags": [], "Meta": {}, "Namespace": self.web_namespace.unwrap_or("default")}}).to_string()
            }),
            "/v1/agent/checks" => Answer::json("{}"),
            "/v1/catalog/datacenters" => Answer::json("[\"dc1\"]"),
            // agent/catalog_endpoint.go CatalogNodeServices (structs.NodeServices): the server's own
            // node as its own sync writes it (tagged addresses, consul-network-segment meta).
            "/v1/catalog/node/consul-server-0" => Answer::json(
                json!({"Node": {"ID": "", "Node": "consul-server-0", "Address": "127.0.0.1", "Datacenter": "dc1",
                                "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"}, "Meta": {"consul-network-segment": ""}},
                       "Services": {}})
                .to_string(),
            ),
            "/v1/health/service/web" if r.q("peer").is_none() => {
                if !self.ns_ok(r) || self.web_absent {
                    return Answer::json("[]");
                }
                Answer::json(Value::Array(vec![self.web_entry()]).to_string())
            }
            // agent/catalog_endpoint.go CatalogNodes, filtered by ?node-meta=key:value
            // (agent/http.go parseMetaFilter): the synthetic nodes consul-k8s's endpoints
            // controller registers pods on (endpoints_controller.go, metaKeySyntheticNode).
            "/v1/catalog/nodes" if r.q("node-meta") == Some("synthetic-node:true") => Answer::json(if self.agentless {
                json!([{"ID": "", "Node": "gke-node-1-virtual", "Address": "10.0.0.12", "Datacenter": "dc1",
                        "TaggedAddresses": null, "Meta": {"synthetic-node": "true"}},
                       {"ID": "", "Node": "gke-node-2-virtual", "Address": "10.0.0.13", "Datacenter": "dc1",
                        "TaggedAddresses": null, "Meta": {"synthetic-node": "true"}}])
                .to_string()
            } else {
                "[]".to_string()
            }),
            "/v1/catalog/service/web" if self.ns_ok(r) && !self.web_absent => Answer::json(
                json!([{"Node": self.web_node(), "ServiceID": self.web_id(), "ServiceName": "web", "ServiceAddress": "10.42.0.7", "ServicePort": 8080, "ServiceTags": []}]).to_string(),
            ),
            "/v1/health/checks/web" => Answer::json("[]"),
            // agent/health_endpoint.go with ?peer= (1.13+): the peer's imported instances carry PeerName.
            "/v1/health/service/api" if self.peer_api && r.q("peer") == Some("dc2") => Answer::json(
                json!([{"Node": {"Node": "dc2-node-1", "Address": "10.1.0.5", "PeerName": "dc2", "Meta": {}},
                        "Service": {"ID": "api-1", "Service": "api", "Address": "10.1.0.5", "Port": 9090, "Tags": [], "Meta": {}, "PeerName": "dc2"},
                        "Checks": [{"CheckID": "api-check", "Name": "api", "Status": "passing", "Output": "", "ServiceID": "api-1", "PeerName": "dc2"}]}])
                .to_string(),
            ),
            "/v1/health/service/api" | "/v1/catalog/service/api" => Answer::json("[]"),
            // agent/catalog_endpoint.go CatalogServices
            "/v1/catalog/services" if self.ns_ok(r) => Answer::json("{\"web\": []}"),
            "/v1/catalog/services" => Answer::json("{}"),
            // api/partition.go, api/namespace.go: lists of objects with Name (Enterprise).
            "/v1/partitions" if ent => Answer::json(json!([{"Name": "default", "Description": ""}]).to_string()),
            // acl/errors.go: a bare "Permission denied" for a list the token may not read.
            "/v1/namespaces" if ent && self.ns_list_denied => Answer::text(403, "Permission denied"),
            "/v1/namespaces" if ent => Answer::json(
                json!([{"Name": "default", "Partition": "default"}, {"Name": self.web_namespace.unwrap_or("default"), "Partition": "default"}]).to_string(),
            ),
            // agent/ui_endpoint.go UINodes: one namespace per request (?ns=), nodes with their services and checks.
            "/v1/internal/ui/nodes" => {
                let mut nodes = vec![json!({"Node": "consul-server-0", "Address": "127.0.0.1", "Meta": {}, "Services": [], "Checks": []})];
                if self.ns_ok(r) {
                    nodes.push(json!({"Node": self.web_node(), "Address": "10.0.0.12", "Meta": {},
                        "Services": [{"ID": self.web_id(), "Service": "web", "Tags": [], "Address": "10.42.0.7", "Port": 8080}],
                        "Checks": [{"Node": self.web_node(), "CheckID": "web-check", "Name": "web", "Status": self.web_status, "Output": "", "ServiceID": self.web_id(),
                                    "Definition": {"DeregisterCriticalServiceAfter": "10m"}}]}));
                }
                let a = Answer::json(Value::Array(nodes).to_string());
                // agent/http.go setResultsFilteredByACLs (1.11+): the token may not read web's namespace.
                match self.acls && !self.ns_ok(r) {
                    true => a.header("X-Consul-Results-Filtered-By-ACLs", "true"),
                    false => a,
                }
            }
            _ => Answer::json("[]"),
        }
    }

    fn web_node(&self) -> &'static str {
        if self.agentless {
            "gke-node-1-virtual"
        } else {
            "consul-server-0"
        }
    }

    fn web_id(&self) -> &'static str {
        if self.agentless {
            "web-6d4f9c7b8-x2x9q-web"
        } else {
            "web-1"
        }
    }

    /// One entry of /v1/health/service/web (agent/health_endpoint.go, structs.CheckServiceNode).
    fn web_entry(&self) -> Value {
        if self.agentless {
            // consul-k8s control-plane/connect-inject/controllers/endpoints/endpoints_controller.go
            // (createServiceRegistrations): synthetic node meta, service meta, the readiness check;
            // check name/type and output from control-plane/connect-inject/constants/constants.go.
            let output = if self.web_status == "passing" {
                "Kubernetes health checks passing".to_string()
            } else {
                "Pod \"shop/web-6d4f9c7b8-x2x9q\" is terminating".to_string()
            };
            json!({
                "Node": {"Node": "gke-node-1-virtual", "Address": "10.0.0.12", "Meta": {"synthetic-node": "true"}},
                "Service": {"ID": "web-6d4f9c7b8-x2x9q-web", "Service": "web", "Address": "10.42.0.7", "Port": 8080, "Tags": [],
                            "Meta": {"pod-name": "web-6d4f9c7b8-x2x9q", "k8s-service-name": "web", "k8s-namespace": "shop",
                                     "managed-by": "consul-k8s-endpoints-controller", "synthetic-node": "true"},
                            "Namespace": self.web_namespace.unwrap_or("default")},
                "Checks": [{"CheckID": "shop/web-6d4f9c7b8-x2x9q-web", "Name": "Kubernetes Readiness Check", "Type": "kubernetes-readiness",
                            "Status": self.web_status, "Output": output, "ServiceID": "web-6d4f9c7b8-x2x9q-web"}]
            })
        } else {
            json!({
                "Node": {"Node": "consul-server-0", "Address": "127.0.0.1", "Meta": {}},
                "Service": {"ID": "web-1", "Service": "web", "Address": "", "Port": 8080, "Tags": [], "Meta": {}},
                "Checks": [{"CheckID": "service:web-1", "Name": "web", "Status": self.web_status, "Output": "", "ServiceID": "web-1"}]
            })
        }
    }

    fn start(self) -> FakeConsul {
        FakeConsul::start(move |r| self.answer(r))
    }
}

fn check(fake: &FakeConsul, extra: &[&str]) -> (Run, Value) {
    let addr = fake.http_addr();
    let mut args = vec!["--http-addr", addr.as_str()];
    args.extend_from_slice(extra);
    check_json(&args, &[])
}

fn messages(json: &Value) -> String {
    json["checks"].as_array().unwrap().iter().map(|c| format!("{} {} {}\n", c["id"], c["code"], c["message"])).collect()
}

fn codes_of(json: &Value) -> Vec<String> {
    codes(json)
}

fn wait_json(fake: &FakeConsul, extra: &[&str]) -> (Run, Value) {
    let addr = fake.http_addr();
    let mut args = vec!["wait", "--http-addr", addr.as_str(), "--format", "json"];
    args.extend_from_slice(extra);
    let run = run_doctor(&args, &[]);
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    (run, json)
}

#[test]
fn enterprise_namespace_is_carried_on_every_request_and_authorize_item() {
    let cluster = Cluster { web_namespace: Some("team-a"), acls: true, ..Cluster::oss("1.22.1+ent") };
    // Without the namespace: the token's write is in team-a only, and the default namespace has no web.
    let fake = cluster.clone().start();
    let (_, json) = check(&fake, &["--service", "web", "--service-id", "web-1", "--token", "t-secret-1"]);
    assert!(codes_of(&json).contains(&"ACL-006".to_string()), "{}", messages(&json));
    // With it: every catalog/health/agent-service request and every authorize item carries it.
    let fake = cluster.start();
    let (run, json) =
        check(&fake, &["--service", "web", "--service-id", "web-1", "--token", "t-secret-1", "--namespace", "team-a"]);
    assert!(!codes_of(&json).contains(&"ACL-006".to_string()), "{}", messages(&json));
    assert_eq!(run.code, 0, "{}", messages(&json));
    let reqs = fake.requests();
    let scoped: Vec<&Req> = reqs
        .iter()
        .filter(|r| {
            ["/v1/health/", "/v1/catalog/service", "/v1/agent/services", "/v1/agent/checks"]
                .iter()
                .any(|p| r.path.starts_with(p))
        })
        .collect();
    assert!(!scoped.is_empty());
    for r in &scoped {
        assert_eq!(r.q("ns"), Some("team-a"), "{} without the namespace", r.target());
    }
    let authorize: Vec<&Req> = reqs.iter().filter(|r| r.path == "/v1/internal/acl/authorize").collect();
    assert!(!authorize.is_empty());
    for r in authorize {
        let items: Vec<Value> = serde_json::from_str(&r.body).unwrap();
        assert!(items.iter().all(|i| i["Namespace"] == "team-a"), "{}", r.body);
    }
    // Status and agent reads carry no namespace.
    assert!(reqs
        .iter()
        .filter(|r| r.path.starts_with("/v1/status/") || r.path == "/v1/agent/self")
        .all(|r| r.q("ns").is_none()));
    // The token with only a templated policy is not "no policies".
    assert!(result(&json, "acl.token")["message"].as_str().unwrap().contains("templated policy builtin/service"));
    let input = json["inputs"].as_array().unwrap().iter().find(|i| i["name"] == "namespace").unwrap();
    assert_eq!(input["source"], "flag");
}

#[test]
fn wait_in_an_enterprise_namespace() {
    let cluster = Cluster { web_namespace: Some("team-a"), acls: true, ..Cluster::oss("2.0.3+ent") };
    let fake = cluster.clone().start();
    let (run, json) =
        wait_json(&fake, &["--service", "web", "--deadline", "3s", "--token", "t-secret-1", "--namespace", "team-a"]);
    assert_eq!(run.code, 0, "{json:#}");
    assert!(fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/health/service/"))
        .all(|r| r.q("ns") == Some("team-a")));
    // Without it, the read is denied in the default namespace: said at once, not after the deadline.
    let fake = cluster.start();
    let (run, json) = wait_json(&fake, &["--service", "web", "--deadline", "3s", "--token", "t-secret-1"]);
    assert_eq!(run.code, 1);
    assert_eq!(json["root_cause"]["code"], "WAIT-004", "{json:#}");
}

#[test]
fn namespace_on_an_oss_agent_is_named_and_not_sent() {
    for version in ["1.15.4", "1.22.1", "2.0.3"] {
        let fake = Cluster::oss(version).start();
        let (run, json) = check(&fake, &["--service", "web", "--namespace", "team-a"]);
        assert_eq!(run.code, 1);
        assert_eq!(root_cause(&json).as_deref(), Some("API-007"), "{version}: {}", messages(&json));
        assert!(fake.requests().iter().all(|r| r.q("ns").is_none()), "{version}: ?ns= sent to OSS");
    }
}

#[test]
fn agentless_registrations_are_judged_from_the_catalog() {
    for version in ["1.22.1", "2.0.3", "2.0.3+ent"] {
        let fake = Cluster { agentless: true, ..Cluster::oss(version) }.start();
        let (run, json) = check(&fake, &["--service", "web"]);
        assert_eq!(run.code, 0, "{version}: {}", messages(&json));
        let all = messages(&json);
        assert!(
            all.contains("registered by consul-k8s's endpoints controller for pod shop/web-6d4f9c7b8-x2x9q"),
            "{all}"
        );
        assert!(
            !codes_of(&json).contains(&"CFG-022".to_string()),
            "{version}: missing-ID note for an agentless service: {all}"
        );
        assert!(!all.contains("not registered on this agent yet"), "{all}");

        let fake = Cluster { agentless: true, web_status: "critical", ..Cluster::oss(version) }.start();
        let (_, json) = check(&fake, &["--service", "web"]);
        let r = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"] == "SYN-006")
            .unwrap_or_else(|| panic!("{}", messages(&json)));
        assert!(r["message"].as_str().unwrap().contains("is terminating"), "{r:#}");
        let fix = r["fix"].as_str().unwrap();
        assert!(fix.contains("kubectl -n shop describe pod web-6d4f9c7b8-x2x9q"), "{fix}");
        assert!(!fix.contains("register through") && !fix.contains("anti-entropy"), "{fix}");
        assert!(!codes_of(&json).contains(&"SYN-001".to_string()));
    }
}

#[test]
fn wait_on_agentless_pods_names_the_pod() {
    let fake = Cluster { agentless: true, web_status: "critical", ..Cluster::oss("1.22.1") }.start();
    let (run, json) = wait_json(&fake, &["--service", "web", "--deadline", "2s"]);
    assert_eq!(run.code, 1);
    assert_eq!(json["root_cause"]["code"], "WAIT-010", "{json:#}");
    let text = json.to_string();
    assert!(text.contains("kubectl -n shop describe pod web-6d4f9c7b8-x2x9q"), "{text}");
    let fake = Cluster { agentless: true, ..Cluster::oss("2.0.3") }.start();
    let (run, json) = wait_json(&fake, &["--service", "web", "--deadline", "3s"]);
    assert_eq!(run.code, 0, "{json:#}");
}

#[test]
fn wait_for_a_service_no_pod_registered_looks_at_the_controller_not_an_agent() {
    // consul-dataplane: the catalog holds consul-k8s's synthetic nodes, none with `web`.
    let fake = Cluster { agentless: true, web_absent: true, ..Cluster::oss("1.22.1") }.start();
    let (run, json) = wait_json(&fake, &["--service", "web", "--deadline", "2s"]);
    assert_eq!(run.code, 1);
    let root = &json["root_cause"];
    assert_eq!(root["code"], "WAIT-017", "{json:#}");
    let msg = root["message"].as_str().unwrap();
    assert!(msg.contains("2 synthetic node(s)") && msg.contains("gke-node-1-virtual"), "{msg}");
    let finding = json["diagnosis"]["checks"].as_array().unwrap().iter().find(|c| c["code"] == "WAIT-017").unwrap();
    let fix = finding["fix"].as_str().unwrap();
    assert!(fix.contains("kubectl get endpoints -A --field-selector metadata.name=web"), "{fix}");
    assert!(fix.contains("connect-injector"), "{fix}");
    assert!(!fix.contains("consul services register"), "no agent advice: {fix}");
    let asked = fake.requests();
    assert!(
        asked.iter().any(|r| r.path == "/v1/catalog/nodes" && r.q("node-meta") == Some("synthetic-node:true")),
        "{asked:#?}"
    );
    // The same cluster without synthetic nodes: registrations are an agent's (WAIT-001).
    let fake = Cluster { web_absent: true, ..Cluster::oss("2.0.3") }.start();
    let (run, json) = wait_json(&fake, &["--service", "web", "--deadline", "2s"]);
    assert_eq!(run.code, 1);
    assert_eq!(json["root_cause"]["code"], "WAIT-001", "{json:#}");
}

#[test]
fn peered_service_is_the_peers() {
    let fake = Cluster { peer_api: true, ..Cluster::oss("1.15.4") }.start();
    let (run, json) = wait_json(&fake, &["--service", "api", "--peer", "dc2", "--deadline", "3s"]);
    assert_eq!(run.code, 0, "{json:#}");
    assert!(fake.requests().iter().filter(|r| r.path == "/v1/health/service/api").all(|r| r.q("peer") == Some("dc2")));
    let (_run, json) = check(&fake, &["--service", "api", "--peer", "dc2"]);
    let all = messages(&json);
    assert!(all.contains("registered by cluster peer") && all.contains("(imported)"), "{all}");
    assert!(!codes_of(&json).contains(&"CFG-022".to_string()), "{all}");
    // A peer that exports nothing: the peer's side, never "register it here".
    let (run, json) = wait_json(&fake, &["--service", "api", "--peer", "dc3", "--deadline", "2s"]);
    assert_eq!(run.code, 1);
    assert_eq!(json["root_cause"]["code"], "WAIT-011", "{json:#}");
    assert!(json.to_string().contains("consul peering read -name dc3"));
    // Without --peer, a consumer here sees no instance of the imported service.
    let (run, json) = wait_json(&fake, &["--service", "api", "--deadline", "2s"]);
    assert_eq!(run.code, 1);
    assert_eq!(json["root_cause"]["code"], "WAIT-001", "{json:#}");
}

#[test]
fn definition_fields_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let tcp_tls = dir.path().join("tcp-tls.json");
    std::fs::write(&tcp_tls, r#"{"Name": "web", "ID": "web-1", "Port": 8080, "Check": {"TCP": "127.0.0.1:8080", "TCPUseTLS": true, "Interval": "10s"}}"#).unwrap();
    let snake = dir.path().join("snake.json");
    std::fs::write(&snake, r#"{"Name": "web", "ID": "web-1", "Port": 8080, "Check": {"HTTP": "https://127.0.0.1:8080/", "tls_server_name": "web.internal", "Interval": "10s"}}"#).unwrap();
    for (version, file, code) in [
        ("1.15.4", &tcp_tls, Some("VER-005")),
        ("1.22.1", &tcp_tls, None),
        ("2.0.3", &tcp_tls, None),
        ("1.22.1", &snake, None),
    ] {
        let fake = Cluster::oss(version).start();
        let (_, json) = check(&fake, &["--service-file", file.to_str().unwrap()]);
        let def = result(&json, "version.definition");
        assert_eq!(def["code"].as_str(), code, "{version} {}: {def:#}", file.display());
    }
}

#[test]
fn scan_on_enterprise_reads_every_namespace_the_token_can_list() {
    let fake = Cluster { web_namespace: Some("team-a"), ..Cluster::oss("1.22.1+ent") }.start();
    let addr = fake.http_addr();
    let run = run_doctor(&["scan", "--http-addr", &addr, "--format", "json"], &[]);
    let json: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr));
    let endpoints = json["scanned"]["endpoints"].to_string();
    assert!(endpoints.contains("/v1/namespaces"), "{endpoints}");
    let reqs = fake.requests();
    let ui: Vec<&Req> = reqs.iter().filter(|r| r.path == "/v1/internal/ui/nodes").collect();
    assert!(
        ui.iter().any(|r| r.q("ns") == Some("team-a")) && ui.iter().any(|r| r.q("ns") == Some("default")),
        "{ui:?}"
    );
    assert!(json["scanned"]["services"].as_u64().unwrap() >= 1, "{json:#}");
    // OSS: one read, no namespace.
    let fake = Cluster::oss("2.0.3").start();
    let addr = fake.http_addr();
    let _ = run_doctor(&["scan", "--http-addr", &addr, "--format", "json"], &[]);
    assert!(fake.requests().iter().all(|r| r.path != "/v1/namespaces" && r.q("ns").is_none()));
}

#[test]
fn scan_says_which_namespaces_it_left_out() {
    let fake = Cluster { web_namespace: Some("team-a"), ns_list_denied: true, ..Cluster::oss("2.0.3+ent") }.start();
    let addr = fake.http_addr();
    let run = run_doctor(&["scan", "--http-addr", &addr, "--format", "json"], &[]);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["scanned"]["complete"], false, "{json:#}");
    let text = json["findings"].to_string();
    assert!(
        text.contains("only namespace default of partition default was scanned") && text.contains("SCN-"),
        "{text}"
    );
    assert_eq!(run.code, 1);
}

#[test]
fn scan_reads_the_filtered_by_acls_header() {
    let fake = Cluster { web_namespace: Some("team-a"), acls: true, ..Cluster::oss("1.22.1+ent") }.start();
    let addr = fake.http_addr();
    let run = run_doctor(
        &["scan", "--http-addr", &addr, "--format", "json", "--token", "t-secret-1", "--namespace", "default"],
        &[],
    );
    let json: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr));
    let text = json["findings"].to_string();
    assert!(text.contains("X-Consul-Results-Filtered-By-ACLs: true"), "{json:#}");
    assert_eq!(json["scanned"]["complete"], false);
}

#[test]
fn a_definitions_namespace_scopes_the_run_on_enterprise() {
    let fake = Cluster { web_namespace: Some("team-a"), acls: true, ..Cluster::oss("1.22.1+ent") }.start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.json");
    std::fs::write(
        &path,
        r#"{"Name": "web", "ID": "web-1", "Port": 8080, "Namespace": "team-a", "Check": {"TTL": "30s"}}"#,
    )
    .unwrap();
    let (_, json) = check(&fake, &["--service-file", path.to_str().unwrap(), "--token", "t-secret-1"]);
    assert!(!codes_of(&json).contains(&"ACL-006".to_string()), "{}", messages(&json));
    assert!(fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/health/service/"))
        .all(|r| r.q("ns") == Some("team-a")));
}

#[test]
fn check_with_a_peer_asks_for_read_not_write() {
    let fake =
        Cluster { peer_api: true, acls: true, web_namespace: Some("team-a"), ..Cluster::oss("1.22.1+ent") }.start();
    let (_, json) = check(&fake, &["--service", "api", "--peer", "dc2", "--token", "t-secret-1"]);
    assert!(!codes_of(&json).contains(&"ACL-006".to_string()), "{}", messages(&json));
    assert_eq!(result(&json, "acl.service")["status"], "pass", "{}", messages(&json));
    // A token that may not read the imported service here.
    let (_, json) = check(&fake, &["--service", "web", "--peer", "dc2", "--token", "t-secret-1"]);
    assert_eq!(root_cause(&json).as_deref(), Some("ACL-009"), "{}", messages(&json));
}
