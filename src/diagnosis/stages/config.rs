//! config stage: the connection inputs (judged by [`crate::connection`]), the service
//! definitions and the application's go.mod, all before any network traffic.

use std::sync::Arc;

use crate::codes;
use crate::connection::evaluate;
use crate::diagnosis::pipeline::{Ctx, StageFuture};
use crate::inputs::Inputs;
use crate::report::CheckResult;

pub const CHECKS: &[&str] =
    &["config.address", "config.token", "config.tls", "config.environment", "config.service", "config.go_mod"];

/// The service definition and go.mod gate only their own service checks, not the connection.
pub const SOFT: &[&str] = &["config.service", "config.go_mod"];

pub fn run<'a>(ctx: &'a Ctx<'a>) -> StageFuture<'a> {
    Box::pin(async move {
        let (conn, mut results) = evaluate(ctx.inputs);
        let (services, service_results) = evaluate_services(ctx.inputs);
        results.extend(service_results);
        let (go_api, go_results) = evaluate_go_mod(ctx.inputs);
        results.extend(go_results);
        {
            let mut f = ctx.facts();
            f.services = services;
            f.go_api = go_api;
        }
        if let Some(conn) = conn {
            ctx.facts().conn = Some(Arc::new(conn));
        }
        results
    })
}

/// Loads and judges every service given; each keeps the code that blocks its later checks.
pub fn evaluate_services(inputs: &Inputs) -> (Vec<super::Svc>, Vec<CheckResult>) {
    let mut results = Vec::new();
    let mut defs = Vec::new();
    for path in &inputs.service.files {
        for loaded in crate::service::load_path(path) {
            match loaded {
                Ok(list) => defs.extend(list),
                Err(r) => results.push(*r),
            }
        }
    }
    let fs = &inputs.service.flags;
    if fs.given() {
        defs.push(crate::service::from_flags(&crate::service::FlagService {
            name: fs.name.as_deref(),
            id: fs.id.as_deref(),
            address: fs.address.as_deref(),
            port: fs.port,
            check_http: fs.check_http.as_deref(),
            check_tcp: fs.check_tcp.as_deref(),
            check_interval: fs.check_interval.as_deref(),
            check_timeout: fs.check_timeout.as_deref(),
        }));
    }
    if defs.is_empty() && results.is_empty() {
        if !inputs.service.files.is_empty() {
            let shown: Vec<String> = inputs.service.files.iter().map(|p| p.display().to_string()).collect();
            return (
                Vec::new(),
                vec![CheckResult::skipped(
                    "config.service",
                    format!("no service definition found in {}", shown.join(", ")),
                )],
            );
        }
        return (Vec::new(), vec![super::no_service("config.service")]);
    }
    let dup = crate::service::judge_duplicate_ids(&defs);
    let mut services = Vec::new();
    for def in defs {
        let found = crate::service::judge(&def);
        let blocker = found.iter().find(|r| r.status == crate::report::Status::Fail).and_then(|r| r.code);
        if found.is_empty() {
            let checks = match def.checks.len() {
                0 => "no checks".to_string(),
                1 => "1 check".to_string(),
                n => format!("{n} checks"),
            };
            results.push(CheckResult::pass("config.service", format!("{}: definition is valid ({checks})", def.label)));
        }
        results.extend(found);
        services.push(super::Svc { def, blocker });
    }
    results.extend(dup);
    (services, results)
}

/// Reads the application's go.mod for its `github.com/hashicorp/consul/api` version.
pub fn evaluate_go_mod(inputs: &Inputs) -> (Option<String>, Vec<CheckResult>) {
    let Some(path) = &inputs.service.go_mod else {
        return (None, vec![CheckResult::skipped("config.go_mod", "no --go-mod given")]);
    };
    let shown = path.display();
    let text = match crate::localfile::read_text_capped(path, crate::localfile::GO_MOD_CAP) {
        Ok(t) => t,
        Err(e) => {
            return (
                None,
                vec![CheckResult::finding(
                    codes::CFG_GO_MOD,
                    "config.go_mod",
                    format!("{shown} cannot be read: {e}"),
                    "pass the application's go.mod with --go-mod",
                )],
            )
        }
    };
    if !text.lines().any(|l| l.trim_start().starts_with("module ")) {
        return (
            None,
            vec![CheckResult::finding(
                codes::CFG_GO_MOD,
                "config.go_mod",
                format!("{shown} is not a go.mod file (no module line)"),
                "pass the application's go.mod with --go-mod",
            )],
        );
    }
    match go_mod_consul_api(&text) {
        Some(v) => (
            Some(v.clone()),
            vec![CheckResult::pass("config.go_mod", format!("{shown}: github.com/hashicorp/consul/api {v}"))],
        ),
        None => (
            None,
            vec![CheckResult::skipped(
                "config.go_mod",
                format!("{shown} does not require github.com/hashicorp/consul/api"),
            )],
        ),
    }
}

/// The required (or replaced) version of github.com/hashicorp/consul/api in a go.mod.
pub fn go_mod_consul_api(text: &str) -> Option<String> {
    const MODULE: &str = "github.com/hashicorp/consul/api";
    let mut required = None;
    let mut replaced = None;
    let mut block: Option<&str> = None;
    for raw in text.lines() {
        let line = raw.split("//").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line == ")" {
            block = None;
            continue;
        }
        let (kind, rest) = match block {
            Some(k) => (k, line),
            None => match line.split_once(char::is_whitespace) {
                Some((k @ ("require" | "replace"), r)) => {
                    let r = r.trim();
                    if r == "(" {
                        block = Some(k);
                        continue;
                    }
                    (k, r)
                }
                _ => continue,
            },
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        match kind {
            "require" if words.first() == Some(&MODULE) => required = words.get(1).map(|v| v.to_string()),
            "replace" if words.first() == Some(&MODULE) => {
                if let Some(pos) = words.iter().position(|w| *w == "=>") {
                    let target = words.get(pos + 1).copied().unwrap_or("");
                    let version = words.get(pos + 2).copied();
                    replaced = Some(match version {
                        Some(v) => format!("{v} (replaced by {target})"),
                        None => format!("replaced by local path {target}"),
                    });
                }
            }
            _ => {}
        }
    }
    replaced.or(required)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_consul_api_version_from_go_mod() {
        let gomod = "module example.com/app\n\ngo 1.22\n\nrequire (\n\tgithub.com/hashicorp/consul/api v1.29.1 // indirect\n\tgithub.com/x/y v0.1.0\n)\n";
        assert_eq!(go_mod_consul_api(gomod).as_deref(), Some("v1.29.1"));
        let single = "module m\nrequire github.com/hashicorp/consul/api v1.7.0\n";
        assert_eq!(go_mod_consul_api(single).as_deref(), Some("v1.7.0"));
        let replaced = format!("{single}replace github.com/hashicorp/consul/api => ../consul/api\n");
        assert_eq!(go_mod_consul_api(&replaced).as_deref(), Some("replaced by local path ../consul/api"));
        assert_eq!(go_mod_consul_api("module m\n"), None);
    }
}
