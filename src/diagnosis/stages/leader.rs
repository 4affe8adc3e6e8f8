//! leader stage: does the cluster have a leader, as seen through this agent? Interprets the
//! empty leader (`""`), "No known Consul servers" (a client that never joined), "No path to
//! datacenter" and other RPC errors, then counts the Raft peers.

use crate::codes;
use crate::consul::{dc_query, HttpFailure, Reply};
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::diagnosis::stages::api::AgentSelf;
use crate::report::CheckResult;

pub const CHECKS: &[&str] = &["leader.status", "leader.peers"];

/// The stage's two reads, asked ahead of it (`pipeline::Early`).
pub fn ask_early(ctx: &Ctx<'_>) {
    let q = dc_query(ctx.datacenter());
    // The tcp stage's probe asked this datacenter's leader already (no `?dc=`): its answer is
    // the read, on the same address.
    let sniffed = ctx.facts().sniffed_leader.take().filter(|_| q.is_empty());
    match sniffed {
        Some(reply) => super::early_answer(ctx, format!("/v1/status/leader{q}"), reply),
        None => super::early_get(ctx, format!("/v1/status/leader{q}")),
    }
    super::early_get(ctx, format!("/v1/status/peers{q}"));
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let Some(client) = ctx.client() else {
            return vec![CheckResult::skipped("leader.status", "no API client")];
        };
        let agent = ctx.facts().agent.clone();
        let dc = ctx.datacenter().map(str::to_string);
        let q = dc_query(dc.as_deref());
        let path = format!("/v1/status/leader{q}");
        let peers_path = format!("/v1/status/peers{q}");
        // Both are cheap status reads: ask at once, judge in order.
        let (reply, peers) = tokio::join!(super::get(ctx, &client, &path), super::get(ctx, &client, &peers_path));
        let mut status = judge_leader(&reply, agent.as_ref(), dc.as_deref(), client.timeout)
            .with("request", format!("GET {}", client.url(&path)));
        if let Ok(r) = &reply {
            status.elapsed_ms = super::ms(r.elapsed);
        }
        if let Some(code) = status.code.filter(|_| status.status == crate::report::Status::Fail) {
            // Registrations still "succeed" locally: name what is stuck on this agent.
            if let Ok(r) = client.get("/v1/agent/services").await {
                if let Ok(local) = r.json::<serde_json::Map<String, serde_json::Value>>() {
                    let stuck: Vec<&String> = local.keys().filter(|k| k.as_str() != "consul").take(8).collect();
                    if !stuck.is_empty() {
                        let list = stuck.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
                        status
                            .message
                            .push_str(&format!("; services registered on this agent cannot reach the catalog: {list}"));
                        status = status
                            .with("stuck_services", stuck.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","));
                    }
                }
            }
            return vec![status, CheckResult::blocked("leader.peers", code)];
        }
        if let Ok(r) = &reply {
            if let Ok(leader) = r.json::<String>() {
                ctx.facts().summary.leader = Some(leader);
            }
        }

        let mut p = judge_peers(&peers, client.timeout);
        if let Ok(r) = &peers {
            p.elapsed_ms = super::ms(r.elapsed);
        }
        if p.code == Some(codes::LDR_EVEN_SERVERS.code) {
            // /v1/status/peers lists non-voters too (Enterprise read replicas): count the voters.
            let raft = client.get(&format!("{}{q}", crate::consul_facts::RAFT_CONFIGURATION)).await;
            p = recount_voters(p, &raft);
        }
        vec![status, p]
    })
}

pub fn judge_leader(
    reply: &Result<Reply, HttpFailure>,
    agent: Option<&AgentSelf>,
    dc: Option<&str>,
    timeout: std::time::Duration,
) -> CheckResult {
    let r = match reply {
        Ok(r) => r,
        Err(f) => {
            return CheckResult::finding(
                codes::LDR_RPC_ERROR,
                "leader.status",
                format!("GET /v1/status/leader: {}", f.describe(timeout)),
                "the agent answered /v1/agent/self but not the leader query: check the agent log for RPC errors and its connectivity to the servers (port 8300)",
            )
        }
    };
    let body = r.text();
    let dc_name = dc
        .map(str::to_string)
        .or_else(|| agent.map(|a| a.datacenter.clone()))
        .unwrap_or_else(|| "the agent's datacenter".into());
    if r.status == 200 {
        return match r.json::<String>() {
            Ok(leader) if !leader.is_empty() => {
                CheckResult::pass("leader.status", format!("leader of {dc_name} is {leader}")).with("leader", leader)
            }
            Ok(_) => no_leader(agent, &dc_name, "/v1/status/leader returned \"\""),
            Err(_) => CheckResult::finding(
                codes::LDR_RPC_ERROR,
                "leader.status",
                format!("/v1/status/leader returned 200 with an unexpected body: {}", r.snippet()),
                "query the agent directly with curl and check for a proxy rewriting answers",
            ),
        };
    }
    if body.contains("No known Consul servers") {
        return CheckResult::finding(
            codes::LDR_NO_SERVERS,
            "leader.status",
            format!("the agent{} knows no Consul servers: {} \"{body}\"", agent.map(|a| format!(" {}", a.node)).unwrap_or_default(), r.status),
            "join the client to the servers: set retry_join = [\"<server address>\"] in the agent config (or run consul join <server>), and check that the datacenter, the gossip key (encrypt) and ports 8301 tcp+udp to the servers match; services registered meanwhile stay on this agent only",
        );
    }
    if body.contains("No cluster leader") {
        return no_leader(agent, &dc_name, &format!("{} \"{body}\"", r.status));
    }
    if body.contains("No path to datacenter") {
        return CheckResult::finding(
            codes::LDR_NO_PATH,
            "leader.status",
            format!("no path to datacenter {dc_name}: {} \"{body}\"", r.status),
            format!("correct --datacenter, or WAN-join the servers of {dc_name} with the local servers (consul join -wan <server>; retry_join_wan)"),
        );
    }
    if body.contains("Remote DC has no server currently reachable") {
        return CheckResult::finding(
            codes::LDR_DC_UNREACHABLE,
            "leader.status",
            format!("no server of datacenter {dc_name} is reachable: \"{body}\""),
            format!("check that the servers of {dc_name} are up and that the WAN ports (8302 tcp+udp, 8300 tcp) are open between datacenters; consul members -wan shows their state"),
        );
    }
    CheckResult::finding(
        codes::LDR_RPC_ERROR,
        "leader.status",
        format!("GET /v1/status/leader: {} \"{}\"", r.status, r.snippet()),
        "check the agent log (consul monitor) for the RPC error and the servers' health (consul operator raft list-peers on a server)",
    )
}

fn no_leader(agent: Option<&AgentSelf>, dc: &str, seen: &str) -> CheckResult {
    let expect = agent.and_then(|a| a.bootstrap_expect);
    let detail = match expect {
        Some(n) => format!("; this server waits for bootstrap_expect = {n} servers"),
        None => String::new(),
    };
    let mut r = CheckResult::finding(
        codes::LDR_NO_LEADER,
        "leader.status",
        format!("datacenter {dc} has no cluster leader ({seen}){detail}; registrations through the agent return 200 but never reach the catalog"),
        match expect {
            Some(n) => format!("start the remaining servers so {n} can vote (or lower bootstrap_expect to the number of servers you run), make sure they find each other (retry_join, ports 8300 and 8301 tcp+udp), then check with: consul operator raft list-peers"),
            None => "bring the servers back to quorum (a majority must be up and reach each other on 8300 and 8301 tcp+udp); check with consul members and consul operator raft list-peers; after a permanent loss of quorum use peers.json recovery".into(),
        },
    );
    if let Some(n) = expect {
        r = r.with("bootstrap_expect", n.to_string());
    }
    r
}

pub fn judge_peers(reply: &Result<Reply, HttpFailure>, timeout: std::time::Duration) -> CheckResult {
    let peers: Vec<String> = match super::decode("GET /v1/status/peers", reply, timeout, false) {
        super::Answer::Ok(p) => p,
        super::Answer::NotJudged(why) => return CheckResult::not_judged("leader.peers", why),
        super::Answer::Unusable(what) => return super::unusable(codes::LDR_PEERS_UNREADABLE, "leader.peers", what),
    };
    let n = peers.len();
    let tolerates = if n == 0 { 0 } else { (n - 1) / 2 };
    if n >= 2 && n.is_multiple_of(2) {
        CheckResult::finding(
            codes::LDR_EVEN_SERVERS,
            "leader.peers",
            format!("{n} Raft voters: quorum needs {}, so this tolerates {tolerates} failed server(s), no more than {} servers would", n / 2 + 1, n - 1),
            format!("run an odd number of servers: add one (to {}) or remove one (to {}) with consul operator raft remove-peer / consul leave on that server", n + 1, n - 1),
        )
        .with("peers", peers.join(","))
    } else {
        CheckResult::pass("leader.peers", format!("{n} Raft voter(s), tolerating {tolerates} failure(s)"))
            .with("peers", peers.join(","))
    }
}

/// The even-count note, judged again with `/v1/operator/raft/configuration` (`Voter` per
/// server): an odd number of voters beside non-voters is fine; when the configuration is not
/// readable the note says the count may include non-voters.
pub fn recount_voters(even: CheckResult, raft: &Result<Reply, HttpFailure>) -> CheckResult {
    let servers = raft
        .as_ref()
        .ok()
        .filter(|r| r.status == 200)
        .and_then(|r| r.json::<serde_json::Value>().ok())
        .and_then(|v| v.get("Servers").and_then(serde_json::Value::as_array).cloned());
    let Some(servers) = servers else {
        let why = match raft {
            Ok(r) => format!("{} {}", r.status, r.snippet()),
            Err(e) => e.describe(std::time::Duration::from_secs(0)),
        };
        let mut r = even;
        r.message.push_str(&format!(
            "; /v1/status/peers also lists non-voting servers (Enterprise read replicas), and GET /v1/operator/raft/configuration (operator:read) answered {why}, so voters cannot be told apart"
        ));
        return r;
    };
    let voters: Vec<&str> = servers
        .iter()
        .filter(|s| s.get("Voter").and_then(serde_json::Value::as_bool) == Some(true))
        .filter_map(|s| s.get("Address").and_then(serde_json::Value::as_str))
        .collect();
    let n = voters.len();
    if n.is_multiple_of(2) && n >= 2 {
        return even.with("voters", n.to_string());
    }
    let non_voters = servers.len().saturating_sub(n);
    CheckResult::pass(
        "leader.peers",
        format!("{n} Raft voter(s) and {non_voters} non-voter(s), tolerating {} failure(s)", n.saturating_sub(1) / 2),
    )
    .with("voters", voters.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Result<Reply, HttpFailure> {
        Ok(Reply { status, headers: Default::default(), body: body.as_bytes().to_vec(), elapsed: Default::default() })
    }

    #[test]
    fn non_voters_are_not_counted_for_the_even_note() {
        let even = CheckResult::finding(codes::LDR_EVEN_SERVERS, "leader.peers", "4 Raft voters".to_string(), "odd");
        // Shape: agent/operator_endpoint.go (RaftConfigurationResponse: Servers[].Voter); 1.8.7 observed.
        let body = r#"{"Servers":[{"Address":"10.0.0.1:8300","Voter":true},{"Address":"10.0.0.2:8300","Voter":true},{"Address":"10.0.0.3:8300","Voter":true},{"Address":"10.0.0.4:8300","Voter":false}],"Index":1}"#;
        let r = recount_voters(even.clone(), &reply(200, body));
        assert_eq!(r.status, crate::report::Status::Pass, "{}", r.message);
        assert!(r.message.contains("3 Raft voter(s) and 1 non-voter(s)"), "{}", r.message);
        let r = recount_voters(even, &reply(403, "Permission denied"));
        assert_eq!(r.code, Some(codes::LDR_EVEN_SERVERS.code));
        assert!(r.message.contains("cannot be told apart"), "{}", r.message);
    }
}
