//! discovery stage: registered, but can consumers find it? Asks what a consumer asks: the
//! health API (`/v1/health/service/NAME`, the source of `?passing`) and Consul DNS on the agent's
//! own DNS interface (address, port, domain and `dns_config` as `/v1/agent/self` reports them, or
//! `--consul-dns`), SRV and A for `NAME.service[.DC].DOMAIN` and `TAG.NAME.service...`; and, with
//! `--dns-server`, whether the consumer's resolver forwards the Consul domain at all. Read-only.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Deserialize;
use serde_json::Value;

use crate::codes;
use crate::consul::urlencode;
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::report::CheckResult;

pub const CHECKS: &[&str] =
    &["discovery.health", "discovery.dns", "discovery.address", "discovery.tags", "discovery.resolver"];

/// The agent's DNS configuration (`DebugConfig` of `/v1/agent/self`, Consul 1.8 names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentDns {
    /// `DNSPort`: -1 when `ports.dns = -1`.
    pub port: i64,
    /// `DNSAddrs`: `udp://IP:PORT` and `tcp://IP:PORT`.
    pub addrs: Vec<String>,
    /// `DNSDomain`, with its trailing dot (`consul.`).
    pub domain: String,
    pub only_passing: bool,
    /// `DNSServiceTTL`: service name (or `prefix*`) -> Go duration.
    pub service_ttl: Vec<(String, String)>,
    pub node_ttl: String,
    pub allow_stale: bool,
    pub max_stale: String,
    pub use_cache: bool,
    pub cache_max_age: String,
    pub udp_answer_limit: i64,
}

impl AgentDns {
    pub fn from_debug(d: &serde_json::Map<String, Value>) -> Option<AgentDns> {
        let port = d.get("DNSPort")?.as_i64()?;
        let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let b = |k: &str| d.get(k).and_then(Value::as_bool).unwrap_or(false);
        Some(AgentDns {
            port,
            addrs: d
                .get("DNSAddrs")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            domain: Some(s("DNSDomain")).filter(|x| !x.is_empty()).unwrap_or_else(|| "consul.".into()),
            only_passing: b("DNSOnlyPassing"),
            service_ttl: d
                .get("DNSServiceTTL")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
                .unwrap_or_default(),
            node_ttl: s("DNSNodeTTL"),
            allow_stale: b("DNSAllowStale"),
            max_stale: s("DNSMaxStale"),
            use_cache: b("DNSUseCache"),
            cache_max_age: s("DNSCacheMaxAge"),
            udp_answer_limit: d.get("DNSUDPAnswerLimit").and_then(Value::as_i64).unwrap_or(3),
        })
    }

    /// The TTL Consul puts on a service's answers, as Consul picks it: the exact name first,
    /// then the longest `prefix*` entry.
    pub fn ttl_for(&self, service: &str) -> Option<Duration> {
        let exact = self.service_ttl.iter().find(|(k, _)| k == service);
        let prefixed = || {
            self.service_ttl
                .iter()
                .filter_map(|(k, v)| k.strip_suffix('*').filter(|p| service.starts_with(p)).map(|p| (p.len(), v)))
                .max_by_key(|(n, _)| *n)
                .map(|(_, v)| v)
        };
        let raw = exact.map(|(_, v)| v).or_else(prefixed)?;
        go(raw).filter(|d| !d.is_zero())
    }
}

fn go(raw: &str) -> Option<Duration> {
    crate::duration::parse_go_duration(raw).ok().filter(|n| *n >= 0).map(|n| Duration::from_nanos(n as u64))
}

fn fmt(d: Duration) -> String {
    crate::duration::format_go(d.as_nanos() as i64)
}

/// Where to ask Consul DNS.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    At(SocketAddr, String),
    Disabled,
    /// Not reachable from this host (why).
    NotHere(String),
}

/// Picks the agent's DNS listener: `--consul-dns`, else the configured address (a wildcard
/// means the address the doctor reached the agent on), else the agent's address and 8600 when
/// the configuration is unreadable.
pub fn endpoint(over: Option<SocketAddr>, dns: Option<&AgentDns>, agent_ip: Option<IpAddr>) -> Endpoint {
    if let Some(sa) = over {
        return Endpoint::At(sa, "--consul-dns".into());
    }
    let Some(dns) = dns else {
        return Endpoint::NotHere(
            "the agent's DNS configuration is unreadable (the token lacks agent:read on /v1/agent/self); give --consul-dns IP:PORT".into(),
        );
    };
    if dns.port < 0 || dns.addrs.is_empty() {
        return Endpoint::Disabled;
    }
    let pick =
        |scheme: &str| dns.addrs.iter().find_map(|a| a.strip_prefix(scheme)).and_then(|a| a.parse::<SocketAddr>().ok());
    let Some(sa) = pick("tcp://").or_else(|| pick("udp://")) else {
        return Endpoint::NotHere(format!("no usable address in the agent's DNSAddrs {:?}", dns.addrs));
    };
    let agent_remote = agent_ip.is_some_and(|ip| !ip.is_loopback());
    if sa.ip().is_unspecified() {
        return match agent_ip {
            Some(ip) => Endpoint::At(SocketAddr::new(ip, sa.port()), format!("the agent's DNS interface ({sa})")),
            None => Endpoint::NotHere(format!("Consul DNS listens on {sa}, but the agent's address is unknown")),
        };
    }
    if sa.ip().is_loopback() && agent_remote {
        return Endpoint::NotHere(format!(
            "Consul DNS listens on {sa} of the agent host only (client_addr / addresses.dns); run the doctor there or give --consul-dns"
        ));
    }
    Endpoint::At(sa, format!("the agent's DNS interface ({sa})"))
}

/// One DNS answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Records {
        srv: Vec<(String, u16)>,
        ips: Vec<IpAddr>,
        ttl: Option<u32>,
        soa_rname: Option<String>,
    },
    NxDomain,
    Empty,
    Timeout,
    Failed(String),
    /// Not asked: the name cannot be put into a DNS question at all (why).
    Unaskable(String),
}

impl Answer {
    fn answered(&self) -> bool {
        matches!(self, Answer::Records { .. })
    }

    fn describe(&self) -> String {
        match self {
            Answer::Records { srv, ips, ttl, .. } => {
                let mut parts = Vec::new();
                if !srv.is_empty() {
                    parts.push(format!("{} SRV", srv.len()));
                }
                if !ips.is_empty() {
                    parts.push(format!("A {}", ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")));
                }
                if let Some(t) = ttl {
                    parts.push(format!("TTL {t}s"));
                }
                parts.join(", ")
            }
            Answer::NxDomain => "NXDOMAIN".into(),
            Answer::Empty => "no records".into(),
            Answer::Timeout => "no answer (timeout)".into(),
            Answer::Failed(e) => e.clone(),
            Answer::Unaskable(why) => format!("not asked: {why}"),
        }
    }
}

/// The DNS name to send for `name`, label by label as raw bytes: Consul's DNS answers labels
/// with `_`, `=` and the like (`env=prod.web.service.consul`, `web_api.service.consul`), which
/// a resolver's host-name rules (IDNA/STD3) would refuse before anything is sent. Only what DNS
/// itself cannot carry is refused: an empty label, or one longer than 63 bytes.
pub fn query_name(name: &str) -> Result<hickory_resolver::proto::rr::Name, String> {
    let labels: Vec<&str> = name.strip_suffix('.').unwrap_or(name).split('.').collect();
    if let Some(bad) = labels.iter().find(|l| l.is_empty() || l.len() > 63) {
        return Err(if bad.is_empty() {
            format!("{name:?} has an empty label (two dots in a row, or a leading dot): no DNS question can carry it")
        } else {
            format!("the label {bad:?} is {} bytes long: a DNS label holds at most 63", bad.len())
        });
    }
    hickory_resolver::proto::rr::Name::from_labels(labels.iter().map(|l| l.as_bytes()))
        .map_err(|e| format!("{name:?} cannot be sent as a DNS question: {e}"))
}

/// Asks one question through `resolver`, bounded by `timeout`.
pub(crate) async fn ask(
    resolver: &hickory_resolver::Resolver<hickory_resolver::net::runtime::TokioRuntimeProvider>,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Answer {
    let query = match query_name(name) {
        Ok(q) => q,
        Err(why) => return Answer::Unaskable(why),
    };
    match tokio::time::timeout(timeout + timeout / 2, resolver.lookup(query, rtype)).await {
        Err(_) => Answer::Timeout,
        Ok(Ok(lookup)) => {
            let mut srv = Vec::new();
            let mut ips = Vec::new();
            let mut soa_rname = None;
            let mut ttl: Option<u32> = None;
            for r in lookup.answers() {
                ttl = Some(ttl.map_or(r.ttl, |t| t.min(r.ttl)));
                match &r.data {
                    RData::SRV(s) => srv.push((s.target.to_string(), s.port)),
                    RData::A(a) => ips.push(IpAddr::V4(a.0)),
                    RData::AAAA(a) => ips.push(IpAddr::V6(a.0)),
                    RData::SOA(s) => soa_rname = Some(s.rname.to_string()),
                    _ => {}
                }
            }
            for r in lookup.additionals() {
                match &r.data {
                    RData::A(a) if rtype == RecordType::SRV => ips.push(IpAddr::V4(a.0)),
                    RData::AAAA(a) if rtype == RecordType::SRV => ips.push(IpAddr::V6(a.0)),
                    _ => {}
                }
            }
            if srv.is_empty() && ips.is_empty() && soa_rname.is_none() {
                Answer::Empty
            } else {
                Answer::Records { srv, ips, ttl, soa_rname }
            }
        }
        Ok(Err(e)) => match super::dns::classify(&e) {
            super::dns::Lookup::NxDomain => Answer::NxDomain,
            super::dns::Lookup::NoRecords => Answer::Empty,
            super::dns::Lookup::Timeout => Answer::Timeout,
            super::dns::Lookup::ServerError(s) => Answer::Failed(s),
            super::dns::Lookup::Addresses(_) => Answer::Empty,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The health API's view

/// One `/v1/health/service/NAME` entry, the fields both the duplicates and this stage use (the
/// duplicates stage decodes the list once; this stage takes the consumers' view from it).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HealthEntry {
    pub(crate) node: HNode,
    pub(crate) service: HService,
    #[serde(default)]
    pub(crate) checks: Vec<HCheck>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HNode {
    pub(crate) node: String,
    #[serde(default)]
    pub(crate) address: String,
    #[serde(default)]
    pub(crate) meta: Option<std::collections::HashMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HService {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) address: String,
    #[serde(default)]
    pub(crate) port: i64,
    #[serde(default)]
    pub(crate) tags: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) meta: Option<std::collections::HashMap<String, String>>,
    /// Set on instances imported from a cluster peer (1.13+).
    #[serde(default)]
    pub(crate) peer_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HCheck {
    #[serde(rename = "CheckID")]
    pub(crate) check_id: String,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) notes: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) output: String,
}

/// The instance with its owner, for registrations no agent holds (crate::agentless).
pub(crate) fn registration(e: &HealthEntry) -> crate::agentless::Registration {
    let rank = |s: &str| match s {
        "passing" => 0,
        "warning" => 1,
        _ => 2,
    };
    let worst = e.checks.iter().max_by_key(|c| rank(&c.status));
    crate::agentless::Registration {
        node: e.node.node.clone(),
        id: e.service.id.clone(),
        owner: crate::agentless::owner_of(
            e.node.meta.as_ref(),
            e.service.meta.as_ref(),
            e.service.peer_name.as_deref(),
        ),
        status: worst.map(|c| c.status.clone()).unwrap_or_else(|| "passing".into()),
        worst: worst
            .filter(|c| c.status != "passing")
            .map(|c| (c.name.clone(), crate::clip::clip_to(c.output.trim(), 300).into_owned())),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Passing,
    Warning,
    Critical,
    Maintenance(String),
}

/// One registered instance as a consumer would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub node: String,
    pub node_address: String,
    pub id: String,
    /// The service address, or the node's when the service has none (what DNS answers).
    pub address: String,
    pub port: i64,
    pub tags: Vec<String>,
    pub state: State,
}

pub(crate) fn instance(e: HealthEntry) -> Instance {
    let maint =
        e.checks.iter().find(|c| c.check_id.starts_with("_service_maintenance:") || c.check_id == "_node_maintenance");
    let state = if let Some(m) = maint {
        State::Maintenance(m.notes.clone())
    } else if e.checks.iter().any(|c| c.status == "critical") {
        State::Critical
    } else if e.checks.iter().any(|c| c.status == "warning") {
        State::Warning
    } else {
        State::Passing
    };
    let address = if e.service.address.is_empty() { e.node.address.clone() } else { e.service.address.clone() };
    Instance {
        node: e.node.node,
        node_address: e.node.address,
        id: e.service.id,
        address,
        port: e.service.port,
        tags: e.service.tags.unwrap_or_default(),
        state,
    }
}

/// The doctor's own canaries never count as instances.
pub(crate) fn is_probe(e: &HealthEntry) -> bool {
    e.service.meta.as_ref().and_then(|m| m.get("consul_doctor")).is_some_and(|v| v == "probe")
}

// ---------------------------------------------------------------------------------------------
// The stage

/// SRV and A answers for each service's DNS name, asked ahead of the stage, and the resolver
/// that asked them (the stage asks its other questions through it).
pub type EarlyAnswers = (ConsulResolver, Vec<(String, Answer, Answer)>);

type ConsulResolver = hickory_resolver::Resolver<hickory_resolver::net::runtime::TokioRuntimeProvider>;

/// Where the stage asks Consul DNS and the name of each service there: the same for the early
/// questions and the stage itself.
struct DnsPlan {
    ep: Endpoint,
    domain: String,
    dc: Option<String>,
}

fn dns_plan(ctx: &Ctx<'_>) -> DnsPlan {
    let (agent_dns, agent_ip, agent_dc) = {
        let f = ctx.facts();
        let ip = f.reachable.first().or(f.addrs.first()).map(|sa| sa.ip()).or_else(|| {
            f.conn.as_ref().and_then(|c| match &c.target {
                crate::connection::Target::Unix { .. } => Some(IpAddr::from([127, 0, 0, 1])),
                crate::connection::Target::Tcp { host, .. } => host.parse().ok(),
            })
        });
        (f.agent.as_ref().and_then(|a| a.dns.clone()), ip, f.agent.as_ref().map(|a| a.datacenter.clone()))
    };
    DnsPlan {
        ep: endpoint(ctx.inputs.consul_dns, agent_dns.as_ref(), agent_ip),
        domain: agent_dns.as_ref().map(|d| d.domain.clone()).unwrap_or_else(|| "consul.".into()),
        dc: ctx.datacenter().filter(|d| agent_dc.as_deref() != Some(*d)).map(|d| format!("{d}.")),
    }
}

impl DnsPlan {
    fn base(&self, name: &str) -> String {
        format!("{name}.service.{}{}", self.dc.clone().unwrap_or_default(), self.domain)
    }
}

/// Asks each service's SRV and A questions in the background as soon as the agent's DNS
/// interface is known (after the api stage), beside the HTTP reads of the stages in between;
/// the stage judges the answers when it runs.
pub fn ask_early(ctx: &Ctx<'_>) {
    let plan = dns_plan(ctx);
    let Endpoint::At(sa, _) = plan.ep else { return };
    let timeout = ctx.inputs.timeout;
    let bases: Vec<String> = {
        let f = ctx.facts();
        f.services
            .iter()
            .filter(|svc| super::service_gate(svc, "discovery.health").is_none())
            .map(|svc| plan.base(svc.def.display_name()))
            .collect()
    };
    if bases.is_empty() {
        return;
    }
    let Ok(resolver) = super::dns::build_resolver(Some(sa), true, timeout) else { return };
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        for base in bases {
            let (srv, a) = tokio::join!(
                ask(&resolver, &base, RecordType::SRV, timeout),
                ask(&resolver, &base, RecordType::A, timeout)
            );
            out.push((base, srv, a));
        }
        (resolver, out)
    });
    ctx.facts().dns_early = Some(task);
}

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let (services, client) = match super::service_stage_start(ctx, CHECKS) {
            Ok(started) => started,
            Err(results) => return results,
        };
        let timeout = ctx.inputs.timeout;
        let (agent_dns, default_read) = {
            let f = ctx.facts();
            (f.agent.as_ref().and_then(|a| a.dns.clone()), f.default_read.clone())
        };
        let plan = dns_plan(ctx);
        let dns_cfg = agent_dns.clone().unwrap_or_default();
        let domain = plan.domain.clone();
        let ep = plan.ep.clone();
        // The answers asked ahead of the stage (see `ask_early`) and their resolver, when they
        // were asked; else a resolver of its own.
        let early_task = ctx.facts().dns_early.take();
        let (consul_resolver, early) = match early_task {
            Some(task) => match task.await {
                Ok((r, answers)) => (Some(r), answers),
                Err(_) => (None, Vec::new()),
            },
            None => (None, Vec::new()),
        };
        let consul_resolver = match (consul_resolver, &ep) {
            (Some(r), _) => Some(r),
            (None, Endpoint::At(sa, _)) => super::dns::build_resolver(Some(*sa), true, timeout).ok(),
            (None, _) => None,
        };
        let mut out = Vec::new();
        for svc in &services {
            if let Some(skip) = super::service_gate(svc, "discovery.health") {
                out.push(skip);
                continue;
            }
            let def = &svc.def;
            let name = def.display_name().to_string();
            let l = def.label.clone();
            // The duplicates stage read the same list already; ask again only when it did not.
            let path = format!("/v1/health/service/{}{}", urlencode(&name), crate::consul::dc_query(ctx.datacenter()));
            let read = ctx.facts().health_views.get(&name).cloned();
            let instances = match read {
                Some(list) => list,
                None => {
                    let listed = super::streamed::<Vec<HealthEntry>>(
                        &format!("GET {path}"),
                        client.get_json_streamed(&path).await,
                        timeout,
                    );
                    match listing(&l, listed) {
                        Ok(list) => list,
                        Err(r) => {
                            out.push(*r);
                            continue;
                        }
                    }
                }
            };
            let named = earlier_cause(&ctx.facts().reported, &l);
            let mut health = judge_health(&l, &name, &dns_cfg, &instances);
            if let (Some(cause), true) = (named, health.code == Some(codes::DSC_NONE_PASSING.code)) {
                // The sync or duplicates stage already reported why the instances fail; this
                // verdict is kept so the runner raises that cause when it was reported milder.
                let message = format!("{}; already reported as {cause}", health.message);
                health = CheckResult::blocked_with("discovery.health", cause, message, health);
            }
            let health_code = match health.status {
                crate::report::Status::Fail => health.code,
                _ => health.blocked_by,
            };
            out.push(health.with("request", format!("GET {}", client.url(&path))));

            let base = plan.base(&name);
            let asked = early.iter().find(|(b, _, _)| *b == base).filter(|_| consul_resolver.is_some());
            let (srv, a) = match (&consul_resolver, asked) {
                (Some(_), Some((_, srv, a))) => (Some(srv.clone()), Some(a.clone())),
                (Some(r), None) => {
                    // Two questions at once (no HTTP request is in flight meanwhile).
                    let (srv, a) =
                        tokio::join!(ask(r, &base, RecordType::SRV, timeout), ask(r, &base, RecordType::A, timeout));
                    (Some(srv), Some(a))
                }
                (None, _) => (None, None),
            };
            let read = default_read.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
            let dns =
                judge_dns(&l, &name, &base, &ep, &dns_cfg, &instances, srv.as_ref(), a.as_ref(), read, health_code);
            // A name the config stage already called undiscoverable (CFG-021): DNS answering
            // nothing is that cause, kept at its real severity by the runner.
            let named = ctx.facts().reported.iter().any(|(id, code, _, m)| {
                *id == "config.service" && *code == Some(codes::CFG_DNS_NAME.code) && m.starts_with(&format!("{l}: "))
            });
            out.push(match (named, dns.code == Some(codes::DSC_DNS_WRONG.code)) {
                (true, true) => {
                    let message = format!("{}; the name is the cause (CFG-021)", dns.message);
                    CheckResult::blocked_with("discovery.dns", codes::CFG_DNS_NAME.code, message, dns)
                }
                _ => dns,
            });
            out.push(judge_addresses(&l, &instances));

            let mut tag_answers = Vec::new();
            if let Some(r) = &consul_resolver {
                for tag in &def.tags {
                    let q = format!("{tag}.{base}");
                    tag_answers.push((tag.clone(), ask(r, &q, RecordType::SRV, timeout).await));
                }
            }
            out.push(judge_tags(
                &l,
                &name,
                &def.tags,
                consul_resolver.is_some(),
                &tag_answers,
                &instances,
                &dns_cfg,
                read,
            ));

            let consumer = match ctx.inputs.dns_server {
                Some(sa) => match super::dns::build_resolver(Some(sa), false, timeout) {
                    Ok(r) => Some((sa, ask(&r, &domain, RecordType::SOA, timeout).await)),
                    Err(e) => Some((sa, Answer::Failed(e))),
                },
                None => None,
            };
            out.push(judge_resolver(&l, &domain, consumer.as_ref()));
        }
        out
    })
}

/// The instances a consumer is offered, without the doctor's own probes; or what to report
/// when the health list cannot be judged.
fn listing(l: &str, listed: super::Answer<Vec<HealthEntry>>) -> Result<Vec<Instance>, Box<CheckResult>> {
    match listed {
        super::Answer::Ok(list) => Ok(list.into_iter().filter(|e| !is_probe(e)).map(instance).collect()),
        super::Answer::NotJudged(why) => Err(Box::new(CheckResult::skipped("discovery.health", format!("{l}: {why}")))),
        super::Answer::Unusable(what) => {
            Err(Box::new(super::unusable(codes::DSC_UNREADABLE, "discovery.health", format!("{l}: {what}"))))
        }
    }
}

/// A code an earlier stage reported about this service's failing instances (sync.checks,
/// duplicates.critical), so "nothing passes" is not reported a second time.
fn earlier_cause(
    reported: &[(&'static str, Option<&'static str>, Option<&'static str>, String)],
    label: &str,
) -> Option<&'static str> {
    let prefix = format!("{label}: ");
    reported
        .iter()
        .filter(|(id, _, _, m)| (*id == "sync.checks" || *id == "duplicates.critical") && m.starts_with(&prefix))
        .find_map(|(_, code, blocked_by, _)| code.or(*blocked_by))
}

fn expected_in_dns(cfg: &AgentDns, i: &Instance) -> bool {
    match i.state {
        State::Passing => true,
        State::Warning => !cfg.only_passing,
        _ => false,
    }
}

/// What the health API says consumers get.
pub fn judge_health(l: &str, name: &str, cfg: &AgentDns, instances: &[Instance]) -> CheckResult {
    if instances.is_empty() {
        return CheckResult::pass(
            "discovery.health",
            format!(
                "{l}: no instance of {name:?} is registered yet; consumers will find it once one passes its checks"
            ),
        );
    }
    let count = |f: &dyn Fn(&State) -> bool| instances.iter().filter(|i| f(&i.state)).count();
    let passing = count(&|s| *s == State::Passing);
    let warning = count(&|s| *s == State::Warning);
    let critical = count(&|s| *s == State::Critical);
    let maint: Vec<String> = instances
        .iter()
        .filter_map(|i| match &i.state {
            State::Maintenance(r) if r.is_empty() => Some(format!("{} on {}", i.id, i.node)),
            State::Maintenance(r) => Some(format!("{} on {} ({r})", i.id, i.node)),
            _ => None,
        })
        .collect();
    let summary = format!(
        "{} instance(s): {passing} passing, {warning} warning, {critical} critical, {} in maintenance",
        instances.len(),
        maint.len()
    );
    if passing == 0 && warning == 0 {
        let why = if maint.is_empty() { String::new() } else { format!("; in maintenance: {}", maint.join(", ")) };
        return CheckResult::finding(
            codes::DSC_NONE_PASSING,
            "discovery.health",
            format!("{l}: {summary}: Consul leaves critical instances out of DNS and ?passing, so consumers find nothing{why}"),
            format!("make the checks pass (consul catalog services; curl /v1/health/checks/{name}); end maintenance with consul maint -disable -service <ID>"),
        )
        .with("instances", instances.len().to_string());
    }
    if warning > 0 && cfg.only_passing {
        return CheckResult::finding(
            codes::DSC_WARNING_HIDDEN,
            "discovery.health",
            format!("{l}: {summary}: dns_config.only_passing is true, so the {warning} warning instance(s) are left out of DNS (and ?passing leaves them out too){}", if passing == 0 { ": DNS answers nothing" } else { "" }),
            "fix what makes the checks warn, or set dns_config { only_passing = false } if warning instances should still get traffic",
        );
    }
    let note = if warning > 0 { "; warning instances are in DNS but not in ?passing" } else { "" };
    CheckResult::pass("discovery.health", format!("{l}: {summary}{note}"))
}

/// Compares Consul DNS with the health API.
#[allow(clippy::too_many_arguments)]
pub fn judge_dns(
    l: &str,
    name: &str,
    qname: &str,
    ep: &Endpoint,
    cfg: &AgentDns,
    instances: &[Instance],
    srv: Option<&Answer>,
    a: Option<&Answer>,
    default_read: Option<bool>,
    health_code: Option<&'static str>,
) -> CheckResult {
    let (sa, how) = match ep {
        Endpoint::Disabled => {
            return CheckResult::finding(
                codes::DSC_DNS_DISABLED,
                "discovery.dns",
                format!("{l}: the agent's DNS interface is disabled (DNSPort -1: ports {{ dns = -1 }}): consumers can find {name:?} only through the HTTP API"),
                "enable it with ports { dns = 8600 } (and addresses { dns = \"0.0.0.0\" } or client_addr for remote consumers) and restart the agent, or make sure every consumer uses /v1/health/service/NAME?passing",
            )
        }
        Endpoint::NotHere(why) => return CheckResult::skipped("discovery.dns", format!("{l}: not asked: {why}")),
        Endpoint::At(sa, how) => (sa, how),
    };
    let (Some(srv), Some(a)) = (srv, a) else {
        return CheckResult::skipped("discovery.dns", format!("{l}: no resolver for {sa}"));
    };
    let shown = format!("SRV {qname}: {}; A: {}", srv.describe(), a.describe());
    if let Answer::Unaskable(why) = srv {
        // The doctor's own client cannot ask (the config stage names the name): never blamed
        // on the network.
        return CheckResult::skipped("discovery.dns", format!("{l}: {qname} was not asked: {why}"));
    }
    if matches!(srv, Answer::Timeout | Answer::Failed(_)) {
        return CheckResult::finding(
            codes::DSC_DNS_WRONG,
            "discovery.dns",
            format!("{l}: Consul DNS at {sa} ({how}) does not answer: {shown}"),
            "check that the agent's DNS port is open over UDP and TCP from the consumers (firewall), and read the agent log for agent.dns errors (a SERVFAIL after ~7 s means no leader)",
        )
        .with("dns_server", sa.to_string());
    }
    let expected: Vec<&Instance> = instances.iter().filter(|i| expected_in_dns(cfg, i)).collect();
    let srv_ports: Vec<u16> = match srv {
        Answer::Records { srv, .. } => srv.iter().map(|(_, p)| *p).collect(),
        _ => Vec::new(),
    };
    let staleness = stale_window(cfg, name);
    let mut r = if instances.is_empty() {
        if srv.answered() {
            CheckResult::pass("discovery.dns", format!("{l}: Consul DNS at {sa} answers {qname} ({shown})"))
        } else {
            CheckResult::pass(
                "discovery.dns",
                format!("{l}: Consul DNS at {sa} ({how}) is reachable and answers for {qname} ({}); consumers will get SRV and A records there once an instance passes", srv.describe()),
            )
        }
    } else if expected.is_empty() {
        if srv.answered() {
            stale(l, sa, &shown, "although no instance passes", &staleness)
        } else {
            let mut r = CheckResult::skipped(
                "discovery.dns",
                format!(
                    "{l}: Consul DNS at {sa} answers {} for {qname}, as Consul leaves out instances that do not pass",
                    srv.describe()
                ),
            );
            r.blocked_by = health_code;
            r
        }
    } else if !srv.answered() {
        if default_read == Some(false) {
            let mut r = CheckResult::blocked("discovery.dns", codes::ACL_NO_SERVICE_READ.code);
            r.message = format!(
                "{l}: Consul DNS at {sa} answers {} for {qname} although {} instance(s) pass: it runs with the agent's default token, which may not read {name:?} (ACL-007)",
                srv.describe(),
                expected.len()
            );
            r
        } else if staleness.is_some() {
            stale(l, sa, &shown, &format!("while {} instance(s) pass", expected.len()), &staleness)
        } else {
            CheckResult::finding(
                codes::DSC_DNS_WRONG,
                "discovery.dns",
                format!("{l}: Consul DNS at {sa} answers {} for {qname} while the health API lists {} passing instance(s)", srv.describe(), expected.len()),
                format!("compare dig @{} -p {} {qname} SRV with curl /v1/health/service/{name}?passing; the agent's default token (acl.tokens.default) must have service:read on {name:?}, and the name must be DNS-safe", sa.ip(), sa.port()),
            )
        }
    } else {
        let limit = usize::try_from(cfg.udp_answer_limit).unwrap_or(3).max(1);
        let missing: Vec<String> =
            expected.iter().filter(|i| !srv_ports.contains(&(i.port as u16))).map(|i| i.id.clone()).collect();
        if srv_ports.len() != expected.len() || !missing.is_empty() {
            let diff = format!(
                "{} SRV record(s) for {} passing instance(s){}",
                srv_ports.len(),
                expected.len(),
                if missing.is_empty() { String::new() } else { format!(", missing {}", missing.join(", ")) }
            );
            stale(l, sa, &shown, &diff, &staleness)
        } else {
            let udp = if expected.len() > limit {
                format!("; UDP consumers get at most {limit} of them per answer (dns_config.udp_answer_limit)")
            } else {
                String::new()
            };
            CheckResult::pass(
                "discovery.dns",
                format!(
                    "{l}: Consul DNS at {sa} answers {qname} like the health API ({shown}){udp}{}",
                    match &staleness {
                        Some(s) => format!("; consumers may keep an answer for up to {s}"),
                        None => String::new(),
                    }
                ),
            )
        }
    };
    r = r.with("dns_server", sa.to_string()).with("only_passing", cfg.only_passing.to_string());
    if let Some(t) = cfg.ttl_for(name) {
        r = r.with("service_ttl", fmt(t));
    }
    if cfg.use_cache {
        r = r.with("use_cache", format!("true (cache_max_age {})", cfg.cache_max_age));
    }
    if cfg.allow_stale {
        r = r.with("allow_stale", format!("true (max_stale {})", cfg.max_stale));
    }
    r
}

/// How long an answer may lag behind the catalog, from `dns_config`; `None` when nothing caches.
pub fn stale_window(cfg: &AgentDns, name: &str) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(t) = cfg.ttl_for(name) {
        parts.push(format!("{} (service_ttl, cached by resolvers)", fmt(t)));
    }
    if cfg.use_cache {
        if let Some(t) = go(&cfg.cache_max_age).filter(|d| !d.is_zero()) {
            parts.push(format!("{} (use_cache with cache_max_age, cached in the agent)", fmt(t)));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" + "))
}

fn stale(l: &str, sa: &SocketAddr, shown: &str, diff: &str, window: &Option<String>) -> CheckResult {
    let (how_long, fix) = match window {
        Some(w) => (
            format!("answers are cached: consumers see the change within {w}"),
            "wait that long, or lower dns_config service_ttl / cache_max_age if consumers must follow changes faster",
        ),
        None => (
            "nothing in dns_config caches answers, so a server may be serving stale data (allow_stale) or the instances just changed".to_string(),
            "re-run; if it persists, compare the servers (consul operator raft list-peers) and lower dns_config max_stale",
        ),
    };
    CheckResult::finding(
        codes::DSC_DNS_STALE,
        "discovery.dns",
        format!("{l}: Consul DNS at {sa} lags behind the catalog ({diff}: {shown}); {how_long}"),
        fix,
    )
}

/// Answers that send consumers to an address they cannot use.
pub fn judge_addresses(l: &str, instances: &[Instance]) -> CheckResult {
    let loopback = |a: &str| a.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) || a == "localhost";
    let bad: Vec<String> = instances
        .iter()
        .filter(|i| i.state != State::Critical)
        .filter(|i| {
            let unspecified = i.address.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
            unspecified || (loopback(&i.address) && !loopback(&i.node_address))
        })
        .map(|i| format!("{} on node {} ({}) answers {}", i.id, i.node, i.node_address, i.address))
        .collect();
    if bad.is_empty() {
        return CheckResult::pass(
            "discovery.address",
            format!("{l}: every answer points at an address reachable beyond its own host, or the node itself is loopback-only"),
        );
    }
    CheckResult::finding(
        codes::DSC_UNREACHABLE_ADDRESS,
        "discovery.address",
        format!("{l}: {}: consumers on other hosts would connect to themselves", bad.join("; ")),
        "register the service with an address other hosts can reach (the host's LAN IP, or omit Address to use the node's address); bind the service to that address",
    )
}

/// A tag that is one plain DNS host label (letters, digits, '-'): what every DNS client sends
/// as is. Consul's DNS answers other tags too (`v1.2`, `env=prod`), so this never decides a
/// finding on its own: the answer Consul's DNS gives does.
pub fn dns_safe(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= 63 && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Judges the tag queries (`TAG.NAME.service.consul`) by what Consul's DNS answered.
#[allow(clippy::too_many_arguments)]
pub fn judge_tags(
    l: &str,
    name: &str,
    tags: &[String],
    asked: bool,
    answers: &[(String, Answer)],
    instances: &[Instance],
    cfg: &AgentDns,
    default_read: Option<bool>,
) -> CheckResult {
    if tags.is_empty() {
        return CheckResult::pass("discovery.tags", format!("{l}: no tags to query"));
    }
    if !asked {
        return CheckResult::skipped(
            "discovery.tags",
            format!("{l}: Consul DNS was not asked, so whether it answers the tag queries is not known"),
        );
    }
    let unaskable: Vec<String> = answers
        .iter()
        .filter_map(|(t, a)| match a {
            Answer::Unaskable(why) => Some(format!("{t:?} ({why})")),
            _ => None,
        })
        .collect();
    if !unaskable.is_empty() {
        return CheckResult::finding(
            codes::DSC_TAG_NOT_DNS,
            "discovery.tags",
            format!("{l}: tag(s) {} cannot be put into a DNS question TAG.{name}.service.consul: only the HTTP API (?tag=) finds them", unaskable.join(", ")),
            format!("use tags DNS can carry (labels of at most 63 bytes, no empty label), or filter with /v1/health/service/{name}?tag=TAG&passing"),
        );
    }
    let silent: Vec<&(String, Answer)> = answers
        .iter()
        .filter(|(tag, ans)| {
            let serving =
                instances.iter().any(|i| expected_in_dns(cfg, i) && i.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)));
            serving && !ans.answered()
        })
        .collect();
    let shown = |list: &[&(String, Answer)]| {
        list.iter().map(|(t, a)| format!("{t}.{name}.service: {}", a.describe())).collect::<Vec<_>>().join(", ")
    };
    if !silent.is_empty() && default_read == Some(false) {
        // The same cause as the service query: Consul DNS runs with the default token.
        let mut r = CheckResult::blocked("discovery.tags", codes::ACL_NO_SERVICE_READ.code);
        r.message = format!(
            "{l}: tag queries answer nothing ({}): Consul DNS runs with the agent's default token, which may not read {name:?} (ACL-007)",
            shown(&silent)
        );
        return r;
    }
    type Asked<'a> = Vec<&'a (String, Answer)>;
    let (odd, plain): (Asked, Asked) = silent.into_iter().partition(|(t, _)| !dns_safe(t));
    if !plain.is_empty() {
        return CheckResult::finding(
            codes::DSC_DNS_WRONG,
            "discovery.tags",
            format!("{l}: tag queries answer nothing although passing instances carry the tag: {}", shown(&plain)),
            format!("compare dig TAG.{name}.service.consul SRV with curl /v1/health/service/{name}?tag=TAG&passing"),
        );
    }
    if !odd.is_empty() {
        return CheckResult::finding(
            codes::DSC_TAG_NOT_DNS,
            "discovery.tags",
            format!("{l}: Consul DNS answers nothing for tag(s) that passing instances carry: {}: only the HTTP API (?tag=) finds them", shown(&odd)),
            format!("use tags of letters, digits and dashes for DNS lookups, or filter with /v1/health/service/{name}?tag=TAG&passing"),
        );
    }
    let asked: Vec<String> = answers.iter().map(|(t, a)| format!("{t}: {}", a.describe())).collect();
    CheckResult::pass("discovery.tags", format!("{l}: Consul DNS answers the tag queries; {}", asked.join("; ")))
}

/// Does the consumer's resolver forward the Consul domain?
pub fn judge_resolver(l: &str, domain: &str, consumer: Option<&(SocketAddr, Answer)>) -> CheckResult {
    let Some((sa, ans)) = consumer else {
        return CheckResult::skipped(
            "discovery.resolver",
            format!("{l}: the consumers' resolver was not asked: give --dns-server IP:PORT (the resolver they use) to check that it forwards {domain}"),
        );
    };
    match ans {
        Answer::Records { soa_rname: Some(r), .. } => CheckResult::pass(
            "discovery.resolver",
            format!("{l}: the resolver at {sa} answers for {domain} with Consul's SOA ({r}): consumers using it reach Consul DNS"),
        ),
        other => CheckResult::finding(
            codes::DSC_NOT_FORWARDED,
            "discovery.resolver",
            format!("{l}: the resolver at {sa} does not forward {domain} to Consul: SOA {domain} gave {}", other.describe()),
            format!("forward the domain to the agents' DNS port: systemd-resolved (DNS=127.0.0.1:8600, Domains=~{}), dnsmasq (server=/{}/127.0.0.1#8600), or a BIND/CoreDNS forward zone", domain.trim_end_matches('.'), domain.trim_end_matches('.')),
        )
        .with("resolver", sa.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, port: i64, state: State) -> Instance {
        Instance {
            node: "n1".into(),
            node_address: "10.0.0.1".into(),
            id: id.into(),
            address: "10.0.0.1".into(),
            port,
            tags: vec!["v1".into()],
            state,
        }
    }

    fn cfg() -> AgentDns {
        AgentDns {
            port: 8600,
            addrs: vec!["udp://127.0.0.1:8600".into()],
            domain: "consul.".into(),
            udp_answer_limit: 3,
            ..AgentDns::default()
        }
    }

    fn records(ports: &[u16]) -> Answer {
        Answer::Records {
            srv: ports.iter().map(|p| ("n1.node.dc1.consul.".to_string(), *p)).collect(),
            ips: vec![],
            ttl: Some(0),
            soa_rname: None,
        }
    }

    #[test]
    fn endpoint_from_the_agent_configuration() {
        let mut c = cfg();
        let lo = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(matches!(endpoint(None, Some(&c), lo), Endpoint::At(sa, _) if sa.port() == 8600));
        let remote = Some(IpAddr::from([10, 1, 2, 3]));
        assert!(matches!(endpoint(None, Some(&c), remote), Endpoint::NotHere(_)));
        c.addrs = vec!["udp://0.0.0.0:8600".into()];
        assert_eq!(
            endpoint(None, Some(&c), remote),
            Endpoint::At("10.1.2.3:8600".parse().unwrap(), "the agent's DNS interface (0.0.0.0:8600)".into())
        );
        c.port = -1;
        c.addrs.clear();
        assert_eq!(endpoint(None, Some(&c), lo), Endpoint::Disabled);
    }

    #[test]
    fn service_ttl_exact_then_longest_prefix() {
        let mut c = cfg();
        c.service_ttl = vec![("*".into(), "5s".into()), ("we*".into(), "10s".into()), ("web".into(), "30s".into())];
        assert_eq!(c.ttl_for("web"), Some(Duration::from_secs(30)));
        assert_eq!(c.ttl_for("west"), Some(Duration::from_secs(10)));
        assert_eq!(c.ttl_for("api"), Some(Duration::from_secs(5)));
    }

    #[test]
    fn warning_instances_hidden_by_only_passing() {
        let mut c = cfg();
        c.only_passing = true;
        let r = judge_health("web", "web", &c, &[inst("a", 1, State::Passing), inst("b", 2, State::Warning)]);
        assert_eq!(r.code, Some("DSC-003"));
        c.only_passing = false;
        assert_eq!(judge_health("web", "web", &c, &[inst("b", 2, State::Warning)]).code, None);
    }

    #[test]
    fn dns_behind_the_catalog_says_how_long() {
        let mut c = cfg();
        c.service_ttl = vec![("web".into(), "30s".into())];
        let ep = Endpoint::At("127.0.0.1:8600".parse().unwrap(), "x".into());
        let all = [inst("a", 1, State::Passing), inst("b", 2, State::Passing)];
        let r = judge_dns(
            "web",
            "web",
            "web.service.consul.",
            &ep,
            &c,
            &all,
            Some(&records(&[1])),
            Some(&Answer::Empty),
            None,
            None,
        );
        assert_eq!(r.code, Some("DSC-006"));
        assert!(r.message.contains("30s"), "{}", r.message);
        let r = judge_dns(
            "web",
            "web",
            "web.service.consul.",
            &ep,
            &c,
            &all,
            Some(&records(&[1, 2])),
            Some(&Answer::Empty),
            None,
            None,
        );
        assert_eq!(r.code, None, "{}", r.message);
    }

    #[test]
    fn loopback_answer_from_a_remote_node() {
        let mut i = inst("a", 1, State::Passing);
        i.address = "127.0.0.1".into();
        assert_eq!(judge_addresses("web", &[i.clone()]).code, Some("DSC-005"));
        i.node_address = "127.0.0.1".into();
        assert_eq!(judge_addresses("web", &[i]).code, None);
    }

    #[test]
    fn tags_are_judged_by_what_consul_dns_answers() {
        let mut i = inst("a", 1, State::Passing);
        i.tags = vec!["v1.2".into(), "env=prod".into()];
        let tags: Vec<String> = i.tags.clone();
        let answered: Vec<(String, Answer)> = tags.iter().map(|t| (t.clone(), records(&[1]))).collect();
        let r = judge_tags("web", "web", &tags, true, &answered, &[i.clone()], &cfg(), None);
        assert_eq!(r.code, None, "Consul DNS answers v1.2 and env=prod: {}", r.message);
        let silent = vec![("v1.2".to_string(), Answer::NxDomain)];
        let r = judge_tags("web", "web", &tags, true, &silent, &[i.clone()], &cfg(), None);
        assert_eq!(r.code, Some("DSC-004"));
        let r = judge_tags("web", "web", &tags, true, &silent, &[i.clone()], &cfg(), Some(false));
        assert_eq!((r.status, r.blocked_by), (crate::report::Status::Skip, Some("ACL-007")), "one ACL cause");
        let long = "x".repeat(64);
        let unaskable = vec![(long.clone(), Answer::Unaskable("too long".into()))];
        let r = judge_tags("web", "web", &[long], true, &unaskable, &[i], &cfg(), None);
        assert_eq!(r.code, Some("DSC-004"));
    }

    #[test]
    fn query_names_carry_what_consul_dns_answers() {
        for name in ["web_api.service.consul.", "v1.2.web.service.consul.", "env=prod.web.service.consul."] {
            let q = query_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(q.is_fqdn());
        }
        assert_eq!(query_name("env=prod.web.service.consul.").unwrap().num_labels(), 4);
        assert_eq!(query_name("v1.2.web.service.consul.").unwrap().num_labels(), 5);
        assert!(query_name("a..web.service.consul.").is_err());
        assert!(query_name(&format!("{}.service.consul.", "x".repeat(64))).is_err());
    }

    #[test]
    fn health_list_probes_excluded_and_garbage_unreadable() {
        let body = br#"[{"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"web-1","Port":80,"Tags":null},"Checks":[{"CheckID":"serfHealth","Status":"passing"}]},
            {"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"consul-doctor-probe-1","Port":80,"Meta":{"consul_doctor":"probe"}},"Checks":[{"CheckID":"x","Status":"critical"}]}]"#;
        let list: Vec<HealthEntry> = serde_json::from_slice(body).unwrap();
        let got = listing("web", super::super::Answer::Ok(list)).unwrap();
        assert_eq!(got.len(), 1, "the probe is not an instance");
        assert_eq!(got[0].address, "10.0.0.1", "no service address: DNS answers the node's");
        let reply = crate::consul::Reply {
            status: 200,
            headers: Default::default(),
            body: b"<html>".to_vec(),
            elapsed: Duration::ZERO,
        };
        let broken = super::super::streamed::<Vec<HealthEntry>>(
            "GET /v1/health/service/web",
            Ok(Err((reply, "expected value".into()))),
            Duration::from_secs(1),
        );
        assert_eq!(listing("web", broken).unwrap_err().code, Some("DSC-009"));
    }

    #[test]
    fn consul_dns_that_does_not_answer() {
        let ep = Endpoint::At("127.0.0.1:8600".parse().unwrap(), "x".into());
        let r = judge_dns(
            "web",
            "web",
            "web.service.consul.",
            &ep,
            &cfg(),
            &[],
            Some(&Answer::Timeout),
            Some(&Answer::Timeout),
            None,
            None,
        );
        assert_eq!(r.code, Some("DSC-008"));
        let all = [inst("a", 1, State::Passing)];
        let r = judge_dns(
            "web",
            "web",
            "web.service.consul.",
            &ep,
            &cfg(),
            &all,
            Some(&Answer::NxDomain),
            Some(&Answer::NxDomain),
            None,
            None,
        );
        assert_eq!(r.code, Some("DSC-008"), "passing in the catalog, absent from DNS, nothing caches");
        let r = judge_dns(
            "web",
            "web",
            "web.service.consul.",
            &ep,
            &cfg(),
            &all,
            Some(&Answer::NxDomain),
            Some(&Answer::NxDomain),
            Some(false),
            None,
        );
        assert_eq!(r.blocked_by, Some("ACL-007"), "the default token explains it: one finding");
    }

    #[test]
    fn resolver_without_consul_soa_does_not_forward() {
        let sa: SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert_eq!(judge_resolver("web", "consul.", Some(&(sa, Answer::NxDomain))).code, Some("DSC-007"));
    }
}
