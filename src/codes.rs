//! The one table of finding codes.
//!
//! Every warn or fail result carries a code from this table. Codes are stable: a code is never
//! deleted or reused; a retired code keeps its row (with `retired` set) and its document says what
//! replaced it. Each code's document lives in `checks/<CODE>.md` and is compiled in, so a code
//! without a document does not build and `explain` needs no file I/O.

use serde::Serialize;

/// Severity a code is reported with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Advice: shown in the report and JSON, never counted by `--fail-on warn`, never a JUnit
    /// failure. For findings that do not predict a failed or misrouted registration.
    Note,
    /// Predicts a real problem (a registration that will not behave as meant) without failing it.
    Warn,
    Fail,
}

/// One row of the catalogue.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Code {
    pub code: &'static str,
    pub stage: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    #[serde(skip)]
    pub doc: &'static str,
    pub retired: bool,
}

macro_rules! codes {
    ($( $ident:ident = $code:literal, $stage:literal, $sev:ident, $title:literal; )*) => {
        $(
            pub const $ident: &Code = &Code {
                code: $code,
                stage: $stage,
                severity: Severity::$sev,
                title: $title,
                doc: include_str!(concat!("../checks/", $code, ".md")),
                retired: false,
            };
        )*
        /// Every code, in catalogue order.
        pub const ALL: &[&Code] = &[$($ident),*];
    };
}

codes! {
    CFG_ADDRESS = "CFG-001", "config", Fail, "Consul address cannot be parsed";
    CFG_TOKEN_FILE_UNREADABLE = "CFG-002", "config", Fail, "Token file cannot be read";
    CFG_TOKEN_FILE_PERMISSIONS = "CFG-003", "config", Note, "Token file is readable by group or others";
    CFG_TOKEN_FILE_EMPTY = "CFG-004", "config", Warn, "Token file is empty and is ignored";
    CFG_TOKEN_FILE_OVERRIDES = "CFG-005", "config", Warn, "Token file overrides an explicitly given token";
    CFG_TLS_FILE_UNREADABLE = "CFG-006", "config", Fail, "TLS file or directory cannot be read";
    CFG_TLS_FILE_INVALID = "CFG-007", "config", Fail, "TLS file holds no usable PEM data";
    CFG_CLIENT_CERT_PAIR = "CFG-008", "config", Fail, "Client certificate and key must be given together";
    CFG_TLS_IGNORED = "CFG-009", "config", Note, "TLS settings have no effect on this address";
    CFG_TLS_VERIFY_OFF = "CFG-010", "config", Note, "TLS verification is disabled";
    CFG_BAD_BOOL = "CFG-011", "config", Warn, "Boolean environment variable cannot be parsed and is ignored";
    CFG_NO_PORT = "CFG-012", "config", Warn, "Address has no port: Consul clients use 80/443, not 8500";
    CFG_PROXY = "CFG-013", "config", Warn, "An HTTP proxy from the environment applies to the Consul address";
    CFG_PARSE = "CFG-014", "config", Fail, "Service definition cannot be read or parsed";
    CFG_NO_NAME = "CFG-015", "config", Fail, "Service definition has no name";
    CFG_DURATION = "CFG-016", "config", Fail, "Duration is not valid Go syntax";
    CFG_CHECK_INVALID = "CFG-017", "config", Fail, "Check definition is rejected by Consul";
    CFG_TIMEOUT_OVER_INTERVAL = "CFG-018", "config", Note, "Check timeout is longer than its interval";
    CFG_PORT_RANGE = "CFG-019", "config", Fail, "Service port is out of range";
    CFG_WILDCARD_ADDRESS = "CFG-020", "config", Fail, "Service address is a wildcard address";
    CFG_DNS_NAME = "CFG-021", "config", Warn, "Service name is not discoverable through DNS";
    CFG_NO_ID = "CFG-022", "config", Note, "Service ID omitted: it defaults to the name";
    CFG_NO_DEREGISTER = "CFG-023", "config", Note, "Critical instances are never deregistered";
    CFG_META = "CFG-024", "config", Fail, "Service meta breaks Consul's limits";
    CFG_UNKNOWN_FIELD = "CFG-025", "config", Fail, "Field unknown to Consul";
    CFG_SHORT_INTERVAL = "CFG-026", "config", Note, "Check interval below Consul's 1 s minimum";
    CFG_WRONG_TYPE = "CFG-027", "config", Fail, "Field has the wrong type";
    CFG_SCRIPT_CHECK = "CFG-028", "config", Note, "Script check needs enable_script_checks";
    CFG_WEIGHTS = "CFG-029", "config", Fail, "Service weights are invalid";
    CFG_CHECK_TARGET = "CFG-030", "config", Fail, "Check target cannot be used";
    CFG_GO_MOD = "CFG-031", "config", Fail, "Go module file cannot be read";
    CFG_DUPLICATE_ID = "CFG-032", "config", Fail, "Two services in the definition share an ID";
    CFG_IMPOSSIBLY_SHORT = "CFG-033", "config", Fail, "Check timeout or TTL too short to ever pass";
    CFG_TOKEN_CHARACTERS = "CFG-034", "config", Fail, "ACL token contains whitespace or control characters";
    CFG_SEVERAL_CHECK_TYPES = "CFG-035", "config", Fail, "Check sets several check types: Consul keeps one";
    CFG_CLI_DROPS_ARGS = "CFG-036", "config", Warn, "consul services register (1.8) drops script check args";
    CFG_DEREGISTER_BELOW_MINIMUM = "CFG-037", "config", Warn, "deregister_critical_service_after is below Consul's 1m minimum";
    CFG_ADDRESS_URL = "CFG-038", "config", Fail, "Service address is a URL, not a host";
    CFG_WRAPPED_API_BODY = "CFG-039", "config", Note, "API body inside a configuration-file wrapper";
    DNS_NXDOMAIN = "DNS-001", "dns", Fail, "Agent host name does not exist (NXDOMAIN)";
    DNS_NO_ADDRESS = "DNS-002", "dns", Fail, "Agent host name has no address records";
    DNS_TIMEOUT = "DNS-003", "dns", Fail, "DNS lookup timed out";
    DNS_SERVER_ERROR = "DNS-004", "dns", Fail, "DNS server failed or refused the lookup";
    TCP_REFUSED = "TCP-001", "tcp", Fail, "Connection refused";
    TCP_TIMEOUT = "TCP-002", "tcp", Fail, "Connection attempt timed out";
    TCP_UNREACHABLE = "TCP-003", "tcp", Fail, "Network or host unreachable";
    TCP_RESET = "TCP-004", "tcp", Fail, "Connection reset or closed without an answer";
    TCP_SILENT = "TCP-005", "tcp", Fail, "Port accepts connections but never answers";
    TCP_GRPC_PORT = "TCP-006", "tcp", Fail, "Port speaks gRPC (HTTP/2), not the HTTP API";
    TCP_PARTIAL = "TCP-007", "tcp", Warn, "Some addresses of the agent host are unreachable";
    TCP_UNIX_SOCKET = "TCP-008", "tcp", Fail, "Unix socket missing or not accessible";
    TCP_UNKNOWN_PROTOCOL = "TCP-009", "tcp", Fail, "Port speaks neither HTTP nor TLS";
    TLS_UNKNOWN_AUTHORITY = "TLS-001", "tls", Fail, "Agent certificate signed by an unknown authority";
    TLS_NAME_MISMATCH = "TLS-002", "tls", Fail, "Agent certificate is not valid for the host name";
    TLS_EXPIRED = "TLS-003", "tls", Fail, "Agent certificate expired or not yet valid";
    TLS_CLIENT_CERT_REQUIRED = "TLS-004", "tls", Fail, "Agent requires a client certificate";
    TLS_HTTPS_TO_HTTP = "TLS-005", "tls", Fail, "HTTPS spoken to a plain-HTTP port";
    TLS_HTTP_TO_HTTPS = "TLS-006", "tls", Fail, "Plain HTTP spoken to an HTTPS port";
    TLS_HANDSHAKE = "TLS-007", "tls", Fail, "TLS handshake failed";
    TLS_CLEARTEXT_TOKEN = "TLS-008", "tls", Warn, "ACL token travels in clear text to a remote host";
    TLS_CLIENT_CERT_REJECTED = "TLS-009", "tls", Fail, "Agent rejected the client certificate";
    API_NOT_CONSUL = "API-001", "api", Fail, "The HTTP server is not a Consul agent";
    API_SERVER_ERROR = "API-002", "api", Fail, "Agent answered with a server error";
    API_BAD_RESPONSE = "API-003", "api", Fail, "Agent response is not the JSON Consul sends";
    API_BLOCKED = "API-004", "api", Warn, "Endpoint blocked by the agent's http_config";
    API_TIMEOUT = "API-005", "api", Fail, "Agent response timed out or was cut off";
    API_UNKNOWN_DC = "API-006", "api", Fail, "Datacenter is unknown to the cluster";
    API_ENTERPRISE_ONLY = "API-007", "api", Fail, "Enterprise namespace or partition set against Consul OSS";
    API_WRITES_REFUSED = "API-008", "api", Fail, "Agent refuses registrations from this host";
    API_PROXY_AUTH = "API-009", "api", Fail, "A proxy in front of the agent asks for HTTP Basic credentials";
    API_NO_PEERING = "API-010", "api", Fail, "Peer given to an agent without cluster peering";
    LDR_NO_LEADER = "LDR-001", "leader", Fail, "Cluster has no leader";
    LDR_NO_SERVERS = "LDR-002", "leader", Fail, "Agent knows no Consul servers";
    LDR_NO_PATH = "LDR-003", "leader", Fail, "No path to the datacenter";
    LDR_DC_UNREACHABLE = "LDR-004", "leader", Fail, "No server of the datacenter is reachable";
    LDR_RPC_ERROR = "LDR-005", "leader", Fail, "Leader lookup failed";
    LDR_EVEN_SERVERS = "LDR-006", "leader", Note, "Even number of servers adds no fault tolerance";
    LDR_PEERS_UNREADABLE = "LDR-007", "leader", Fail, "Raft peer list is unreadable";
    ACL_NO_TOKEN = "ACL-001", "acl", Fail, "No ACL token given while ACLs deny by default";
    ACL_TOKEN_NOT_FOUND = "ACL-002", "acl", Fail, "ACL token not found (unknown, deleted or expired)";
    ACL_NOT_BOOTSTRAPPED = "ACL-003", "acl", Fail, "ACL system is not bootstrapped";
    ACL_EXPIRES_SOON = "ACL-004", "acl", Warn, "ACL token expires soon";
    ACL_LOOKUP_FAILED = "ACL-005", "acl", Fail, "ACL token lookup failed";
    ACL_NO_SERVICE_WRITE = "ACL-006", "acl", Fail, "Token lacks service:write for the service";
    ACL_NO_SERVICE_READ = "ACL-007", "acl", Warn, "Service not discoverable with the agent's default token";
    ACL_AUTHORIZE_UNUSABLE = "ACL-008", "acl", Fail, "Permission check answer is unusable";
    ACL_NO_IMPORTED_READ = "ACL-009", "acl", Fail, "Token may not read a service imported from a peer";
    DUP_LOCAL_ID = "DUP-001", "duplicates", Warn, "Service ID already registered on this agent with a different definition";
    DUP_REMOTE_ID = "DUP-002", "duplicates", Warn, "Service ID also registered on another node";
    DUP_ADDRESS = "DUP-003", "duplicates", Warn, "Same address and port registered under other IDs";
    DUP_CRITICAL = "DUP-004", "duplicates", Note, "Many instances of the service are critical";
    DUP_UNREADABLE = "DUP-005", "duplicates", Fail, "Service lists are unreadable";
    SYN_MISSING = "SYN-001", "sync", Fail, "Service registered on the agent is missing from the catalog";
    SYN_CHECK_STATUS = "SYN-002", "sync", Warn, "Catalog shows a different check status than the agent";
    SYN_DEFINITION = "SYN-003", "sync", Warn, "Catalog holds a different definition than the agent";
    SYN_CHECK_FAILING = "SYN-004", "sync", Warn, "Consul reports the service's check failing";
    SYN_UNREADABLE = "SYN-005", "sync", Fail, "Catalog or check lists are unreadable";
    SYN_OWNED_NOT_READY = "SYN-006", "sync", Warn, "Instance registered by its owner (Kubernetes, a peer) is not passing";
    SYN_NOT_RUN_YET = "SYN-008", "sync", Warn, "Check has not run yet: the instance is critical until its first run";
    SYN_CATALOG_ONLY_ON_AGENT_NODE = "SYN-009", "sync", Fail, "Catalog registration on a node whose agent does not know it";
    SYN_NO_AGENT_TOKEN = "SYN-010", "sync", Warn, "Agent may not write its own node (no agent token under default deny)";
    SYN_NODE_NAME_RESERVED = "SYN-011", "sync", Fail, "Node name is held in the catalog by another node ID";
    HLT_REFUSED = "HLT-001", "health", Fail, "Health endpoint refused the connection";
    HLT_TIMEOUT = "HLT-002", "health", Fail, "Health endpoint timed out";
    HLT_TLS = "HLT-003", "health", Fail, "Health endpoint TLS error";
    HLT_STATUS = "HLT-004", "health", Fail, "Health endpoint answers with a failing status";
    HLT_TOO_MANY = "HLT-005", "health", Warn, "Health endpoint answers 429 Too Many Requests";
    HLT_LOOPBACK = "HLT-006", "health", Warn, "Check targets loopback while the agent runs elsewhere";
    HLT_DNS = "HLT-007", "health", Fail, "Health endpoint host does not resolve";
    HLT_CLOSED = "HLT-008", "health", Fail, "Health endpoint closed the connection without an answer";
    HLT_NOT_STARTED = "HLT-009", "health", Note, "Health endpoint not answering yet (--pre-start)";
    VER_MIXED_SERVERS = "VER-001", "version", Note, "Servers run different Consul versions";
    VER_AGENT_NEWER = "VER-002", "version", Warn, "Agent is newer than the servers";
    VER_PROTOCOL = "VER-003", "version", Fail, "Protocol version outside a member's supported range";
    VER_RAFT = "VER-004", "version", Note, "Server uses Raft protocol older than 3";
    VER_FIELDS = "VER-005", "version", Fail, "Definition uses fields this agent version rejects";
    VER_MEMBERS_UNREADABLE = "VER-006", "version", Fail, "Member list is unreadable";
    VER_SCRIPTS_DISABLED = "VER-007", "version", Fail, "Script checks are disabled on this agent";
    RUN_DEADLINE = "RUN-001", "run", Fail, "Check did not finish before the run deadline";
    DSC_DNS_DISABLED = "DSC-001", "discovery", Warn, "The agent's DNS interface is disabled";
    DSC_NONE_PASSING = "DSC-002", "discovery", Fail, "No instance passes: DNS and ?passing find nothing";
    DSC_WARNING_HIDDEN = "DSC-003", "discovery", Warn, "Warning instances are left out of DNS (only_passing)";
    DSC_TAG_NOT_DNS = "DSC-004", "discovery", Warn, "Tag cannot be matched by a DNS query";
    DSC_UNREACHABLE_ADDRESS = "DSC-005", "discovery", Warn, "Answer points at an address other hosts cannot reach";
    DSC_DNS_STALE = "DSC-006", "discovery", Warn, "Consul DNS lags behind the catalog";
    DSC_NOT_FORWARDED = "DSC-007", "discovery", Warn, "The consumers' resolver does not forward the Consul domain";
    DSC_DNS_WRONG = "DSC-008", "discovery", Fail, "Consul DNS does not answer what the catalog holds";
    DSC_UNREADABLE = "DSC-009", "discovery", Fail, "Health list of the service is unreadable";
    PRB_REJECTED = "PRB-001", "probe", Fail, "The agent rejected the probe registration";
    PRB_NOT_SYNCED = "PRB-002", "probe", Fail, "Probe registration never reached the catalog";
    PRB_LEFTOVER = "PRB-003", "probe", Fail, "Probe instance may be left behind";
    WAIT_NOT_REGISTERED = "WAIT-001", "wait", Fail, "No instance matching the condition is registered";
    WAIT_NOT_PASSING = "WAIT-002", "wait", Fail, "Service is in the catalog but not passing";
    WAIT_TOO_FEW = "WAIT-003", "wait", Fail, "Fewer instances passing than required";
    WAIT_NO_READ = "WAIT-004", "wait", Fail, "Token may not read the service";
    WAIT_STILL_REGISTERED = "WAIT-005", "wait", Fail, "Instance still registered at the deadline";
    WAIT_QUERY_FAILING = "WAIT-006", "wait", Fail, "Health query kept failing";
    WAIT_NOT_BLOCKING = "WAIT-007", "wait", Note, "Blocking queries do not work through this path";
    WAIT_OWNED_NOT_READY = "WAIT-010", "wait", Fail, "Instances registered by their owner (Kubernetes, a peer) are not passing";
    WAIT_PEER_NOT_EXPORTED = "WAIT-011", "wait", Fail, "No instance of the service is imported from the peer";
    WAIT_AGENT_LOST_REGISTRATIONS = "WAIT-013", "wait", Fail, "Agent restarted recently without the service: API registrations were lost";
    WAIT_SIDECAR_NOT_PASSING = "WAIT-015", "wait", Fail, "Service passes but its sidecar proxy does not";
    WAIT_NOT_IN_MESH = "WAIT-016", "wait", Fail, "Service has no sidecar proxy or Connect-native instance in the mesh";
    WAIT_NOT_REGISTERED_BY_OWNER = "WAIT-017", "wait", Fail, "No instance registered where an owner other than an agent registers them (consul-k8s)";
    SCN_GONE_NODE = "SCN-001", "scan", Warn, "Instance on a node whose agent failed or left";
    SCN_CATALOG_ONLY = "SCN-002", "scan", Warn, "Instance on a catalog-only node that no agent maintains";
    SCN_CATALOG_ONLY_UNCHECKED = "SCN-003", "scan", Warn, "Catalog-only instance with no health check";
    SCN_DUPLICATE_ADDRESS = "SCN-004", "scan", Warn, "Same address and port registered under several service IDs";
    SCN_CRITICAL_FOREVER = "SCN-005", "scan", Warn, "Critical instance that nothing deregisters";
    SCN_NO_CHECK = "SCN-006", "scan", Warn, "Instance has no health check";
    SCN_DNS_COLLISION = "SCN-007", "scan", Warn, "Service names collide in DNS";
    SCN_DNS_NAME = "SCN-008", "scan", Warn, "Service name is not DNS-safe";
    SCN_DNS_TAG = "SCN-009", "scan", Warn, "Tags cannot be used in DNS queries";
    SCN_TOO_MANY = "SCN-010", "scan", Warn, "More instances than expected";
    SCN_HIDDEN = "SCN-011", "scan", Fail, "Part of the catalog is hidden from this token";
    SCN_UNREADABLE = "SCN-012", "scan", Fail, "Catalog cannot be read";
    SCN_NOT_FOUND = "SCN-013", "scan", Warn, "Service asked for is not in the catalog";
    SCN_PRUNE_FAILED = "SCN-014", "scan", Fail, "Prune could not deregister an instance";
    SCN_OWNED_UNHEALTHY = "SCN-015", "scan", Warn, "Registration kept by another owner is not passing";
    SCN_PEERED_UNHEALTHY = "SCN-016", "scan", Warn, "Instance imported from a cluster peer is not passing";
    SCN_MEMBERS_UNREADABLE = "SCN-017", "scan", Warn, "Cluster membership could not be read";
    SCN_UNKNOWN_TO_ITS_AGENT = "SCN-030", "scan", Warn, "Instance on an agent's node that the agent does not know";
    SCN_ORPHAN_SIDECAR = "SCN-035", "scan", Warn, "Sidecar proxy whose parent service is gone";
    SCN_MISSING_SIDECAR = "SCN-036", "scan", Warn, "Instance without the sidecar its other instances have";
    MSH_AGENT_DISABLED = "MSH-001", "mesh", Fail, "Connect is disabled on the agent";
    MSH_SERVERS_DISABLED = "MSH-002", "mesh", Fail, "Connect is disabled on the servers: no CA roots";
    MSH_NO_SIDECAR = "MSH-003", "mesh", Fail, "Sidecar proxy is not registered";
    MSH_SIDECAR_ELSEWHERE = "MSH-004", "mesh", Fail, "Sidecar proxy is registered on another node than its service";
    MSH_WRONG_LOCAL = "MSH-005", "mesh", Fail, "Sidecar proxy forwards to the wrong local service port or address";
    MSH_PROXY_NOT_RUNNING = "MSH-006", "mesh", Fail, "Nothing listens on the sidecar proxy port";
    MSH_SIDECAR_CHECK = "MSH-007", "mesh", Fail, "Sidecar proxy check is failing";
    MSH_SIDECAR_NOT_SYNCED = "MSH-008", "mesh", Fail, "Sidecar proxy is on the agent but not in the catalog";
    MSH_NO_GRPC = "MSH-009", "mesh", Fail, "Agent offers no gRPC (xDS) port for Envoy";
    MSH_GRPC_CLOSED = "MSH-010", "mesh", Fail, "The agent's gRPC (xDS) port does not accept connections";
    MSH_GRPC_TLS_ONLY = "MSH-011", "mesh", Warn, "Only the TLS gRPC port is open: Envoy needs an https:// gRPC address";
    MSH_UPSTREAM_MISSING = "MSH-012", "mesh", Fail, "Upstream service does not exist";
    MSH_UPSTREAM_NOT_PASSING = "MSH-013", "mesh", Fail, "Upstream has no passing connect-capable instance";
    MSH_BIND_COLLISION = "MSH-014", "mesh", Fail, "Upstreams collide on a local bind address and port";
    MSH_INTENTION_DENY = "MSH-015", "mesh", Fail, "An intention denies the call";
    MSH_DEFAULT_DENY = "MSH-016", "mesh", Fail, "No intention allows the call under default-deny ACLs";
    MSH_NATIVE_NOT_REGISTERED = "MSH-017", "mesh", Fail, "Connect-native service is registered without Native";
    MSH_CONSUMERS_NONE = "MSH-018", "mesh", Fail, "Mesh consumers find no passing instance";
    MSH_DNS_WRONG = "MSH-019", "mesh", Fail, "NAME.connect DNS does not answer what the mesh health API holds";
    MSH_UNREADABLE = "MSH-020", "mesh", Fail, "A Connect endpoint cannot be read";
}

/// Looks a code up after normalising the user's spelling (`acl-002`, `ACL002`, `acl_002`).
pub fn find(input: &str) -> Option<&'static Code> {
    let wanted = normalise(input)?;
    ALL.iter().copied().find(|c| c.code == wanted)
}

/// `acl002`, `Acl-002`, `ACL_002` -> `ACL-002`; `None` when it cannot be a code.
pub fn normalise(input: &str) -> Option<String> {
    let cleaned: String =
        input.trim().chars().filter(|c| !matches!(c, '-' | '_' | ' ')).collect::<String>().to_ascii_uppercase();
    let split = cleaned.find(|c: char| c.is_ascii_digit())?;
    let (tag, num) = cleaned.split_at(split);
    if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u32 = num.parse().ok()?;
    Some(format!("{tag}-{n:03}"))
}

/// Codes close to an unknown input: same tag first, then small edit distance.
pub fn suggest(input: &str) -> Vec<&'static str> {
    let norm = normalise(input).unwrap_or_else(|| input.trim().to_ascii_uppercase());
    let tag = norm.split('-').next().unwrap_or("").to_string();
    let mut scored: Vec<(usize, &'static str)> = ALL
        .iter()
        .filter_map(|c| {
            let d = edit_distance(&norm, c.code);
            let same_tag = !tag.is_empty() && c.code.starts_with(&format!("{tag}-"));
            let near = d <= 2 || (same_tag && d <= 3);
            near.then_some((d + if same_tag { 0 } else { 1 }, c.code))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, c)| c).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_user_spellings() {
        assert_eq!(normalise("acl-002").as_deref(), Some("ACL-002"));
        assert_eq!(normalise("ACL002").as_deref(), Some("ACL-002"));
        assert_eq!(normalise(" acl_2 ").as_deref(), Some("ACL-002"));
        assert_eq!(normalise("002"), None);
        assert_eq!(normalise("acl"), None);
        assert_eq!(find("tcp1").map(|c| c.code), Some("TCP-001"));
    }

    #[test]
    fn codes_are_unique_well_formed_and_tagged_by_stage() {
        let mut seen = std::collections::HashSet::new();
        for c in ALL {
            assert!(seen.insert(c.code), "duplicate code {}", c.code);
            assert_eq!(normalise(c.code).as_deref(), Some(c.code), "malformed {}", c.code);
            let tag = c.code.split('-').next().unwrap();
            let expected = match c.stage {
                "config" => "CFG",
                "dns" => "DNS",
                "tcp" => "TCP",
                "tls" => "TLS",
                "api" => "API",
                "leader" => "LDR",
                "acl" => "ACL",
                "version" => "VER",
                "duplicates" => "DUP",
                "health" => "HLT",
                "sync" => "SYN",
                "run" => "RUN",
                "discovery" => "DSC",
                "probe" => "PRB",
                "wait" => "WAIT",
                "scan" => "SCN",
                "mesh" => "MSH",
                other => panic!("unknown stage {other}"),
            };
            assert_eq!(tag, expected, "{} is in stage {}", c.code, c.stage);
        }
    }

    #[test]
    fn suggests_near_codes() {
        assert!(suggest("ACL-020").contains(&"ACL-002"));
        assert!(suggest("TPC-001").contains(&"TCP-001"));
    }
}
