//! version stage: compares the agent's version with the servers' (from `/v1/agent/members`
//! build tags) and every member's protocol version with the others' supported ranges. Members can
//! be filtered away by ACLs (the list comes back empty with 200); then nothing is compared and the
//! check says why.

use serde_json::Value;

use crate::codes;
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::CheckResult;

pub const CHECKS: &[&str] = &["version.members", "version.definition", "version.go_mod"];

/// A gossip member as far as versions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub server: bool,
    pub alive: bool,
    pub version: Option<Version>,
    pub build: String,
    pub vsn: Option<u32>,
    pub vsn_min: Option<u32>,
    pub vsn_max: Option<u32>,
    pub raft_vsn: Option<u32>,
}

/// `major.minor.patch` with the edition/pre-release suffix kept for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Parses `1.8.7`, `1.8.7:`, `1.18.2+ent:abc`, `v1.21.0-rc1`, `1.13.8\n` (the facts table's
/// parser, without the edition).
pub fn parse_version(s: &str) -> Option<Version> {
    let v = crate::consul_facts::ConsulVersion::parse(s)?;
    Some(Version { major: v.major, minor: v.minor, patch: v.patch })
}

pub fn parse_members(v: &Value) -> Option<Vec<Member>> {
    let arr = v.as_array()?;
    // Every gossip member has a name and a tag map; anything else is not a member list.
    if !arr.iter().all(|m| m.get("Name").is_some_and(Value::is_string) && m.get("Tags").is_some_and(Value::is_object)) {
        return None;
    }
    Some(
        arr.iter()
            .map(|m| {
                let tag = |k: &str| m.pointer(&format!("/Tags/{k}")).and_then(Value::as_str).map(str::to_string);
                let num = |k: &str| tag(k).and_then(|x| x.parse().ok());
                let build = tag("build").unwrap_or_default();
                Member {
                    name: m.get("Name").and_then(Value::as_str).unwrap_or("?").to_string(),
                    server: tag("role").as_deref() == Some("consul"),
                    alive: m.get("Status").and_then(Value::as_i64) == Some(1),
                    version: parse_version(&build),
                    build,
                    vsn: num("vsn"),
                    vsn_min: num("vsn_min"),
                    vsn_max: num("vsn_max"),
                    raft_vsn: num("raft_vsn"),
                }
            })
            .collect(),
    )
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let Some(client) = ctx.client() else {
            return vec![CheckResult::skipped("version.members", "no API client")];
        };
        let agent = ctx.facts().agent.clone();
        let reply = client.get("/v1/agent/members").await;
        let mut results = match super::decode::<Value>("GET /v1/agent/members", &reply, client.timeout, false) {
            super::Answer::NotJudged(why) => vec![CheckResult::not_judged("version.members", why)],
            super::Answer::Unusable(what) => {
                vec![super::unusable(codes::VER_MEMBERS_UNREADABLE, "version.members", what)]
            }
            super::Answer::Ok(v) => match parse_members(&v) {
                None => vec![super::unusable(
                    codes::VER_MEMBERS_UNREADABLE,
                    "version.members",
                    format!(
                        "GET /v1/agent/members returned JSON that is not a member list: {}",
                        reply.as_ref().map(|r| r.snippet()).unwrap_or_default()
                    ),
                )],
                Some(members) => {
                    judge(agent.as_ref().map(|a| (a.node.as_str(), a.version.as_str(), a.server)), &members)
                }
            },
        };
        if let Ok(r) = &reply {
            for res in &mut results {
                res.elapsed_ms = super::ms(r.elapsed);
            }
        }
        let (services, go_api) = {
            let f = ctx.facts();
            (f.services.clone(), f.go_api.clone())
        };
        let agent_version = agent.as_ref().map(|a| a.version.clone());
        let script_checks = agent.as_ref().and_then(|a| a.script_checks);
        results.extend(judge_definitions(&services, agent_version.as_deref(), script_checks));
        let servers: Vec<String> = match &reply {
            Ok(r) => crate::jsonclip::from_slice::<Value>(&r.body)
                .ok()
                .as_ref()
                .and_then(parse_members)
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.server && m.alive)
                .filter_map(|m| m.version.map(|v| v.to_string()))
                .collect(),
            Err(_) => Vec::new(),
        };
        results.push(judge_go_api(
            go_api.as_deref(),
            agent_version.as_deref(),
            &servers,
            ctx.inputs.service.go_mod.is_some(),
        ));
        results
    })
}

/// Fields of the definitions that this agent's version does not know, and checks this agent's
/// settings refuse.
pub fn judge_definitions(
    services: &[super::Svc],
    agent_version: Option<&str>,
    script_checks: Option<super::api::ScriptChecks>,
) -> Vec<CheckResult> {
    if services.is_empty() {
        return vec![super::no_service("version.definition")];
    }
    let mut out = Vec::new();
    for svc in services {
        if let Some(skip) = super::service_gate(svc, "version.definition") {
            out.push(skip);
            continue;
        }
        let def = &svc.def;
        let scripts = judge_script_checks(def, script_checks);
        if let Some(r) = scripts.as_ref().filter(|r| r.status == crate::report::Status::Fail) {
            out.push(r.clone());
            continue;
        }
        let script_note = scripts.map(|r| r.message.trim_start_matches(&format!("{}: ", def.label)).to_string());
        let Some(raw) = agent_version else {
            out.push(CheckResult::not_judged(
                "version.definition",
                format!(
                    "{}: the agent's version is unknown (agent:read denied), so newer fields cannot be checked",
                    def.label
                ),
            ));
            continue;
        };
        let Some(v) = parse_version(raw) else {
            out.push(CheckResult::skipped(
                "version.definition",
                format!("{}: cannot parse the agent version {raw:?}", def.label),
            ));
            continue;
        };
        let Some(cv) = crate::consul_facts::ConsulVersion::parse(raw) else { continue };
        let enterprise = cv.enterprise;
        let mut rejected = Vec::new();
        let mut unjudged = Vec::new();
        for f in &def.versioned {
            // The facts table decides where it has a row; its "not judged" is said, not guessed.
            if let Some(fact) = crate::consul_facts::field_any(f.field) {
                match crate::consul_facts::accepts(fact, &cv) {
                    crate::consul_facts::Support::Yes => {}
                    crate::consul_facts::Support::No => rejected.push(match fact.accepted {
                        crate::consul_facts::Accepted::Enterprise => format!("{} (Consul Enterprise only)", f.path),
                        crate::consul_facts::Accepted::Since { first, .. } => format!(
                            "{} (added in {})",
                            f.path,
                            first.iter().map(|(a, b, c)| format!("{a}.{b}.{c}")).collect::<Vec<_>>().join(" / ")
                        ),
                        _ => format!("{} (no Consul version translates it)", f.path),
                    }),
                    crate::consul_facts::Support::NotJudged => unjudged.push(format!("{} ({})", f.path, fact.source)),
                }
                continue;
            }
            match f.since {
                None if !enterprise => rejected.push(format!("{} (Consul Enterprise only)", f.path)),
                Some(since) if !crate::service::version_accepts((v.major, v.minor, v.patch), since) => {
                    let first = since.iter().map(|(a, b, c)| format!("{a}.{b}.{c}")).collect::<Vec<_>>().join(" / ");
                    rejected.push(format!("{} (added in {first})", f.path))
                }
                _ => {}
            }
        }
        if rejected.is_empty() && !unjudged.is_empty() {
            out.push(CheckResult::not_judged(
                "version.definition",
                format!(
                    "{}: not judged for Consul {cv}: whether it accepts {} (the sources read do not cover this version)",
                    def.label,
                    unjudged.join(", ")
                ),
            ));
        } else if rejected.is_empty() {
            out.push(CheckResult::pass(
                "version.definition",
                format!(
                    "{}: every field is known to Consul {v}{}",
                    def.label,
                    script_note.as_deref().map(|n| format!("; {n}")).unwrap_or_default()
                ),
            ));
        } else {
            let first_field = def
                .versioned
                .iter()
                .find(|f| rejected.iter().any(|r| r.starts_with(&f.path)))
                .map(|f| f.field)
                .unwrap_or("");
            out.push(CheckResult::finding(
                codes::VER_FIELDS,
                "version.definition",
                format!(
                    "{}: this Consul {v} agent does not know {}; registration fails with 400: Request decode failed: json: unknown field \"{first_field}\"",
                    def.label,
                    rejected.join(", ")
                ),
                "remove these fields from the definition for this agent, or upgrade the cluster (servers first, then this agent) to a version that has them",
            ));
        }
    }
    out
}

/// Script and Docker checks against this agent's `enable_script_checks` /
/// `enable_local_script_checks`: what the agent answers is known exactly.
pub fn judge_script_checks(
    def: &crate::service::ServiceDef,
    settings: Option<super::api::ScriptChecks>,
) -> Option<CheckResult> {
    use crate::service::{CheckKind, Form};
    let scripts: Vec<&str> =
        def.checks.iter().filter(|c| c.kind == CheckKind::Script).map(|c| c.label.as_str()).collect();
    let settings = settings?;
    if scripts.is_empty() || settings.remote {
        return None;
    }
    let l = &def.label;
    let which = scripts.join(", ");
    if settings.local && def.form == Form::Config {
        return Some(CheckResult::pass(
            "version.definition",
            format!("{l}: {which} runs when this file is in the agent's configuration directory (enable_local_script_checks is on); registered through the HTTP API or consul services register it is refused: scripts are disabled from remote calls on this agent"),
        ));
    }
    let mut fix = "enable_script_checks = true in the agent's configuration and a restart of the agent (it cannot be reloaded), or replace the script check with an HTTP, TCP or TTL check".to_string();
    if def.form == Form::Config {
        fix.push_str("; for a definition placed in the agent's configuration directory, enable_local_script_checks = true is enough (safer: no remote script execution)");
    }
    Some(
        CheckResult::finding(
            codes::VER_SCRIPTS_DISABLED,
            "version.definition",
            format!("{l}: {which} is a script check and this agent runs none from the HTTP API: registration fails with 500 \"Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true\"{}", if settings.local { "" } else { " (enable_local_script_checks is off too)" }),
            fix,
        )
        .with("enable_script_checks", settings.remote.to_string())
        .with("enable_local_script_checks", settings.local.to_string()),
    )
}

/// Reports the application's consul/api module beside the cluster's versions.
pub fn judge_go_api(go_api: Option<&str>, agent: Option<&str>, servers: &[String], asked: bool) -> CheckResult {
    let Some(api) = go_api else {
        return CheckResult::skipped(
            "version.go_mod",
            if asked {
                "no github.com/hashicorp/consul/api version found (see config.go_mod)"
            } else {
                "no --go-mod given"
            },
        );
    };
    let mut sv = servers.to_vec();
    sv.sort();
    sv.dedup();
    CheckResult::pass(
        "version.go_mod",
        format!(
            "application uses github.com/hashicorp/consul/api {api}; agent {}, servers {}. The api module has its own version numbers (Consul 1.8 shipped api v1.7.0) and no published compatibility matrix: a newer client works against an older agent only while it leaves fields that agent does not know empty",
            agent.unwrap_or("unknown"),
            if sv.is_empty() { "unknown".to_string() } else { sv.join(", ") }
        ),
    )
    .with("consul_api", api.to_string())
}

/// Judges versions. `agent` is (node, version, is_server) when `/v1/agent/self` was readable.
pub fn judge(agent: Option<(&str, &str, bool)>, members: &[Member]) -> Vec<CheckResult> {
    if members.is_empty() {
        return vec![CheckResult::not_judged(
            "version.members",
            "/v1/agent/members is empty, so the token lacks node:read (ACLs filter the list silently)",
        )
        .with(crate::report::READ_GRANT, "node_prefix \"\" { policy = \"read\" }")];
    }
    let alive: Vec<&Member> = members.iter().filter(|m| m.alive).collect();
    let servers: Vec<&Member> = alive.iter().copied().filter(|m| m.server).collect();
    let mut out = Vec::new();

    // Protocol ranges.
    let mut bad = Vec::new();
    for a in &alive {
        for b in &alive {
            if let (Some(v), Some(lo), Some(hi)) = (a.vsn, b.vsn_min, b.vsn_max) {
                if v < lo || v > hi {
                    bad.push(format!("{} speaks protocol {v}, {} understands {lo}-{hi}", a.name, b.name));
                }
            }
        }
    }
    if !bad.is_empty() {
        out.push(CheckResult::finding(
            codes::VER_PROTOCOL,
            "version.members",
            format!("incompatible protocol versions: {}", bad.join("; ")),
            "upgrade or downgrade the odd members so every member's protocol lies in every other member's range; upgrade one minor version at a time, servers first",
        ));
    }

    // Mixed server versions.
    let mut versions: Vec<Version> = servers.iter().filter_map(|m| m.version).collect();
    versions.sort();
    versions.dedup();
    if versions.len() > 1 {
        let list = servers
            .iter()
            .map(|m| format!("{} {}", m.name, m.version.map(|v| v.to_string()).unwrap_or_else(|| m.build.clone())))
            .collect::<Vec<_>>()
            .join(", ");
        let spread = versions.last().map(|v| v.minor).unwrap_or(0).abs_diff(versions[0].minor);
        out.push(CheckResult::finding(
            codes::VER_MIXED_SERVERS,
            "version.members",
            format!("servers run different versions ({list}){}", if spread > 1 { "; more than one minor version apart" } else { "" }),
            "finish the rolling upgrade: upgrade the remaining servers one at a time (consul leave, replace the binary, start, wait for consul operator raft list-peers to show it as a voter), then the clients",
        ));
    }

    // Agent newer than every server.
    if let (Some((node, ver, false)), Some(newest)) = (agent, versions.last()) {
        if let Some(av) = parse_version(ver) {
            if (av.major, av.minor) > (newest.major, newest.minor) {
                out.push(CheckResult::finding(
                    codes::VER_AGENT_NEWER,
                    "version.members",
                    format!("client agent {node} runs {av}, newer than every server (newest {newest}): Consul upgrades servers first"),
                    format!("upgrade the servers to {}.{} before the clients, or run this client on the servers' version", av.major, av.minor),
                ));
            }
        }
    }

    // Raft protocol.
    let old_raft: Vec<String> = servers
        .iter()
        .filter(|m| m.raft_vsn.is_some_and(|r| r < 3))
        .map(|m| format!("{} (raft_vsn {})", m.name, m.raft_vsn.unwrap_or(0)))
        .collect();
    if !old_raft.is_empty() {
        out.push(CheckResult::finding(
            codes::VER_RAFT,
            "version.members",
            format!("servers on Raft protocol below 3: {}; Consul 1.9 removed Raft protocol 2", old_raft.join(", ")),
            "set raft_protocol = 3 on every server (rolling restart) while still on 1.8 or older, before upgrading to 1.9+",
        ));
    }

    if out.is_empty() {
        let sv = versions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let msg = match agent {
            Some((_, ver, _)) => format!(
                "agent {}; {} server(s) alive on {}; protocols compatible",
                ver.trim(),
                servers.len(),
                if sv.is_empty() { "unknown versions".into() } else { sv }
            ),
            None => format!(
                "{} server(s) alive on {}; protocols compatible",
                servers.len(),
                if sv.is_empty() { "unknown versions".into() } else { sv }
            ),
        };
        out.push(CheckResult::pass("version.members", msg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, server: bool, build: &str, vsn: u32) -> Member {
        Member {
            name: name.into(),
            server,
            alive: true,
            version: parse_version(build),
            build: build.into(),
            vsn: Some(vsn),
            vsn_min: Some(2),
            vsn_max: Some(3),
            raft_vsn: if server { Some(3) } else { None },
        }
    }

    #[test]
    fn parses_consul_build_tags() {
        assert_eq!(parse_version("1.8.7:"), Some(Version { major: 1, minor: 8, patch: 7 }));
        assert_eq!(parse_version("1.18.2+ent:abc"), Some(Version { major: 1, minor: 18, patch: 2 }));
        assert_eq!(parse_version("1.13.8\n"), Some(Version { major: 1, minor: 13, patch: 8 }));
        assert_eq!(parse_version("v1.21.0-rc1"), Some(Version { major: 1, minor: 21, patch: 0 }));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn flags_skew() {
        let members = [m("s1", true, "1.8.7:", 2), m("s2", true, "1.9.0:", 2), m("c1", false, "1.10.1:", 2)];
        let r = judge(Some(("c1", "1.10.1", false)), &members);
        let codes: Vec<_> = r.iter().filter_map(|x| x.code).collect();
        assert_eq!(codes, vec!["VER-001", "VER-002"]);
        let healthy = judge(Some(("s1", "1.8.7", true)), &[m("s1", true, "1.8.7:", 2)]);
        assert_eq!(healthy[0].code, None);
        let mut odd = m("x", false, "1.8.7:", 4);
        odd.vsn_max = Some(5);
        let r = judge(None, &[m("s1", true, "1.8.7:", 2), odd]);
        assert_eq!(r[0].code, Some("VER-003"));
    }
}
