//! Consul's API facts per version: the one table every version-dependent decision goes through.
//!
//! Each row says where it comes from: a file in hashicorp/consul (at the commit it was read, when
//! the tag is not known the row says which version range that commit belongs to), a pull
//! request, or an observation on the real 1.8.7 agent of the lab. A question the table cannot
//! answer for a version comes back as [`Support::NotJudged`]: the doctor then says "not judged
//! for this version" instead of guessing.

/// A Consul version as agents report it: `1.8.7`, `1.21.4+ent`, `1.22.0-rc1`, `2.0.3`, and the
/// build tags of gossip members (`1.18.2+ent:abc`). source: `version/version.go` (`Version`,
/// `VersionPrerelease`, `VersionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// `rc1` of `1.22.0-rc1`.
    pub pre: Option<String>,
    /// `+ent` metadata.
    pub enterprise: bool,
}

impl ConsulVersion {
    /// Parses a version string; `None` when it does not start with `major.minor`.
    pub fn parse(raw: &str) -> Option<ConsulVersion> {
        let s = raw.trim().trim_start_matches('v');
        // Member build tags carry the revision after ':'.
        let s = s.split([':', ' ', '\n']).next()?;
        let (s, meta) = match s.split_once('+') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let (core, pre) = match s.split_once('-') {
            Some((a, b)) => (a, Some(b.to_string()).filter(|p| !p.is_empty())),
            None => (s, None),
        };
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        let enterprise = meta.is_some_and(|m| m.split(['.', '+']).any(|p| p == "ent" || p.starts_with("ent")));
        Some(ConsulVersion { major, minor, patch, pre, enterprise })
    }

    pub fn triple(&self) -> (u32, u32, u32) {
        (self.major, self.minor, self.patch)
    }

    /// A pre-release of a version carries that version's API (an `-rc1` is judged as its release).
    pub fn at_least(&self, v: (u32, u32, u32)) -> bool {
        self.triple() >= v
    }

    pub fn edition(&self) -> Edition {
        if self.enterprise {
            Edition::Enterprise
        } else {
            Edition::Oss
        }
    }
}

impl std::fmt::Display for ConsulVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(p) = &self.pre {
            write!(f, "-{p}")?;
        }
        if self.enterprise {
            write!(f, "+ent")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    Oss,
    Enterprise,
}

/// The edition an agent runs: `+ent` in its version or in its own member's `build` tag.
pub fn edition_of(version: &str, build_tag: Option<&str>) -> Edition {
    let ent = |s: &str| ConsulVersion::parse(s).is_some_and(|v| v.enterprise);
    if ent(version) || build_tag.is_some_and(ent) {
        Edition::Enterprise
    } else {
        Edition::Oss
    }
}

/// The table's answer for one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes,
    No,
    /// No source read for this version: say so, never guess.
    NotJudged,
}

/// What a `/v1/agent/service/register` body may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Service,
    Check,
}

/// When a key is accepted in an API body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// By every version the doctor judges (1.8.7 observed and the newest source read).
    Always,
    /// By no version (1.8.7 observed 400, and absent from the newest source read).
    Never,
    /// From `first` on (one entry per release line it shipped or was backported to, oldest
    /// first; every later line accepts it); up to `last_without` (inclusive), and on a listed
    /// line below its patch, it is rejected; other versions are not judged (no source read).
    Since { first: &'static [(u32, u32, u32)], last_without: (u32, u32, u32) },
    /// Consul Enterprise only (an OSS agent rejects it).
    Enterprise,
}

/// One row: a key of an API body, when it is accepted, and the source of that.
#[derive(Debug, Clone, Copy)]
pub struct FieldFact {
    pub object: Object,
    /// As written in an API body (snake_case aliases as Consul lists them).
    pub key: &'static str,
    pub accepted: Accepted,
    pub source: &'static str,
}

/// The newest check decoder read: has OSService (1.14) and no TCPUseTLS (1.17), so 1.14–1.16.
/// The same function was read in copies of the upstream tree at other points (forks of
/// hashicorp/consul in the search index, dated by the fields their CheckType has): a 1.8/1.9
/// tree (Body and the `service_id` alias, no TLSServerName), a 1.10 tree (H2PING without
/// H2PingUseTLS) and trees of 1.17 and later (TCPUseTLS). No 1.11-1.13 tree was found.
const CHECK_TYPE_SRC: &str = "agent/structs/check_type.go CheckType.UnmarshalJSON at c806b27 (a 1.14-1.16 commit), the same in upstream copies of 1.8/1.9 (zzantares/consul e72caf1), 1.10 (tarat44/consul 8b19ed1) and 1.17+ (dumb-hashicorp/dumb-consul 5a9c353, myback/oca 1033601); 1.8.7 observed";
/// Where the 1.10 tree shows an alias already: `tls_server_name` and `grpc_use_tls` are in the
/// 1.10 tree's aliases and in every later one read; absent from the 1.8/1.9 tree, which has no
/// TLSServerName field at all (TLSServerName's first release: 1.10.0).
const TLS_ALIAS_SRC: &str = "agent/structs/check_type.go CheckType.UnmarshalJSON: in the aliases of a 1.10 upstream copy (tarat44/consul 8b19ed1: H2PING without H2PingUseTLS) and of c806b27 (1.14-1.16) and 1.17+ copies (dumb-hashicorp/dumb-consul 5a9c353), so in 1.10-1.13 too; absent from a 1.8/1.9 copy (zzantares/consul e72caf1); 1.8.7 observed 400; 1.9 not judged (no 1.9 tree dated)";
const SERVICE_DEF_SRC: &str =
    "agent/structs/service_definition.go ServiceDefinition.UnmarshalJSON (a 1.16+ commit); 1.8.7 observed";

/// Keys of API bodies whose acceptance depends on the version or edition, and every snake_case
/// alias. CamelCase keys not listed here are accepted by every version (the service.rs field
/// tables).
pub const API_FIELDS: &[FieldFact] = &[
    // snake_case aliases of the service decoder.
    FieldFact { object: Object::Service, key: "enable_tag_override", accepted: Accepted::Always, source: SERVICE_DEF_SRC },
    FieldFact { object: Object::Service, key: "tagged_addresses", accepted: Accepted::Always, source: SERVICE_DEF_SRC },
    // snake_case aliases of the check decoder.
    FieldFact { object: Object::Check, key: "args", accepted: Accepted::Always, source: CHECK_TYPE_SRC },
    FieldFact { object: Object::Check, key: "script_args", accepted: Accepted::Always, source: CHECK_TYPE_SRC },
    FieldFact {
        object: Object::Check,
        key: "deregister_critical_service_after",
        accepted: Accepted::Always,
        source: CHECK_TYPE_SRC,
    },
    FieldFact { object: Object::Check, key: "docker_container_id", accepted: Accepted::Always, source: CHECK_TYPE_SRC },
    FieldFact { object: Object::Check, key: "tls_skip_verify", accepted: Accepted::Always, source: CHECK_TYPE_SRC },
    FieldFact { object: Object::Check, key: "service_id", accepted: Accepted::Always, source: CHECK_TYPE_SRC },
    FieldFact {
        object: Object::Check,
        key: "tls_server_name",
        accepted: Accepted::Since { first: &[(1, 10, 0)], last_without: (1, 8, 7) },
        source: TLS_ALIAS_SRC,
    },
    FieldFact {
        object: Object::Check,
        key: "grpc_use_tls",
        accepted: Accepted::Since { first: &[(1, 10, 0)], last_without: (1, 8, 7) },
        source: TLS_ALIAS_SRC,
    },
    FieldFact {
        object: Object::Check,
        key: "h2ping_use_tls",
        // Not in the 1.10 tree (no H2PingUseTLS field yet, first release 1.11.0); in c806b27.
        // 1.11-1.13: no tree read, not judged.
        accepted: Accepted::Since { first: &[(1, 14, 0)], last_without: (1, 10, 99) },
        source: "agent/structs/check_type.go CheckType.UnmarshalJSON: absent from a 1.10 upstream copy (tarat44/consul 8b19ed1, no H2PingUseTLS field) and older ones, present at c806b27 (1.14-1.16) and in 1.17+ copies; 1.11-1.13 not judged",
    },
    FieldFact {
        object: Object::Check,
        key: "tcp_use_tls",
        // With TCPUseTLS itself (see its row): which 1.16 patch carries it is unknown.
        accepted: Accepted::Since { first: &[(1, 17, 0)], last_without: (1, 15, 99) },
        source: "agent/structs/check_type.go CheckType.UnmarshalJSON: in 1.17+ upstream copies (dumb-hashicorp/dumb-consul 5a9c353, myback/oca 1033601, arenadata/consul 3e8a3a4) beside TCPUseTLS, absent at c806b27 (1.14-1.16); hashicorp/consul PR #18381 (backport/1.16)",
    },
    FieldFact { object: Object::Check, key: "success_before_passing", accepted: Accepted::Never, source: CHECK_TYPE_SRC },
    FieldFact {
        object: Object::Check,
        key: "failures_before_critical",
        accepted: Accepted::Never,
        source: CHECK_TYPE_SRC,
    },
    FieldFact {
        object: Object::Check,
        key: "failures_before_warning",
        accepted: Accepted::Never,
        source: "agent/structs/check_type.go CheckType.UnmarshalJSON at c806b27 (a 1.14-1.16 commit)",
    },
    FieldFact { object: Object::Check, key: "alias_service", accepted: Accepted::Never, source: CHECK_TYPE_SRC },
    FieldFact { object: Object::Check, key: "alias_node", accepted: Accepted::Never, source: CHECK_TYPE_SRC },
    // Newer CamelCase fields: 1.8.7 answers 400 `json: unknown field` for each (observed).
    FieldFact {
        object: Object::Check,
        key: "TLSServerName",
        accepted: Accepted::Since { first: &[(1, 10, 0)], last_without: (1, 8, 7) },
        source: "first release 1.10.0 per the upstream changelog (carried over from the earlier table, not re-read); 1.8.7 observed; agent/structs/check_type.go at c806b27",
    },
    FieldFact {
        object: Object::Check,
        key: "H2PING",
        accepted: Accepted::Since { first: &[(1, 10, 0)], last_without: (1, 8, 7) },
        source: "first release 1.10.0 per the upstream changelog (carried over from the earlier table, not re-read); 1.8.7 observed; agent/structs/check_type.go at c806b27",
    },
    FieldFact {
        object: Object::Check,
        key: "H2PingUseTLS",
        accepted: Accepted::Since { first: &[(1, 11, 0)], last_without: (1, 8, 7) },
        source: "first release 1.11.0 per the upstream changelog (carried over from the earlier table, not re-read); agent/structs/check_type.go at c806b27",
    },
    FieldFact {
        object: Object::Check,
        key: "UDP",
        accepted: Accepted::Since { first: &[(1, 13, 0)], last_without: (1, 8, 7) },
        source: "first release 1.13.0 per the upstream changelog (carried over from the earlier table, not re-read); 1.8.7 observed; agent/structs/check_type.go at c806b27",
    },
    FieldFact {
        object: Object::Check,
        key: "OSService",
        accepted: Accepted::Since { first: &[(1, 14, 0)], last_without: (1, 8, 7) },
        source: "first release 1.14.0 per the upstream changelog (carried over from the earlier table, not re-read); 1.8.7 observed; agent/structs/check_type.go at c806b27",
    },
    FieldFact {
        object: Object::Check,
        key: "FailuresBeforeWarning",
        accepted: Accepted::Since { first: &[(1, 11, 0)], last_without: (1, 8, 7) },
        source: "first release 1.11.0 per the upstream changelog (carried over from the earlier table, not re-read); agent/structs/check_type.go at c806b27",
    },
    FieldFact {
        object: Object::Check,
        key: "DisableRedirects",
        accepted: Accepted::Since { first: &[(1, 9, 17), (1, 10, 10), (1, 11, 5), (1, 12, 0)], last_without: (1, 8, 7) },
        source: "first releases 1.9.17 / 1.10.10 / 1.11.5 / 1.12.0 per the upstream changelog (security backport; carried over from the earlier table, not re-read); agent/structs/check_type.go at c806b27",
    },
    FieldFact {
        object: Object::Check,
        key: "TCPUseTLS",
        // Merged 2023-08 with the backport/1.16 label: which 1.16 patch carries it is unknown.
        accepted: Accepted::Since { first: &[(1, 17, 0)], last_without: (1, 15, 99) },
        source: "hashicorp/consul PR #18381 (Add TCP+TLS Healthchecks, backport/1.16); absent from check_type.go at c806b27; 1.8.7 observed",
    },
    FieldFact {
        object: Object::Service,
        key: "SocketPath",
        accepted: Accepted::Since { first: &[(1, 10, 0)], last_without: (1, 8, 7) },
        source: "first release 1.10.0 per the upstream changelog (carried over from the earlier table, not re-read)",
    },
    FieldFact {
        object: Object::Service,
        key: "Locality",
        accepted: Accepted::Since { first: &[(1, 16, 0)], last_without: (1, 8, 7) },
        source: "agent/structs/service_definition.go (Locality, 1.16+)",
    },
    FieldFact {
        object: Object::Service,
        key: "Ports",
        accepted: Accepted::Since { first: &[(1, 22, 0)], last_without: (1, 21, 99) },
        source: "hashicorp/consul PR #22869 (multi-port service registration for the 1.22 release); 1.8.7 observed",
    },
    FieldFact {
        object: Object::Service,
        key: "Namespace",
        accepted: Accepted::Enterprise,
        source: "agent/structs/service_definition.go acl.EnterpriseMeta; 1.8.7 OSS observed 400 unknown field",
    },
    FieldFact {
        object: Object::Service,
        key: "Partition",
        accepted: Accepted::Enterprise,
        source: "agent/structs/service_definition.go acl.EnterpriseMeta; 1.8.7 OSS observed 400 unknown field",
    },
];

/// The row for a key of an object (snake_case keys match exactly, lowercase; CamelCase keys
/// case-insensitively, as Consul's decoder does).
pub fn field(object: Object, key: &str) -> Option<&'static FieldFact> {
    API_FIELDS.iter().find(|f| {
        f.object == object
            && if f.key.contains('_') || f.key == "args" {
                f.key == key.to_ascii_lowercase()
            } else {
                f.key.eq_ignore_ascii_case(key)
            }
    })
}

/// The row for a key, whatever the object (CamelCase field names are unique across them).
pub fn field_any(key: &str) -> Option<&'static FieldFact> {
    field(Object::Service, key).or_else(|| field(Object::Check, key))
}

/// Whether `version` accepts the row's key.
pub fn accepts(fact: &FieldFact, version: &ConsulVersion) -> Support {
    match fact.accepted {
        Accepted::Always => Support::Yes,
        Accepted::Never => Support::No,
        Accepted::Enterprise => match version.enterprise {
            true => Support::Yes,
            false => Support::No,
        },
        Accepted::Since { first, last_without } => {
            let v = version.triple();
            let line = first.iter().find(|f| (f.0, f.1) == (v.0, v.1));
            let after_every_line = first.last().is_some_and(|last| (v.0, v.1) > (last.0, last.1));
            match line {
                Some(f) if v.2 >= f.2 => Support::Yes,
                Some(_) => Support::No,
                None if after_every_line => Support::Yes,
                None if v <= last_without => Support::No,
                None => Support::NotJudged,
            }
        }
    }
}

/// Whether some version accepts the key (a key no version accepts is a plain mistake).
pub fn accepted_by_some(fact: &FieldFact) -> bool {
    fact.accepted != Accepted::Never
}

// ---------------------------------------------------------------------------------------------
// Errors, endpoints and headers

/// How a 403 for a missing permission reads. source: `acl/errors.go` (`PermissionDeniedError`),
/// 1.8.7 observed (`Permission denied` / `Missing service:write on web`).
pub fn permission_denied_text(
    version: Option<&ConsulVersion>,
    accessor: Option<&str>,
    resource: &str,
    access: &str,
    name: &str,
) -> Option<String> {
    let v = version?;
    if v.at_least((1, 12, 0)) {
        Some(match accessor {
            None | Some(ANONYMOUS_ACCESSOR) => format!(
                "Permission denied: anonymous token lacks permission '{resource}:{access}' on \"{name}\". The anonymous token is used implicitly when a request does not specify a token."
            ),
            Some(acc) => {
                format!("Permission denied: token with AccessorID '{acc}' lacks permission '{resource}:{access}' on \"{name}\"")
            }
        })
    } else if v.triple() < (1, 9, 0) {
        Some(format!("Permission denied: Missing {resource}:{access} on {name}"))
    } else {
        // 1.9-1.11: no source read.
        None
    }
}

/// The anonymous token's AccessorID. source: `acl/acl.go` (`AnonymousTokenID`).
pub const ANONYMOUS_ACCESSOR: &str = "00000000-0000-0000-0000-000000000002";

/// What `GET /v1/acl/token/self` answers for a token the servers do not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownToken {
    /// 403 `ACL not found` (1.8.7 observed).
    Forbidden,
    /// 404 `Supplied token does not exist` (1.15+: api tests).
    NotFound,
}

/// Whether a token/self answer says the token is unknown, in any version's words. Both forms
/// are recognised whatever the version (a proxy or a mixed cluster may answer either).
pub fn is_unknown_token(status: u16, body: &str) -> Option<UnknownToken> {
    match status {
        403 if body.contains("ACL not found") => Some(UnknownToken::Forbidden),
        404 if body.contains("does not exist") => Some(UnknownToken::NotFound),
        _ => None,
    }
}

/// `X-Consul-Results-Filtered-By-ACLs: true` on lists ACLs shortened. source: `agent/http.go`
/// (`setResultsFilteredByACLs`), from 1.11.
pub const FILTERED_BY_ACLS_HEADER: &str = "X-Consul-Results-Filtered-By-ACLs";
pub fn filtered_header_support(version: &ConsulVersion) -> Support {
    if version.at_least((1, 11, 0)) {
        Support::Yes
    } else if version.triple() <= (1, 8, 7) {
        Support::No
    } else {
        Support::NotJudged
    }
}

/// `X-Consul-Default-ACL-Policy` on every answer. source: `agent/http.go` (1.9+).
pub const DEFAULT_ACL_POLICY_HEADER: &str = "X-Consul-Default-ACL-Policy";

/// Where `/v1/agent/self` `DebugConfig` keeps the default ACL policy. source: 1.8.7 observed
/// (`DebugConfig.ACLDefaultPolicy`); `agent/config/runtime.go` (`ACLResolverSettings`).
pub const DEBUG_ACL_DEFAULT_POLICY_PATHS: &[&str] =
    &["/DebugConfig/ACLDefaultPolicy", "/DebugConfig/ACLResolverSettings/ACLDefaultPolicy"];

/// Token fields that grant permissions besides `Policies` and `Roles`. source: `api/acl.go`
/// (`ServiceIdentities` 1.5, `NodeIdentities` 1.8.1, `TemplatedPolicies` 1.17).
pub const TOKEN_GRANT_FIELDS: &[(&str, &str)] =
    &[("ServiceIdentities", "ServiceName"), ("NodeIdentities", "NodeName"), ("TemplatedPolicies", "TemplateName")];

/// Namespaces: `?ns=` on reads and writes. source: `agent/http_ent.go` reads `ns`; on OSS
/// `agent/http_ce.go` answers 400 `Invalid query parameter: "ns" - Namespaces are a Consul
/// Enterprise feature` (1.8.7 observed, even for `ns=default`).
pub const NAMESPACE_PARAM: &str = "ns";
/// Admin partitions: `?partition=`, Enterprise 1.11+. An OSS 1.8.7 agent ignores it (observed:
/// 200 and the default partition's answer).
pub const PARTITION_PARAM: &str = "partition";
/// Cluster peering: `?peer=` on health and catalog reads, 1.13+. source:
/// `agent/health_endpoint.go` (`parsePeerName`). 1.8.7 ignores it (observed: the local answer).
pub const PEER_PARAM: &str = "peer";

/// Whether the agent honours a scope parameter at all.
pub fn scope_support(param: &str, version: &ConsulVersion) -> Support {
    match param {
        NAMESPACE_PARAM | PARTITION_PARAM if !version.enterprise => Support::No,
        PARTITION_PARAM if !version.at_least((1, 11, 0)) => Support::No,
        PEER_PARAM if version.at_least((1, 13, 0)) => Support::Yes,
        PEER_PARAM if version.triple() <= (1, 12, 99) => Support::No,
        NAMESPACE_PARAM | PARTITION_PARAM => Support::Yes,
        _ => Support::NotJudged,
    }
}

/// Raft voters. `/v1/status/peers` lists every raft server, non-voters (Enterprise read
/// replicas, redundancy-zone spares) included; `/v1/operator/raft/configuration` says
/// `Voter` per server (1.8.7 observed). source: `agent/operator_endpoint.go`.
pub const RAFT_CONFIGURATION: &str = "/v1/operator/raft/configuration";

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ConsulVersion {
        ConsulVersion::parse(s).unwrap()
    }

    #[test]
    fn version_forms() {
        assert_eq!(v("1.8.7").triple(), (1, 8, 7));
        let ent = v("1.21.4+ent");
        assert!(ent.enterprise && ent.triple() == (1, 21, 4) && ent.edition() == Edition::Enterprise);
        let rc = v("1.22.0-rc1");
        assert_eq!(rc.pre.as_deref(), Some("rc1"));
        assert!(rc.at_least((1, 22, 0)) && !rc.enterprise);
        assert_eq!(v("2.0.3").triple(), (2, 0, 3));
        assert!(v("1.18.2+ent:abc123").enterprise);
        assert_eq!(v("1.8.7:7a1b2c3d").triple(), (1, 8, 7));
        assert_eq!(v("v1.13.8\n").triple(), (1, 13, 8));
        assert_eq!(v("1.16.0-rc1+ent").to_string(), "1.16.0-rc1+ent");
        assert_eq!(ConsulVersion::parse("garbage"), None);
        assert_eq!(ConsulVersion::parse(""), None);
        assert_eq!(edition_of("1.21.4", Some("1.21.4+ent:abc")), Edition::Enterprise);
        assert_eq!(edition_of("1.21.4", None), Edition::Oss);
    }

    #[test]
    fn snake_keys_as_1_8_7_answered_and_newer_sources_list_them() {
        let old = v("1.8.7");
        for rejected in [
            "success_before_passing",
            "failures_before_critical",
            "alias_service",
            "alias_node",
            "grpc_use_tls",
            "tls_server_name",
        ] {
            let f = field(Object::Check, rejected).unwrap();
            assert_eq!(accepts(f, &old), Support::No, "{rejected}");
        }
        for ok in
            ["tls_skip_verify", "docker_container_id", "deregister_critical_service_after", "service_id", "script_args"]
        {
            assert_eq!(accepts(field(Object::Check, ok).unwrap(), &old), Support::Yes, "{ok}");
        }
        let new = v("1.22.1");
        assert_eq!(accepts(field(Object::Check, "tls_server_name").unwrap(), &new), Support::Yes);
        assert_eq!(accepts(field(Object::Check, "grpc_use_tls").unwrap(), &v("2.0.3")), Support::Yes);
        assert_eq!(accepts(field(Object::Check, "success_before_passing").unwrap(), &new), Support::No);
        // 1.10-1.13: the aliases the 1.10 tree already had and every later one keeps.
        for (key, version, support) in [
            ("tls_server_name", "1.10.0", Support::Yes),
            ("tls_server_name", "1.12.3", Support::Yes),
            ("grpc_use_tls", "1.13.8", Support::Yes),
            ("grpc_use_tls", "1.11.2+ent", Support::Yes),
            // 1.9: no tree of it dated: not judged, never guessed.
            ("tls_server_name", "1.9.17", Support::NotJudged),
            ("grpc_use_tls", "1.9.3", Support::NotJudged),
            // h2ping_use_tls: not before H2PingUseTLS (1.11); 1.11-1.13 not read.
            ("h2ping_use_tls", "1.9.3", Support::No),
            ("h2ping_use_tls", "1.10.12", Support::No),
            ("h2ping_use_tls", "1.12.0", Support::NotJudged),
            ("h2ping_use_tls", "1.14.0", Support::Yes),
            ("tcp_use_tls", "1.15.4", Support::No),
            ("tcp_use_tls", "1.16.2", Support::NotJudged),
            ("tcp_use_tls", "1.17.0", Support::Yes),
            ("success_before_passing", "1.11.0", Support::No),
        ] {
            assert_eq!(accepts(field(Object::Check, key).unwrap(), &v(version)), support, "{key} on {version}");
        }
    }

    #[test]
    fn newer_fields_per_version() {
        let tcp_tls = field(Object::Check, "TCPUseTLS").unwrap();
        assert_eq!(accepts(tcp_tls, &v("1.8.7")), Support::No);
        assert_eq!(accepts(tcp_tls, &v("1.15.4")), Support::No);
        assert_eq!(accepts(tcp_tls, &v("1.16.2")), Support::NotJudged);
        assert_eq!(accepts(tcp_tls, &v("1.22.0")), Support::Yes);
        let ports = field(Object::Service, "ports").unwrap();
        assert_eq!(accepts(ports, &v("1.21.4+ent")), Support::No);
        assert_eq!(accepts(ports, &v("1.22.0-rc1")), Support::Yes);
        let ns = field(Object::Service, "Namespace").unwrap();
        assert_eq!(accepts(ns, &v("1.22.0")), Support::No);
        assert_eq!(accepts(ns, &v("1.22.0+ent")), Support::Yes);
        let redirects = field(Object::Check, "DisableRedirects").unwrap();
        assert_eq!(accepts(redirects, &v("1.10.9")), Support::No);
        assert_eq!(accepts(redirects, &v("1.10.10")), Support::Yes);
        assert_eq!(accepts(redirects, &v("1.21.2")), Support::Yes);
        assert_eq!(accepts(field(Object::Check, "H2PING").unwrap(), &v("1.9.3")), Support::NotJudged);
    }

    #[test]
    fn permission_denied_wording() {
        let t = permission_denied_text(Some(&v("1.8.7")), None, "service", "write", "web").unwrap();
        assert_eq!(t, "Permission denied: Missing service:write on web");
        let t = permission_denied_text(Some(&v("1.22.0")), Some("a1"), "service", "write", "web").unwrap();
        assert_eq!(t, "Permission denied: token with AccessorID 'a1' lacks permission 'service:write' on \"web\"");
        let t = permission_denied_text(Some(&v("2.0.3")), None, "service", "write", "web").unwrap();
        assert!(t.starts_with("Permission denied: anonymous token lacks permission 'service:write' on \"web\"."));
        assert_eq!(permission_denied_text(None, None, "service", "write", "web"), None);
        assert_eq!(permission_denied_text(Some(&v("1.11.0")), None, "service", "write", "web"), None);
    }

    #[test]
    fn unknown_token_in_both_forms() {
        assert_eq!(is_unknown_token(403, "ACL not found"), Some(UnknownToken::Forbidden));
        assert_eq!(is_unknown_token(404, "Supplied token does not exist"), Some(UnknownToken::NotFound));
        assert_eq!(is_unknown_token(403, "Permission denied"), None);
    }

    #[test]
    fn scope_parameters() {
        assert_eq!(scope_support(NAMESPACE_PARAM, &v("1.8.7")), Support::No);
        assert_eq!(scope_support(NAMESPACE_PARAM, &v("1.15.2+ent")), Support::Yes);
        assert_eq!(scope_support(PARTITION_PARAM, &v("1.10.0+ent")), Support::No);
        assert_eq!(scope_support(PEER_PARAM, &v("1.8.7")), Support::No);
        assert_eq!(scope_support(PEER_PARAM, &v("1.15.0")), Support::Yes);
    }

    #[test]
    fn every_row_cites_a_source() {
        for f in API_FIELDS {
            assert!(!f.source.is_empty(), "{}", f.key);
        }
    }
}
