//! The `consul …` commands a fix tells the operator to run, carrying the settings the doctor was
//! given — address, TLS files, server name, datacenter — so a pasted command reaches the same
//! agent the doctor diagnosed, not the CLI's default 127.0.0.1:8500. Never the token itself: a
//! token file is named (`CONSUL_HTTP_TOKEN_FILE=…`); a token from `CONSUL_HTTP_TOKEN` is already in
//! the operator's environment.
//!
//! Checks write their fixes with bare `consul <command> …` (wording lives beside the code); one
//! pass ([`ConsulCli::apply`]) prefixes every command that talks to the agent before the report is
//! rendered. Commands that act on one node's own agent (`consul services …`) name their agent
//! explicitly through [`ConsulCli::on_host`] and are left alone by the pass.

use crate::inputs::{ConsulInputs, Source};
use crate::report::CheckResult;

/// Commands of the Consul 1.8 CLI that talk to an agent's HTTP API, as typed (longest first
/// where one is a prefix of another), and whether they take `-datacenter` (checked against each
/// command's `-h` in Consul 1.8.7). `services`, `maint` and `reload` are not here: they act on one
/// node's own agent (its local services, its configuration files), so a fix names that node and
/// builds the command with [`ConsulCli::on_host`] where it knows the node's address (a
/// `services deregister` meant for the diagnosed agent itself is prefixed, see `local_deregister`).
const API_COMMANDS: &[(&str, bool)] = &[
    ("acl policy create", true),
    ("acl policy update", true),
    ("acl policy read", true),
    ("acl policy list", true),
    ("acl token create", true),
    ("acl token update", true),
    ("acl token read", true),
    ("acl token list", true),
    ("acl set-agent-token", true),
    ("acl bootstrap", true),
    ("acl role create", true),
    ("operator raft list-peers", true),
    ("operator raft remove-peer", true),
    ("catalog services", true),
    ("catalog nodes", true),
    ("catalog datacenters", false),
    ("members", false),
    ("monitor", false),
    ("join", false),
    ("force-leave", false),
    ("info", false),
];

/// Read-only commands answered with the doctor's own token: the token file it read is named
/// (other commands need an operator's token, with acl:write or service:write).
const READS_WITH_CALLERS_TOKEN: &[&str] = &[
    "acl token read",
    "catalog services",
    "catalog nodes",
    "catalog datacenters",
    "operator raft list-peers",
    "members",
];

/// The settings a pasted `consul` command needs to reach the agent the doctor diagnosed.
#[derive(Debug, Clone, Default)]
pub struct ConsulCli {
    /// `CONSUL_HTTP_ADDR` as given (none when it was the default, which the CLI shares).
    addr: Option<String>,
    /// TLS, scheme and Enterprise scope settings, as `NAME=value`, in the CLI's variable names.
    tls: Vec<(&'static str, String)>,
    /// `CONSUL_HTTP_TOKEN_FILE`, when the doctor read its token from a file.
    token_file: Option<String>,
    datacenter: Option<String>,
}

impl ConsulCli {
    /// From the resolved connection inputs (flags, environment, defaults).
    pub fn new(c: &ConsulInputs) -> ConsulCli {
        let addr = (c.http_addr.source != Source::Default).then(|| c.http_addr.value.clone());
        let mut tls = Vec::new();
        for (name, v) in [
            ("CONSUL_CACERT", &c.ca_file),
            ("CONSUL_CAPATH", &c.ca_path),
            ("CONSUL_CLIENT_CERT", &c.client_cert),
            ("CONSUL_CLIENT_KEY", &c.client_key),
        ] {
            if let Some(p) = v {
                tls.push((name, p.value.display().to_string()));
            }
        }
        if let Some(n) = &c.tls_server_name {
            tls.push(("CONSUL_TLS_SERVER_NAME", n.value.clone()));
        }
        // The Enterprise scope the doctor asked in; the CLI reads the same variables.
        for (name, v) in [("CONSUL_NAMESPACE", &c.namespace), ("CONSUL_PARTITION", &c.partition)] {
            if let Some(v) = v {
                tls.push((name, v.value.clone()));
            }
        }
        for (name, v) in [("CONSUL_HTTP_SSL", &c.http_ssl), ("CONSUL_HTTP_SSL_VERIFY", &c.http_ssl_verify)] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                tls.push((name, v.clone()));
            }
        }
        ConsulCli {
            addr,
            tls,
            token_file: c.token_file.as_ref().map(|f| f.value.display().to_string()),
            datacenter: c.datacenter.as_ref().map(|d| d.value.clone()),
        }
    }

    /// The same settings aimed at the agent on another host (`host` an IP or name from the
    /// catalog): the scheme and port of the address the doctor was given are kept (8500 when it
    /// had none), as agents of one cluster share their ports.
    pub fn on_host(&self, host: &str) -> ConsulCli {
        let given = self.addr.as_deref().unwrap_or(crate::inputs::DEFAULT_HTTP_ADDR);
        let (scheme, rest) = match given.split_once("://") {
            Some((s, r)) if s == "http" || s == "https" => (format!("{s}://"), r),
            Some(_) => (String::new(), "127.0.0.1:8500"),
            None => (String::new(), given),
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let port = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => p,
            _ => "8500",
        };
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
        ConsulCli { addr: Some(format!("{scheme}{host}:{port}")), ..self.clone() }
    }

    /// `consul <command> [-datacenter=DC] <args>` with the environment it needs in front.
    pub fn command(&self, command: &str, args: &str) -> String {
        let dc = API_COMMANDS.iter().any(|(c, dc)| *c == command && *dc) || command.starts_with("services ");
        let mut line = self.env(command);
        line.push_str("consul ");
        line.push_str(command);
        if let Some(d) = self.datacenter.as_ref().filter(|_| dc) {
            line.push_str(&format!(" -datacenter={}", quote(d)));
        }
        if !args.is_empty() {
            line.push(' ');
            line.push_str(args);
        }
        line
    }

    /// `curl` for an HTTP API call the CLI has no command for, with the same CA, client
    /// certificate and token source (`$(cat FILE)` or `$CONSUL_HTTP_TOKEN`, never the token).
    /// `url` is the agent's address as the doctor reached it plus the path.
    pub fn curl(&self, method: &str, url: &str, data: Option<&str>, token_from_env: bool) -> String {
        let mut line = format!("curl --fail --request {method}");
        for (name, v) in &self.tls {
            let flag = match *name {
                "CONSUL_CACERT" => "--cacert",
                "CONSUL_CAPATH" => "--capath",
                "CONSUL_CLIENT_CERT" => "--cert",
                "CONSUL_CLIENT_KEY" => "--key",
                _ => continue,
            };
            line.push_str(&format!(" {flag} {}", quote(v)));
        }
        match (&self.token_file, token_from_env) {
            (Some(f), _) => line.push_str(&format!(" --header \"X-Consul-Token: $(cat {})\"", quote(f))),
            (None, true) => line.push_str(" --header \"X-Consul-Token: $CONSUL_HTTP_TOKEN\""),
            (None, false) => {}
        }
        if let Some(d) = data {
            line.push_str(&format!(" --data {}", quote(d)));
        }
        line.push(' ');
        line.push_str(&quote(url));
        line
    }

    fn env(&self, command: &str) -> String {
        let mut vars: Vec<String> = Vec::new();
        if let Some(a) = &self.addr {
            vars.push(format!("CONSUL_HTTP_ADDR={}", quote(a)));
        }
        vars.extend(self.tls.iter().map(|(n, v)| format!("{n}={}", quote(v))));
        if let Some(f) = self.token_file.as_ref().filter(|_| READS_WITH_CALLERS_TOKEN.contains(&command)) {
            vars.push(format!("CONSUL_HTTP_TOKEN_FILE={}", quote(f)));
        }
        vars.into_iter().map(|v| v + " ").collect()
    }

    /// Every agent-facing `consul …` command in `text`, with the settings in front (and
    /// `-datacenter` after the command where it takes one). Idempotent.
    pub fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = find_word(rest, "consul ") {
            let (before, from) = rest.split_at(at);
            out.push_str(before);
            let after = &from["consul ".len()..];
            let command = API_COMMANDS.iter().map(|(c, _)| *c).chain(self.local_deregister(text)).find(|c| {
                after.starts_with(c)
                    && after[c.len()..].chars().next().is_none_or(|ch| !ch.is_ascii_alphanumeric() && ch != '-')
            });
            // Already prefixed (a command built with `command`, or run twice): leave it; so is a
            // command inside a `<placeholder>`, which says how to get a value, with another token.
            let after_env = |c: &str| {
                let env = self.env(c);
                (!env.is_empty() && out.ends_with(&env))
                    || out
                        .trim_end()
                        .rsplit(' ')
                        .next()
                        .is_some_and(|w| w.trim_start_matches(['(', '`', ':', ',']).starts_with("CONSUL_"))
            };
            let in_placeholder = out.matches('<').count() > out.matches('>').count();
            match command {
                Some(c) if !in_placeholder && !after_env(c) => {
                    let built = self.command(c, "");
                    out.push_str(&built);
                    rest = &after[c.len()..];
                }
                _ => {
                    out.push_str("consul ");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// `services deregister` acts on one agent's own services: it is aimed at the diagnosed agent
    /// when the fix names no other (no "on node …", "their nodes", "own agent"); fixes about
    /// instances elsewhere name their node, and scan builds theirs with [`ConsulCli::on_host`].
    fn local_deregister(&self, fix: &str) -> Option<&'static str> {
        let elsewhere = ["on node ", "their nodes", "own agent"].iter().any(|w| fix.contains(w));
        (!elsewhere).then_some("services deregister")
    }

    /// Rewrites the fix of every result.
    pub fn apply(&self, checks: &mut [CheckResult]) {
        for c in checks {
            if let Some(fix) = &c.fix {
                c.fix = Some(self.rewrite(fix));
            }
        }
    }
}

/// Where `word` starts at a word boundary (start, space, or opening punctuation) in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let ok = text[..at].chars().next_back().is_none_or(|c| matches!(c, ' ' | '(' | '`' | ':' | '\n' | ','));
        if ok {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// A value as one shell word: as is when it is plain, else single-quoted.
pub fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '.' | '/' | ':' | '@' | '%' | '+' | '=' | ',' | '-' | '[' | ']')
        });
    if plain {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Sourced;

    fn cli(addr: Option<&str>, dc: Option<&str>) -> ConsulCli {
        ConsulCli {
            addr: addr.map(str::to_string),
            tls: vec![("CONSUL_CACERT", "/etc/consul/ca.pem".into())],
            token_file: Some("/etc/consul/deploy token".into()),
            datacenter: dc.map(str::to_string),
        }
    }

    #[test]
    fn every_agent_command_carries_the_settings() {
        let c = cli(Some("https://127.0.0.1:8501"), Some("dc2"));
        let fix =
            "grant it: consul acl policy create -name x -rules 'y', then consul acl token update -id A -merge-policies";
        let out = c.rewrite(fix);
        assert_eq!(
            out,
            "grant it: CONSUL_HTTP_ADDR=https://127.0.0.1:8501 CONSUL_CACERT=/etc/consul/ca.pem consul acl policy create -datacenter=dc2 -name x -rules 'y', then CONSUL_HTTP_ADDR=https://127.0.0.1:8501 CONSUL_CACERT=/etc/consul/ca.pem consul acl token update -datacenter=dc2 -id A -merge-policies"
        );
        assert_eq!(c.rewrite(&out), out, "idempotent");
        let once = c.rewrite("check the servers (consul operator raft list-peers) and `consul members`");
        assert_eq!(c.rewrite(&once), once, "idempotent after punctuation too");
        assert_eq!(once.matches("CONSUL_HTTP_ADDR=").count(), 2, "{once}");
        // A read with the caller's token names its file, quoted; local commands are left alone.
        let out = c.rewrite("check with consul operator raft list-peers; consul tls cert create -server");
        assert!(
            out.contains(
                "CONSUL_HTTP_TOKEN_FILE='/etc/consul/deploy token' consul operator raft list-peers -datacenter=dc2;"
            ),
            "{out}"
        );
        assert!(out.ends_with("; consul tls cert create -server"), "{out}");
        // The diagnosed agent's own services; another node's are left to the fix's own words.
        assert_eq!(
            c.rewrite("deregister it first (consul services deregister -id=web-1)"),
            "deregister it first (CONSUL_HTTP_ADDR=https://127.0.0.1:8501 CONSUL_CACERT=/etc/consul/ca.pem consul services deregister -datacenter=dc2 -id=web-1)"
        );
        let elsewhere = "on node n2 (10.0.0.2): consul services deregister -id=web-2";
        assert_eq!(c.rewrite(elsewhere), elsewhere);
        assert_eq!(c.rewrite("consul services register web.json"), "consul services register web.json");
        let placeholder =
            "consul acl token update -id <AccessorID: consul acl token read -self with that token> -merge-policies";
        assert!(!c.rewrite(placeholder).contains("TOKEN_FILE"), "{}", c.rewrite(placeholder));
        // Words that merely contain "consul" are not commands.
        assert_eq!(
            c.rewrite("the consul_doctor meta, name.service.consul answers"),
            "the consul_doctor meta, name.service.consul answers"
        );
    }

    #[test]
    fn curl_carries_the_ca_and_names_the_token_file() {
        let c = cli(Some("https://127.0.0.1:8501"), None);
        assert_eq!(
            c.curl("PUT", "https://127.0.0.1:8501/v1/catalog/deregister", Some(r#"{"Node":"n1"}"#), false),
            r#"curl --fail --request PUT --cacert /etc/consul/ca.pem --header "X-Consul-Token: $(cat '/etc/consul/deploy token')" --data '{"Node":"n1"}' https://127.0.0.1:8501/v1/catalog/deregister"#
        );
    }

    #[test]
    fn another_hosts_agent_keeps_scheme_and_port() {
        let c = cli(Some("https://127.0.0.1:8501"), None);
        assert!(c
            .on_host("10.0.0.5")
            .command("services deregister", "-id=web-1")
            .starts_with("CONSUL_HTTP_ADDR=https://10.0.0.5:8501 "));
        let c = cli(None, None);
        assert!(c
            .on_host("::1")
            .command("services deregister", "-id=web-1")
            .starts_with("CONSUL_HTTP_ADDR=[::1]:8500 "));
    }

    #[test]
    fn the_default_address_needs_no_prefix() {
        let inputs = ConsulInputs {
            http_addr: Sourced { value: "127.0.0.1:8500".into(), source: Source::Default },
            token: None,
            token_file: None,
            ca_file: None,
            ca_path: None,
            client_cert: None,
            client_key: None,
            tls_server_name: None,
            datacenter: None,
            http_ssl: None,
            http_ssl_verify: None,
            namespace: None,
            partition: None,
            peer: None,
            http_auth: None,
            proxy_env: Vec::new(),
        };
        assert_eq!(ConsulCli::new(&inputs).command("members", ""), "consul members");
    }
}
