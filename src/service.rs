//! Service definitions: every shape Consul accepts, read into one model, and judged by Consul's
//! own rules plus the pitfalls Consul accepts silently.
//!
//! Shapes: `{"service": {...}}` and `{"services": [...]}` (agent configuration files, JSON or
//! HCL) and a bare `/v1/agent/service/register` body (JSON). Keys match Consul's decoding: the
//! HTTP API matches field names case-insensitively and translates a few snake_case keys, while
//! configuration files accept snake_case everywhere.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::codes::{self, Code};
use crate::duration::{format_go, parse_go_duration};
use crate::report::CheckResult;
use crate::secret::Secret;

/// Which decoder Consul would use for the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A `/v1/agent/service/register` body (strict JSON decoding).
    Api,
    /// An agent configuration file or `consul services register` input.
    Config,
}

/// A field that only some Consul versions (or only Enterprise) accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedField {
    pub path: String,
    pub field: &'static str,
    /// First OSS versions that accept it (one entry per release line it was backported to,
    /// oldest first); `None` for Enterprise-only fields.
    pub since: Option<&'static [(u32, u32, u32)]>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dur {
    /// A string, with Go's parse result (nanoseconds).
    Text(String, Result<i64, String>),
    /// A JSON number: nanoseconds in the HTTP API.
    Number(f64),
}

impl Dur {
    pub fn nanos(&self) -> Option<i64> {
        match self {
            Dur::Text(_, Ok(n)) => Some(*n),
            Dur::Text(_, Err(_)) => None,
            Dur::Number(n) => Some(*n as i64),
        }
    }

    pub fn shown(&self) -> String {
        match self {
            Dur::Text(s, _) => format!("{s:?}"),
            Dur::Number(n) => format!("{n} (a number: nanoseconds)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Http { url: String, method: String, headers: Vec<(String, String)>, tls_skip_verify: bool },
    Tcp { address: String },
    Grpc { target: String },
    Ttl,
    Script,
    Alias,
    Other(&'static str),
    None,
}

#[derive(Debug, Clone)]
pub struct CheckDef {
    pub label: String,
    pub id: Option<String>,
    pub kind: CheckKind,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub ttl: Option<Dur>,
    pub deregister: Option<Dur>,
    pub status: Option<String>,
    /// Every check type the definition sets, as written (`http`, `tcp`, `args`, …): Consul
    /// keeps one and silently drops the others.
    pub types: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { path: String, index: usize },
    Flags,
}

#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub label: String,
    pub origin: Origin,
    pub form: Form,
    pub name: Option<String>,
    pub id: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub tags: Vec<String>,
    pub meta: Vec<(String, String)>,
    pub kind: Option<String>,
    pub token: Option<Secret>,
    /// The definition's own `Namespace` / `Partition` (Consul Enterprise).
    pub namespace: Option<String>,
    pub partition: Option<String>,
    pub weights_passing: Option<i64>,
    pub sidecar: bool,
    /// The `connect` block as written (any key spelling), for the mesh stage.
    pub connect: Option<Value>,
    pub checks: Vec<CheckDef>,
    pub versioned: Vec<VersionedField>,
    /// Findings made while reading (unknown fields, wrong types, bad durations).
    pub problems: Vec<CheckResult>,
    /// Written in HCL (fixes are then given in HCL; otherwise in the file's JSON form).
    pub hcl: bool,
    /// A JSON configuration-file wrapper (`{"service": {...}}`) around an HTTP API body (its keys
    /// in the API's CamelCase): the wrapper key as written.
    pub api_body_wrapped_in: Option<String>,
}

impl ServiceDef {
    /// `key = value` in the definition's own syntax: HCL, configuration-file JSON (snake_case)
    /// or an API body (CamelCase). `value` is a JSON literal (`"10m"`, `1`).
    pub fn assign(&self, snake: &str, camel: &str, value: &str) -> String {
        if self.hcl {
            format!("{snake} = {value}")
        } else if self.form == Form::Api {
            format!("\"{camel}\": {value}")
        } else {
            format!("\"{snake}\": {value}")
        }
    }

    /// The ID Consul will use: the ID, or the name when the ID is omitted.
    pub fn effective_id(&self) -> Option<&str> {
        self.id.as_deref().filter(|s| !s.is_empty()).or(self.name.as_deref())
    }

    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("?")
    }
}

// ---------------------------------------------------------------------------------------------
// Field tables

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Bool,
    StrList,
    StrMap,
    Duration,
    Object,
    Check,
    CheckList,
    Header,
    Weights,
    TaggedAddresses,
    /// A field whose shape the doctor does not judge (accepted as written).
    Any,
}

struct Field {
    name: &'static str,
    ty: Ty,
    since: Option<&'static [(u32, u32, u32)]>,
    enterprise: bool,
}

const fn f(name: &'static str, ty: Ty) -> Field {
    Field { name, ty, since: None, enterprise: false }
}

const fn newer(name: &'static str, ty: Ty, since: &'static [(u32, u32, u32)]) -> Field {
    Field { name, ty, since: Some(since), enterprise: false }
}

/// Whether a Consul version accepts a field first shipped in `since`.
pub fn version_accepts(v: (u32, u32, u32), since: &[(u32, u32, u32)]) -> bool {
    if let Some(&(_, _, patch)) = since.iter().find(|s| (s.0, s.1) == (v.0, v.1)) {
        return v.2 >= patch;
    }
    since.last().is_some_and(|last| (v.0, v.1) > (last.0, last.1))
}

const fn ent(name: &'static str, ty: Ty) -> Field {
    Field { name, ty, since: None, enterprise: true }
}

const SERVICE_FIELDS: &[Field] = &[
    f("Kind", Ty::Str),
    f("ID", Ty::Str),
    f("Name", Ty::Str),
    f("Tags", Ty::StrList),
    f("Address", Ty::Str),
    f("TaggedAddresses", Ty::TaggedAddresses),
    f("Meta", Ty::StrMap),
    f("Port", Ty::Int),
    f("Weights", Ty::Weights),
    f("EnableTagOverride", Ty::Bool),
    f("Check", Ty::Check),
    f("Checks", Ty::CheckList),
    f("Proxy", Ty::Object),
    f("Connect", Ty::Object),
    f("Token", Ty::Str),
    newer("SocketPath", Ty::Str, &[(1, 10, 0)]),
    newer("Locality", Ty::Object, &[(1, 16, 0)]),
    // Multi-port services (1.22): the shape is judged by the agent, the version by consul_facts.
    newer("Ports", Ty::Any, &[(1, 22, 0)]),
    ent("Namespace", Ty::Str),
    ent("Partition", Ty::Str),
];

const CHECK_FIELDS: &[Field] = &[
    f("CheckID", Ty::Str),
    f("Name", Ty::Str),
    f("Status", Ty::Str),
    f("Notes", Ty::Str),
    f("ScriptArgs", Ty::StrList),
    f("HTTP", Ty::Str),
    f("Header", Ty::Header),
    f("Method", Ty::Str),
    f("Body", Ty::Str),
    f("TCP", Ty::Str),
    f("Interval", Ty::Duration),
    f("AliasNode", Ty::Str),
    f("AliasService", Ty::Str),
    f("DockerContainerID", Ty::Str),
    f("Shell", Ty::Str),
    f("GRPC", Ty::Str),
    f("GRPCUseTLS", Ty::Bool),
    f("TLSSkipVerify", Ty::Bool),
    f("Timeout", Ty::Duration),
    f("TTL", Ty::Duration),
    f("SuccessBeforePassing", Ty::Int),
    f("FailuresBeforeCritical", Ty::Int),
    f("DeregisterCriticalServiceAfter", Ty::Duration),
    f("OutputMaxSize", Ty::Int),
    f("ServiceID", Ty::Str),
    // First releases per the upstream changelog (DisableRedirects was a security backport).
    newer("TLSServerName", Ty::Str, &[(1, 10, 0)]),
    newer("H2PING", Ty::Str, &[(1, 10, 0)]),
    newer("H2PingUseTLS", Ty::Bool, &[(1, 11, 0)]),
    newer("UDP", Ty::Str, &[(1, 13, 0)]),
    newer("OSService", Ty::Str, &[(1, 14, 0)]),
    newer("FailuresBeforeWarning", Ty::Int, &[(1, 11, 0)]),
    newer("DisableRedirects", Ty::Bool, &[(1, 9, 17), (1, 10, 10), (1, 11, 5), (1, 12, 0)]),
    newer("TCPUseTLS", Ty::Bool, &[(1, 17, 0)]),
];

fn norm(key: &str) -> String {
    key.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

fn lookup<'a>(fields: &'a [Field], key: &str, form: Form, in_check: bool) -> Result<&'a Field, String> {
    let n = norm(key);
    let n = match (n.as_str(), in_check, form) {
        ("args", true, _) => "scriptargs".to_string(),
        ("id", true, Form::Config) => "checkid".to_string(),
        ("id", true, Form::Api) => return Err("the HTTP API calls it CheckID".into()),
        ("script", true, _) => return Err("script checks take \"args\" (a list) since Consul 1.0".into()),
        _ => n,
    };
    let found = fields.iter().find(|f| norm(f.name) == n).ok_or_else(|| match (in_check, n.as_str()) {
        (true, _) => "no Consul check has this field".to_string(),
        (false, "service") => "the agent's /v1/agent/services answer calls the name Service, and configuration files wrap a definition in service; a register body names the service with Name".to_string(),
        (false, "services") => "configuration files list definitions under services; the HTTP API takes one bare definition per request".to_string(),
        (false, _) => "no Consul service has this field".to_string(),
    })?;
    // snake_case keys in an API body: only the aliases Consul's decoders list (consul_facts).
    if form == Form::Api && key.contains('_') {
        let object = if in_check { crate::consul_facts::Object::Check } else { crate::consul_facts::Object::Service };
        match crate::consul_facts::field(object, key) {
            Some(fact) if crate::consul_facts::accepted_by_some(fact) => {}
            _ => return Err(format!("the HTTP API expects {}", found.name)),
        }
    }
    Ok(found)
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Reads a definition file, or every `.json`/`.hcl` file of a configuration directory (files
/// without a service, such as the agent's own settings, are passed over as the agent would).
pub fn load_path(path: &Path) -> Vec<Result<Vec<ServiceDef>, Box<CheckResult>>> {
    if !path.is_dir() {
        return vec![load_file(path)];
    }
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(path) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json" || x == "hcl"))
            .collect(),
        Err(e) => {
            return vec![Err(Box::new(finding(
                codes::CFG_PARSE,
                format!("directory {} cannot be read: {e}", path.display()),
                "check the path given with --service-file and its permissions",
            )))]
        }
    };
    files.sort();
    files
        .into_iter()
        .map(|f| load_file(&f))
        .filter(|r| !matches!(r, Err(e) if e.message.ends_with(NO_SERVICE)))
        .collect()
}

const NO_SERVICE: &str = "no service in the file";

/// Reads a definition file; parse errors come back as CFG-014 results.
pub fn load_file(path: &Path) -> Result<Vec<ServiceDef>, Box<CheckResult>> {
    let shown = path.display().to_string();
    let text = crate::localfile::read_text_capped(path, crate::localfile::DEFINITION_CAP).map_err(|e| {
        Box::new(finding(
            codes::CFG_PARSE,
            format!("service file {shown} cannot be read: {e}"),
            match e {
                crate::localfile::ReadError::Io(_) => "check the path given with --service-file and its permissions".to_string(),
                _ => "pass the service definition itself (a regular .json or .hcl file of at most 4 MiB) with --service-file".to_string(),
            },
        ))
    })?;
    load_text(&text, &shown)
}

/// Parses definition text; JSON unless the name ends in .hcl or the text is not JSON.
pub fn load_text(text: &str, shown: &str) -> Result<Vec<ServiceDef>, Box<CheckResult>> {
    let hcl_name = shown.ends_with(".hcl");
    let (value, hcl) = if hcl_name {
        (crate::hcl::parse(text).map_err(|e| Box::new(hcl_error(shown, &e)))?, true)
    } else {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => (v, false),
            Err(json_err) => {
                let looks_json = text.trim_start().starts_with('{')
                    || text.trim_start().starts_with('[')
                    || shown.ends_with(".json");
                match crate::hcl::parse(text) {
                    Ok(v) if !looks_json => (v, true),
                    _ => {
                        return Err(Box::new(finding(
                            codes::CFG_PARSE,
                            format!("{shown}: invalid JSON at line {}, column {}: {json_err}", json_err.line(), json_err.column()),
                            "fix the syntax at that position (a trailing comma, a missing quote or brace); check with: consul validate, or jq . FILE",
                        )))
                    }
                }
            }
        }
    };
    let top = match value {
        Value::Object(m) => m,
        other => {
            return Err(Box::new(finding(
                codes::CFG_PARSE,
                format!("{shown}: the top level is {}, not an object", json_type(&other)),
                "wrap the definition as {\"service\": {...}}, {\"services\": [...]}, or give a bare /v1/agent/service/register body",
            )))
        }
    };
    let mut raw: Vec<(Map<String, Value>, Form)> = Vec::new();
    // A `Service` key beside a service's own fields (`{"ID": "web-1", "Service": "web"}`, the
    // shape of /v1/agent/services) is not a configuration-file wrapper: it is an API body with
    // a field Consul's strict decoding rejects.
    let own_fields = top.keys().any(|k| {
        !matches!(norm(k).as_str(), "service" | "services") && SERVICE_FIELDS.iter().any(|f| norm(f.name) == norm(k))
    });
    let wrapper_shaped = top
        .iter()
        .filter(|(k, _)| matches!(norm(k).as_str(), "service" | "services"))
        .all(|(_, v)| v.is_object() || v.is_array());
    let wrapped: Vec<(&String, &Value)> = if !hcl && (own_fields || !wrapper_shaped) {
        Vec::new()
    } else {
        top.iter().filter(|(k, _)| matches!(norm(k).as_str(), "service" | "services")).collect()
    };
    let mut wrapper_of: Vec<Option<String>> = Vec::new();
    if wrapped.is_empty() {
        // Agent settings (datacenter, data_dir, ...) without a service: nothing to check here.
        let agent_keys = [
            "datacenter",
            "datadir",
            "server",
            "bootstrapexpect",
            "acl",
            "ports",
            "retryjoin",
            "bindaddr",
            "clientaddr",
            "nodename",
            "encrypt",
        ];
        if top.keys().any(|k| agent_keys.contains(&norm(k).as_str())) && !top.keys().any(|k| norm(k) == "name") {
            return Err(Box::new(finding(
                codes::CFG_PARSE,
                format!("{shown}: {NO_SERVICE}"),
                "this is agent configuration, not a service definition",
            )));
        }
        raw.push((top.clone(), if hcl { Form::Config } else { Form::Api }));
    }
    for (key, v) in wrapped {
        let items: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            match item {
                Value::Object(m) => {
                    // Every key in the API's CamelCase: an API body someone wrapped.
                    let api_style = !hcl
                        && !m.is_empty()
                        && m.keys().all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()) && !k.contains('_'));
                    wrapper_of.push((raw.len(), api_style.then(|| key.clone())).1);
                    raw.push((m.clone(), Form::Config))
                }
                other => {
                    return Err(Box::new(finding(
                        codes::CFG_PARSE,
                        format!("{shown}: a service entry is {}, not an object", json_type(other)),
                        "write each service as an object with at least a name (service { name = \"web\" } in HCL)",
                    )))
                }
            }
        }
    }
    if raw.is_empty() {
        return Err(Box::new(finding(
            codes::CFG_PARSE,
            format!("{shown}: no service in the file"),
            "add a service block",
        )));
    }
    Ok(raw
        .into_iter()
        .enumerate()
        .map(|(i, (m, form))| {
            let mut def = read_service(&m, form, Origin::File { path: shown.to_string(), index: i + 1 });
            def.hcl = hcl;
            def.api_body_wrapped_in = wrapper_of.get(i).cloned().flatten();
            // Findings made while reading were worded before the syntax was known.
            def
        })
        .collect())
}

fn hcl_error(shown: &str, e: &crate::hcl::HclError) -> CheckResult {
    finding(
        codes::CFG_PARSE,
        format!("{shown}: invalid HCL at line {}, column {}: {}", e.line, e.column, e.message),
        "fix the syntax at that position; Consul reads HCL version 1, so confirm with: consul validate FILE (or consul services register -dry-run is not available: use a test agent)",
    )
}

fn finding(code: &'static Code, message: String, fix: impl Into<String>) -> CheckResult {
    CheckResult::finding(code, "config.service", message, fix)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

struct Reader {
    label: String,
    form: Form,
    problems: Vec<CheckResult>,
    versioned: Vec<VersionedField>,
}

impl Reader {
    fn unknown(&mut self, path: &str, key: &str, why: &str) {
        self.problems.push(finding(
            codes::CFG_UNKNOWN_FIELD,
            format!("{}: unknown field {path}{key} ({why}); Consul answers 400: Request decode failed: json: unknown field \"{key}\"", self.label),
            "remove the field or correct its name (see the service and check definition reference of your Consul version)",
        ));
    }

    fn wrong_type(&mut self, path: &str, field: &str, v: &Value, go: &str) {
        self.problems.push(finding(
            codes::CFG_WRONG_TYPE,
            format!(
                "{}: {path}{field} is {}; Consul answers 400 \"Request decode failed: json: cannot unmarshal {} into Go struct field .{field} of type {go}\"",
                self.label,
                json_type(v),
                go_type(v)
            ),
            format!("give {field} as {}", match go {
                "int" => "a whole number without quotes",
                "string" => "a quoted string",
                "bool" => "true or false",
                "[]string" => "a list of strings",
                "map[string]string" => "an object of string values",
                "map[string][]string" => "an object whose values are lists of strings, e.g. {\"Authorization\": [\"Bearer x\"]}",
                _ => "the documented type",
            }),
        ));
    }

    fn duration(&mut self, path: &str, field: &str, v: &Value) -> Option<Dur> {
        match v {
            Value::String(s) => {
                let parsed = parse_go_duration(s);
                if let Err(e) = &parsed {
                    self.problems.push(finding(
                        codes::CFG_DURATION,
                        format!("{}: {path}{field} = {s:?} is not a Go duration: {e}", self.label),
                        format!(
                            "write it with a unit, for example \"{}s\" or \"1m30s\" (units: ns, us, ms, s, m, h)",
                            s.trim().trim_end_matches(|c: char| !c.is_ascii_digit())
                        ),
                    ));
                }
                Some(Dur::Text(s.clone(), parsed))
            }
            Value::Number(n) if self.form == Form::Api => Some(Dur::Number(n.as_f64().unwrap_or(0.0))),
            Value::Number(n) => {
                let s = n.to_string();
                let e = parse_go_duration(&s).err().unwrap_or_default();
                self.problems.push(finding(
                    codes::CFG_DURATION,
                    format!("{}: {path}{field} = {s} is not a Go duration: {e}", self.label),
                    format!("quote it with a unit, for example \"{s}s\""),
                ));
                Some(Dur::Text(s, Err(e)))
            }
            other => {
                self.wrong_type(path, field, other, "time.Duration");
                None
            }
        }
    }

    /// Walks an object against a field table, returning the recognised (canonical, value) pairs.
    fn fields<'v>(
        &mut self,
        path: &str,
        m: &'v Map<String, Value>,
        table: &'static [Field],
        in_check: bool,
    ) -> Vec<(&'static Field, &'v Value)> {
        let mut out = Vec::new();
        for (k, v) in m {
            match lookup(table, k, self.form, in_check) {
                Ok(field) => {
                    // A snake_case alias some versions do not translate is judged per version.
                    let alias = (self.form == Form::Api && k.contains('_'))
                        .then(|| {
                            let object = if in_check {
                                crate::consul_facts::Object::Check
                            } else {
                                crate::consul_facts::Object::Service
                            };
                            crate::consul_facts::field(object, k)
                        })
                        .flatten()
                        .filter(|fact| fact.accepted != crate::consul_facts::Accepted::Always);
                    if let Some(fact) = alias {
                        self.versioned.push(VersionedField {
                            path: format!("{path}{k}"),
                            field: fact.key,
                            since: None,
                        });
                    }
                    if field.enterprise || field.since.is_some() {
                        self.versioned.push(VersionedField {
                            path: format!("{path}{}", field.name),
                            field: field.name,
                            since: field.since,
                        });
                    }
                    if !v.is_null() && !type_ok(field.ty, v, self.form) {
                        let go = match field.ty {
                            Ty::Str => "string",
                            Ty::Int => "int",
                            Ty::Bool => "bool",
                            Ty::StrList => "[]string",
                            Ty::StrMap => "map[string]string",
                            Ty::Header => "map[string][]string",
                            Ty::Check => "structs.CheckType",
                            Ty::CheckList => "structs.CheckTypes",
                            Ty::Weights => "structs.Weights",
                            Ty::TaggedAddresses => "structs.ServiceAddress",
                            _ => "object",
                        };
                        self.wrong_type(path, field.name, v, go);
                        continue;
                    }
                    out.push((field, v));
                }
                Err(why) => self.unknown(path, k, &why),
            }
        }
        out
    }
}

fn type_ok(ty: Ty, v: &Value, form: Form) -> bool {
    let objects = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_object));
    match ty {
        // Configuration files decode HCL's single block and list forms interchangeably.
        Ty::Check | Ty::CheckList if form == Form::Config => v.is_object() || objects(v),
        Ty::Str => v.is_string(),
        Ty::Int => v.as_i64().is_some() || v.as_u64().is_some(),
        Ty::Bool => v.is_boolean(),
        Ty::StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Ty::StrMap => v.as_object().is_some_and(|m| m.values().all(Value::is_string)),
        Ty::Header => v
            .as_object()
            .is_some_and(|m| m.values().all(|x| x.as_array().is_some_and(|a| a.iter().all(Value::is_string)))),
        Ty::Duration => v.is_string() || v.is_number(),
        Ty::Object | Ty::Check | Ty::Weights => v.is_object(),
        Ty::CheckList => v.as_array().is_some_and(|a| a.iter().all(Value::is_object)),
        Ty::TaggedAddresses => v.as_object().is_some_and(|m| m.values().all(Value::is_object)),
        Ty::Any => true,
    }
}

fn service_label(name: Option<&str>, origin: &Origin) -> String {
    let name = crate::clip::clip(name.unwrap_or("(no name)"));
    match origin {
        Origin::File { path, index } => {
            let file =
                Path::new(path).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| path.clone());
            format!("service \"{name}\" ({file} #{index})")
        }
        Origin::Flags => format!("service \"{name}\" (flags)"),
    }
}

fn get_str(m: &Map<String, Value>, names: &[&str]) -> Option<String> {
    m.iter().find(|(k, _)| names.iter().any(|n| norm(k) == norm(n))).and_then(|(_, v)| v.as_str().map(str::to_string))
}

pub fn read_service(m: &Map<String, Value>, form: Form, origin: Origin) -> ServiceDef {
    let name = get_str(m, &["Name"]);
    let label = service_label(name.as_deref(), &origin);
    let mut r = Reader { label: label.clone(), form, problems: Vec::new(), versioned: Vec::new() };
    let mut def = ServiceDef {
        label,
        origin,
        form,
        name: None,
        id: None,
        address: None,
        port: None,
        tags: Vec::new(),
        meta: Vec::new(),
        kind: None,
        token: None,
        namespace: None,
        partition: None,
        weights_passing: None,
        sidecar: false,
        connect: None,
        checks: Vec::new(),
        versioned: Vec::new(),
        problems: Vec::new(),
        hcl: false,
        api_body_wrapped_in: None,
    };
    let mut raw_checks: Vec<&Map<String, Value>> = Vec::new();
    for (field, v) in r.fields("", m, SERVICE_FIELDS, false) {
        match field.name {
            "Name" => def.name = v.as_str().map(str::to_string),
            "ID" => def.id = v.as_str().map(str::to_string),
            "Address" => def.address = v.as_str().map(str::to_string),
            "Port" => def.port = v.as_i64(),
            "Kind" => def.kind = v.as_str().map(str::to_string),
            "Namespace" => def.namespace = v.as_str().filter(|s| !s.is_empty()).map(str::to_string),
            "Partition" => def.partition = v.as_str().filter(|s| !s.is_empty()).map(str::to_string),
            "Token" => def.token = v.as_str().filter(|s| !s.is_empty()).map(Secret::new),
            "Tags" => {
                def.tags = v
                    .as_array()
                    .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
                    .unwrap_or_default()
            }
            "Meta" => {
                def.meta = v
                    .as_object()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
                    .unwrap_or_default()
            }
            "Weights" => {
                def.weights_passing = Some(
                    v.as_object()
                        .and_then(|o| o.iter().find(|(k, _)| norm(k) == "passing"))
                        .and_then(|(_, p)| p.as_i64())
                        .unwrap_or(0),
                )
            }
            "Check" | "Checks" => match v {
                Value::Object(o) => raw_checks.push(o),
                Value::Array(a) => raw_checks.extend(a.iter().filter_map(Value::as_object)),
                _ => {}
            },
            "Connect" => {
                def.sidecar = v.as_object().is_some_and(|o| o.keys().any(|k| norm(k) == "sidecarservice"));
                def.connect = Some(v.clone());
            }
            _ => {}
        }
    }
    for (i, c) in raw_checks.into_iter().enumerate() {
        let check = read_check(&mut r, c, i + 1);
        def.checks.push(check);
    }
    def.problems = r.problems;
    def.versioned = r.versioned;
    def
}

fn read_check(r: &mut Reader, m: &Map<String, Value>, n: usize) -> CheckDef {
    let path = format!("check #{n} ");
    let mut c = CheckDef {
        label: format!("check #{n}"),
        id: None,
        kind: CheckKind::None,
        interval: None,
        timeout: None,
        ttl: None,
        deregister: None,
        status: None,
        types: Vec::new(),
    };
    let mut http = None;
    let mut method = "GET".to_string();
    let mut headers = Vec::new();
    let mut skip_verify = false;
    let mut kinds: Vec<CheckKind> = Vec::new();
    let mut name = None;
    for (field, v) in r.fields(&path, m, CHECK_FIELDS, true) {
        match field.name {
            "CheckID" => c.id = v.as_str().map(str::to_string),
            "Name" => name = v.as_str().map(str::to_string),
            "Status" => c.status = v.as_str().map(str::to_string),
            "HTTP" => http = v.as_str().map(str::to_string),
            "Method" => method = v.as_str().unwrap_or("GET").to_string(),
            "Header" => {
                if let Some(o) = v.as_object() {
                    for (k, vals) in o {
                        for val in vals.as_array().into_iter().flatten() {
                            headers.push((k.clone(), val.as_str().unwrap_or("").to_string()));
                        }
                    }
                }
            }
            "TLSSkipVerify" => skip_verify = v.as_bool().unwrap_or(false),
            "TCP" => kinds.push(CheckKind::Tcp { address: v.as_str().unwrap_or("").to_string() }),
            "GRPC" => kinds.push(CheckKind::Grpc { target: v.as_str().unwrap_or("").to_string() }),
            "ScriptArgs" if v.as_array().is_some_and(|a| !a.is_empty()) => kinds.push(CheckKind::Script),
            "AliasService" | "AliasNode" => kinds.push(CheckKind::Alias),
            "H2PING" => kinds.push(CheckKind::Other("H2PING")),
            "UDP" => kinds.push(CheckKind::Other("UDP")),
            "OSService" => kinds.push(CheckKind::Other("OSService")),
            "Interval" => c.interval = r.duration(&path, field.name, v),
            "Timeout" => c.timeout = r.duration(&path, field.name, v),
            "TTL" => c.ttl = r.duration(&path, field.name, v),
            "DeregisterCriticalServiceAfter" => c.deregister = r.duration(&path, field.name, v),
            _ => {}
        }
    }
    kinds.retain(
        |k| !matches!(k, CheckKind::Tcp { address } | CheckKind::Grpc { target: address } if address.is_empty()),
    );
    kinds.dedup_by(|a, b| *a == CheckKind::Alias && *b == CheckKind::Alias);
    c.types = http.iter().filter(|u| !u.is_empty()).map(|_| "http").collect();
    c.types.extend(kinds.iter().map(|k| match k {
        CheckKind::Tcp { .. } => "tcp",
        CheckKind::Grpc { .. } => "grpc",
        CheckKind::Script => "args",
        CheckKind::Alias => "alias_service",
        CheckKind::Other(name) => name,
        _ => "",
    }));
    if let Some(url) = http {
        kinds.insert(
            0,
            CheckKind::Http { url, method: method.to_ascii_uppercase(), headers, tls_skip_verify: skip_verify },
        );
    }
    if c.ttl.as_ref().and_then(Dur::nanos).is_some_and(|n| n > 0) && kinds.is_empty() {
        kinds.push(CheckKind::Ttl);
    }
    c.kind = kinds.into_iter().next().unwrap_or(CheckKind::None);
    if let Some(n) = name.or_else(|| c.id.clone()) {
        c.label = format!("check \"{n}\"");
    }
    c
}

/// Builds a service from the `--service*` / `--check-*` flags.
pub struct FlagService<'a> {
    pub name: Option<&'a str>,
    pub id: Option<&'a str>,
    pub address: Option<&'a str>,
    pub port: Option<i64>,
    pub check_http: Option<&'a str>,
    pub check_tcp: Option<&'a str>,
    pub check_interval: Option<&'a str>,
    pub check_timeout: Option<&'a str>,
}

pub fn from_flags(f: &FlagService<'_>) -> ServiceDef {
    let mut m = Map::new();
    if let Some(v) = f.name {
        m.insert("Name".into(), Value::String(v.into()));
    }
    if let Some(v) = f.id {
        m.insert("ID".into(), Value::String(v.into()));
    }
    if let Some(v) = f.address {
        m.insert("Address".into(), Value::String(v.into()));
    }
    if let Some(v) = f.port {
        m.insert("Port".into(), Value::Number(v.into()));
    }
    if f.check_http.is_some() || f.check_tcp.is_some() {
        let mut c = Map::new();
        if let Some(v) = f.check_http {
            c.insert("HTTP".into(), Value::String(v.into()));
        }
        if let Some(v) = f.check_tcp {
            c.insert("TCP".into(), Value::String(v.into()));
        }
        c.insert("Interval".into(), Value::String(f.check_interval.unwrap_or("10s").into()));
        if let Some(v) = f.check_timeout {
            c.insert("Timeout".into(), Value::String(v.into()));
        }
        m.insert("Check".into(), Value::Object(c));
    }
    read_service(&m, Form::Api, Origin::Flags)
}

// ---------------------------------------------------------------------------------------------
// Judging

const MILLISECOND: i64 = 1_000_000;
const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;

/// Every finding for one service, by Consul's rules and its silent pitfalls.
pub fn judge(def: &ServiceDef) -> Vec<CheckResult> {
    let mut out = def.problems.clone();
    let l = &def.label;
    let push = |out: &mut Vec<CheckResult>, code: &'static Code, msg: String, fix: String| {
        out.push(CheckResult::finding(code, "config.service", msg, fix))
    };

    let name = def.name.as_deref().unwrap_or("");
    if name.is_empty() {
        push(
            &mut out,
            codes::CFG_NO_NAME,
            format!("{l} has no name; Consul answers 400 \"Missing service name\""),
            "add \"Name\" (\"name\" in configuration files), the name clients look the service up by".into(),
        );
    } else if !dns_answers_name(name) {
        // Consul's agent warns about '_' too, yet its DNS answers web_api.service.consul
        // (verified on 1.8.7); a dot, a space or an over-long name really cannot be asked for.
        push(
            &mut out,
            codes::CFG_DNS_NAME,
            format!("{l}: the name {name:?} cannot be asked for as NAME.service.consul (a dot splits it into a tag query; spaces and other characters are answered NXDOMAIN; a DNS label holds at most 63 bytes); Consul registers it, but it \"will not be discoverable via DNS\""),
            format!("rename the service to {:?} (letters, digits, dashes)", dns_safe(name)),
        );
    }
    if matches!(def.origin, Origin::File { .. }) && def.form == Form::Config {
        for c in def.checks.iter().filter(|c| c.kind == CheckKind::Script) {
            push(
                &mut out,
                codes::CFG_CLI_DROPS_ARGS,
                format!("{l} {} uses args: consul services register (Consul 1.8) drops args and the registration fails with 400 \"Invalid check: TTL must be > 0 for TTL checks\"", c.label),
                "register the API form of this definition with PUT /v1/agent/service/register, or place the file in the agent's configuration directory".into(),
            );
        }
    }
    if let Some(key) = &def.api_body_wrapped_in {
        push(
            &mut out,
            codes::CFG_WRAPPED_API_BODY,
            format!("{l}: an HTTP API body (CamelCase keys) inside the configuration-file wrapper {key:?}: the agent's configuration directory and consul services register read it, but sent as the body of PUT /v1/agent/service/register Consul answers 400: Request decode failed: json: unknown field \"{key}\""),
            format!("send the object inside {key:?} as the API body (jq .{key} FILE | curl -X PUT --data @- .../v1/agent/service/register), or keep the file for the configuration directory / consul services register"),
        );
    }
    if def.id.as_deref().is_none_or(str::is_empty) && !name.is_empty() {
        push(
            &mut out,
            codes::CFG_NO_ID,
            format!("{l} has no ID, so Consul uses the name {name:?}: a second instance on the same agent silently replaces the first"),
            {
                let suggested = match def.port {
                    Some(p) => format!("\"{name}-{p}\""),
                    None => format!("\"{name}-1\""),
                };
                format!("if more than one instance may run on one agent, give each its own ID: {} (unique per agent; add the node name when instances share a port)", def.assign("id", "ID", &suggested))
            },
        );
    }
    if let Some(addr) = def.address.as_deref() {
        let bare = addr.trim_matches(|c| c == '[' || c == ']');
        if bare == "0.0.0.0" || bare == "::" || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
            push(
                &mut out,
                codes::CFG_WILDCARD_ADDRESS,
                format!("{l}: address {addr:?} is a wildcard; Consul answers 400 \"Invalid service address\""),
                "leave the address empty to advertise the node's address, or give the IP clients should connect to"
                    .into(),
            );
        }
    }
    if let Some(addr) = def.address.as_deref() {
        if let Some(host) = url_shaped_address(addr) {
            push(
                &mut out,
                codes::CFG_ADDRESS_URL,
                format!("{l}: address {addr:?} is a URL, not a host: Consul registers it as written (200), so its DNS answers a CNAME (and an SRV target) \"{addr}.\", a name that does not exist, instead of an address, and HTTP clients build \"{addr}:{}\"", def.port.unwrap_or(0)),
                format!("give the host alone and the port separately: {}{}", def.assign("address", "Address", &format!("{host:?}")), def.port.map(|p| format!(", {}", def.assign("port", "Port", &p.to_string()))).unwrap_or_default()),
            );
        }
    }
    if let Some(p) = def.port {
        if !(0..=65535).contains(&p) {
            push(
                &mut out,
                codes::CFG_PORT_RANGE,
                format!("{l}: port {p} is outside 0-65535; Consul 1.8 registers it without complaint, and no client can ever connect"),
                "set the port the service really listens on (1-65535)".into(),
            );
        }
    }
    judge_meta(def, &mut out);
    if let Some(p) = def.weights_passing {
        if p <= 0 {
            push(&mut out, codes::CFG_WEIGHTS, format!("{l}: Weights.Passing is {p}; Consul answers 400 \"Invalid Weights: Passing must be greater than 0\""), "set Weights { Passing = 1, Warning = 1 } or remove Weights".into());
        }
    }
    for c in &def.checks {
        judge_check(def, c, &mut out);
    }
    let checks_with_dereg: Vec<&CheckDef> = def.checks.iter().filter(|c| c.deregister.is_some()).collect();
    if !def.checks.is_empty() && checks_with_dereg.is_empty() {
        push(
            &mut out,
            codes::CFG_NO_DEREGISTER,
            format!("{l}: no check sets deregister_critical_service_after, so a dead instance stays in the catalog (critical) until someone deregisters it"),
            format!("add {} to a check (at least 1m; Consul's reaper runs every 30s)", def.assign("deregister_critical_service_after", "DeregisterCriticalServiceAfter", "\"10m\"")),
        );
    }
    for c in checks_with_dereg {
        if let Some(n) = c.deregister.as_ref().and_then(Dur::nanos) {
            if n < MINUTE {
                push(
                    &mut out,
                    codes::CFG_DEREGISTER_BELOW_MINIMUM,
                    format!("{l} {}: deregister_critical_service_after {} is below Consul's 1m minimum: the agent logs \"check has deregister interval below minimum\" and reaps the instance after 1m0s or more (its reaper runs every 30s), not after the time asked for", c.label, c.deregister.as_ref().map(Dur::shown).unwrap_or_default()),
                    format!("ask for what Consul does: {} (or more)", def.assign("deregister_critical_service_after", "DeregisterCriticalServiceAfter", "\"1m\"")),
                );
            }
        }
    }
    out
}

/// The host of an address written as a URL (`http://10.0.0.5`, `10.0.0.5/api`,
/// `https://web:8443/`), or `None` for a host or IP.
fn url_shaped_address(addr: &str) -> Option<String> {
    let rest = match addr.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            rest
        }
        _ if addr.contains('/') => addr,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match split_host_port(authority) {
        Some((h, _)) => h,
        None => authority.trim_matches(|c| c == '[' || c == ']').to_string(),
    };
    Some(host)
}

/// Whether Consul's DNS answers `NAME.service.consul` for a service of this name: letters,
/// digits, `-` and `_` (1.8.7 answers `web_api.service.consul` although its agent warns), at most
/// 63 bytes. A dot splits the name into a tag query; a space and other characters are answered
/// NXDOMAIN (verified on 1.8.7).
pub fn dns_answers_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether Consul's DNS answers `TAG.NAME.service.consul` for this tag: every dot-separated label
/// 1–63 bytes of letters, digits, `-`, `_` or `=`. Verified on 1.8.7: `v1.2`, `env=prod` and
/// `blue_green` are answered; other characters are not known to be, so they are not vouched for.
pub fn dns_answers_tag(tag: &str) -> bool {
    tag.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
    })
}

fn dns_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    s.trim_matches('-').to_string()
}

fn judge_meta(def: &ServiceDef, out: &mut Vec<CheckResult>) {
    let l = &def.label;
    let mut bad = |msg: String| {
        out.push(CheckResult::finding(
            codes::CFG_META,
            "config.service",
            format!("{l}: {msg}"),
            "keep meta keys to letters, digits, '_' and '-' (at most 128 characters, not starting with consul-), values at most 512 characters, at most 64 pairs",
        ))
    };
    if def.meta.len() > 64 {
        bad(format!("{} meta pairs; Consul answers 400 \"Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs\"", def.meta.len()));
    }
    for (k, v) in &def.meta {
        let problem = if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            Some("Key contains invalid characters".to_string())
        } else if k.starts_with("consul-") {
            Some("Key prefix 'consul-' is reserved for internal use".to_string())
        } else if k.len() > 128 {
            Some("Key is too long (limit: 128 characters)".to_string())
        } else if v.len() > 512 {
            Some("Value is too long (limit: 512 characters)".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            bad(format!(
                "Consul answers 400 \"Invalid Service Meta: Couldn't load metadata pair ('{k}', '{v}'): {p}\""
            ));
        }
    }
}

fn judge_check(def: &ServiceDef, c: &CheckDef, out: &mut Vec<CheckResult>) {
    let l = format!("{} {}", def.label, c.label);
    let mut push =
        |code: &'static Code, msg: String, fix: &str| out.push(CheckResult::finding(code, "config.service", msg, fix));
    let interval = c.interval.as_ref().and_then(Dur::nanos).unwrap_or(0);
    let ttl = c.ttl.as_ref().and_then(Dur::nanos).unwrap_or(0);
    let interval_check = matches!(
        c.kind,
        CheckKind::Http { .. }
            | CheckKind::Tcp { .. }
            | CheckKind::Grpc { .. }
            | CheckKind::Script
            | CheckKind::Other(_)
    );
    // Durations that failed to parse were reported already; judge combinations on the rest.
    let dur_ok = |d: &Option<Dur>| !matches!(d, Some(Dur::Text(_, Err(_))));
    if dur_ok(&c.interval) && dur_ok(&c.ttl) {
        if interval > 0 && ttl > 0 {
            push(codes::CFG_CHECK_INVALID, format!("{l} sets both interval and ttl; Consul answers 400 \"Invalid check: Interval and TTL cannot both be specified\""), "keep interval for HTTP/TCP/gRPC/script checks, ttl for TTL checks");
        } else if interval_check && interval <= 0 {
            push(codes::CFG_CHECK_INVALID, format!("{l} has no positive interval; Consul answers 400 \"Invalid check: Interval must be > 0 for Script, HTTP, or TCP checks\""), &format!("add {} to the check", def.assign("interval", "Interval", "\"10s\"")));
        } else if !interval_check && c.kind != CheckKind::Alias && ttl <= 0 {
            push(
                codes::CFG_CHECK_INVALID,
                format!("{l} has no check type (http, tcp, grpc, args, ttl or alias_service) or a non-positive ttl; Consul answers 400 \"Invalid check: TTL must be > 0 for TTL checks\""),
                "give the check an http = \"http://...\" (with interval), a tcp = \"host:port\", or a ttl = \"30s\"",
            );
        }
    }
    if let Some(s) = &c.status {
        if !s.is_empty() && !matches!(s.as_str(), "passing" | "warning" | "critical") {
            push(
                codes::CFG_CHECK_INVALID,
                format!(
                    "{l}: status {s:?}; Consul answers 400 \"Status for checks must 'passing', 'warning', 'critical'\""
                ),
                "use passing, warning or critical (or leave status out: new checks start critical)",
            );
        }
    }
    if interval > 0 && interval < SECOND {
        push(
            codes::CFG_SHORT_INTERVAL,
            format!("{l}: interval {} is below Consul's 1s minimum; the agent raises it to 1s (\"check has interval below minimum\")", c.interval.as_ref().map(Dur::shown).unwrap_or_default()),
            "write the interval as a string with a unit, e.g. \"10s\" (a JSON number means nanoseconds)",
        );
    }
    // A timeout or TTL of a few nanoseconds (a JSON number in the HTTP API) can never be met.
    for (what, d) in [("timeout", &c.timeout), ("ttl", &c.ttl)] {
        if let Some(n) = d.as_ref().and_then(Dur::nanos).filter(|n| *n > 0 && *n < MILLISECOND) {
            push(
                codes::CFG_IMPOSSIBLY_SHORT,
                format!(
                    "{l}: {what} {} is {}: Consul registers it, and the check is critical from then on",
                    d.as_ref().map(Dur::shown).unwrap_or_default(),
                    format_go(n)
                ),
                "write durations as strings with a unit, e.g. \"2s\" (a JSON number means nanoseconds)",
            );
        }
    }
    if let Some(t) = c.timeout.as_ref().and_then(Dur::nanos) {
        if interval > 0 && t > interval {
            push(
                codes::CFG_TIMEOUT_OVER_INTERVAL,
                format!(
                    "{l}: timeout {} is longer than interval {}: a hanging endpoint holds each run for the whole timeout, so the status lags behind",
                    format_go(t),
                    format_go(interval)
                ),
                &format!(
                    "make the timeout shorter than the interval, e.g. {}, {}",
                    def.assign("interval", "Interval", "\"10s\""),
                    def.assign("timeout", "Timeout", "\"2s\"")
                ),
            );
        }
    }
    if c.types.len() > 1 {
        let (kept, dropped) = c.types.split_first().expect("more than one");
        push(
            codes::CFG_SEVERAL_CHECK_TYPES,
            format!(
                "{l} sets {}: one check has one type, and Consul registers it as a {kept} check and silently ignores {}",
                c.types.join(" and "),
                dropped.join(", ")
            ),
            "split it into one check per type (checks = [{ http = ... }, { tcp = ... }]), each with its own interval",
        );
    }
    match &c.kind {
        CheckKind::Http { url, .. } => {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                push(
                    codes::CFG_CHECK_TARGET,
                    format!("{l}: URL {url:?} has no http:// or https:// scheme; Consul accepts the registration but the check stays critical forever"),
                    "write the URL in full, e.g. http://127.0.0.1:8080/health",
                );
            } else if let Some(why) = go_url_error(url) {
                push(
                    codes::CFG_CHECK_TARGET,
                    format!("{l}: Consul accepts the registration, but Go cannot parse the URL, so the check is critical forever with output: parse {}: {why}", crate::duration::go_quote(url)),
                    "write a literal URL: template placeholders such as ${…} or {{ … }} must be filled in before registration, and the port must be a number",
                );
            }
        }
        CheckKind::Tcp { address } if split_host_port(address).is_none() => {
                push(codes::CFG_CHECK_TARGET, format!("{l}: tcp = {address:?} is not host:port; the check can never connect"), "write it as host:port, e.g. 127.0.0.1:5432");
        }
        CheckKind::Script => push(
            codes::CFG_SCRIPT_CHECK,
            format!("{l} is a script check: agents refuse it over the HTTP API with 500 \"Scripts are disabled on this agent from remote calls\" unless enable_script_checks = true"),
            "prefer an HTTP, TCP or TTL check; script checks need enable_script_checks (any registration) or enable_local_script_checks (configuration files only) on the agent",
        ),
        _ => {}
    }
}

/// Why Go's `url.Parse` rejects an http(s) URL (the text after `parse "URL": `), for the
/// errors a check URL meets in practice: control characters, a bad port, characters not
/// allowed in a host name, bad percent escapes.
pub fn go_url_error(url: &str) -> Option<String> {
    if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Some("net/url: invalid control character in URL".into());
    }
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let name = if let Some(v6) = host.strip_prefix('[') {
        let Some(end) = v6.find(']') else {
            return Some("missing ']' in host".into());
        };
        let port = &v6[end + 1..];
        if !port.is_empty() && !valid_optional_port(port) {
            return Some(format!("invalid port {} after host", crate::duration::go_quote(port)));
        }
        return None;
    } else if let Some(i) = host.rfind(':') {
        let port = &host[i..];
        if !valid_optional_port(port) {
            return Some(format!("invalid port {} after host", crate::duration::go_quote(port)));
        }
        &host[..i]
    } else {
        host
    };
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let ok = bytes.len() > i + 2 && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                let end = (i + 3).min(bytes.len());
                return Some(format!("invalid URL escape {}", crate::duration::go_quote(&name[i..end])));
            }
            i += 3;
            continue;
        }
        let allowed = b >= 0x80 || b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]<>\"".contains(&b);
        if !allowed {
            return Some(format!(
                "invalid character {} in host name",
                crate::duration::go_quote(&(b as char).to_string())
            ));
        }
        i += 1;
    }
    None
}

/// Go's `validOptionalPort`: empty, or `:` followed by digits only.
fn valid_optional_port(port: &str) -> bool {
    port.is_empty() || port.strip_prefix(':').is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
}

/// `host:port` or `[v6]:port` with a numeric port.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h.to_string(), p)
    } else {
        let (h, p) = s.rsplit_once(':')?;
        if h.contains(':') {
            return None;
        }
        (h.to_string(), p)
    };
    let port: u16 = port.parse().ok()?;
    if host.is_empty() {
        return None;
    }
    Some((host, port))
}

/// Services in one input that share an effective ID overwrite each other.
pub fn judge_duplicate_ids(defs: &[ServiceDef]) -> Vec<CheckResult> {
    let mut seen: BTreeMap<&str, &ServiceDef> = BTreeMap::new();
    let mut out = Vec::new();
    for d in defs {
        let Some(id) = d.effective_id() else { continue };
        if let Some(first) = seen.get(id) {
            out.push(CheckResult::finding(
                codes::CFG_DUPLICATE_ID,
                "config.service",
                format!(
                    "{} and {} both register the ID {id:?}: on one agent the later silently replaces the earlier",
                    first.label, d.label
                ),
                "give every service a distinct ID",
            ));
        } else {
            seen.insert(id, d);
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn go_url_errors_match_url_parse() {
        assert_eq!(go_url_error("http://127.0.0.1:8080/health"), None);
        assert_eq!(go_url_error("https://user:pw@[::1]:8501/v1?x=%zz"), None);
        assert_eq!(go_url_error("http://web.service.consul/h"), None);
        assert_eq!(go_url_error("http://${HOST}:8080/h").as_deref(), Some(r#"invalid character "{" in host name"#));
        assert_eq!(go_url_error("http://localhost:abc/h").as_deref(), Some(r#"invalid port ":abc" after host"#));
        assert_eq!(go_url_error("http://[::1]:x/h").as_deref(), Some(r#"invalid port ":x" after host"#));
        assert_eq!(go_url_error("http://a b/h").as_deref(), Some(r#"invalid character " " in host name"#));
        assert_eq!(go_url_error("http://h%zz/").as_deref(), Some(r#"invalid URL escape "%zz""#));
        assert_eq!(go_url_error("http://h/\n").as_deref(), Some("net/url: invalid control character in URL"));
        assert_eq!(go_url_error("http://h/\x7f").as_deref(), Some("net/url: invalid control character in URL"));
    }

    use super::*;

    #[test]
    fn backported_fields_follow_each_release_line() {
        let since = &[(1, 9, 17), (1, 10, 10), (1, 11, 5), (1, 12, 0)];
        assert!(!version_accepts((1, 8, 7), since));
        assert!(!version_accepts((1, 9, 16), since));
        assert!(version_accepts((1, 9, 17), since));
        assert!(!version_accepts((1, 10, 9), since));
        assert!(version_accepts((1, 11, 5), since));
        assert!(version_accepts((1, 12, 0), since));
        assert!(version_accepts((1, 21, 2), since));
        assert!(!version_accepts((1, 9, 3), &[(1, 10, 0)]));
        assert!(version_accepts((1, 10, 0), &[(1, 10, 0)]));
    }

    fn codes_of(text: &str, name: &str) -> Vec<&'static str> {
        let defs = load_text(text, name).unwrap_or_else(|e| panic!("{}", e.message));
        let mut out: Vec<&'static str> = defs.iter().flat_map(judge).filter_map(|r| r.code).collect();
        out.extend(judge_duplicate_ids(&defs).iter().filter_map(|r| r.code));
        out
    }

    #[test]
    fn a_good_definition_has_no_findings() {
        let text = r#"{"service": {"name": "web", "id": "web-1", "port": 8080,
            "check": {"http": "http://127.0.0.1:8080/health", "interval": "10s", "timeout": "2s",
                      "deregister_critical_service_after": "10m"}}}"#;
        assert!(codes_of(text, "web.json").is_empty());
    }

    #[test]
    fn shapes_and_key_styles() {
        let bare = r#"{"Name": "web", "ID": "web-1", "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "5m"}}"#;
        let defs = load_text(bare, "b.json").unwrap();
        assert_eq!(defs[0].form, Form::Api);
        assert_eq!(defs[0].checks[0].kind, CheckKind::Ttl);
        let many = r#"{"services": [{"name": "a", "id": "a1"}, {"name": "b", "id": "b1"}]}"#;
        let defs = load_text(many, "m.json").unwrap();
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[1].label, "service \"b\" (m.json #2)");
        let hcl = "service {\n name = \"web\"\n id = \"web-1\"\n checks { tcp = \"127.0.0.1:80\"\n interval = \"5s\"\n deregister_critical_service_after = \"1m\" }\n}\n";
        let defs = load_text(hcl, "web.hcl").unwrap();
        assert_eq!(defs[0].checks[0].kind, CheckKind::Tcp { address: "127.0.0.1:80".into() });
        assert!(judge(&defs[0]).is_empty());
    }

    #[test]
    fn consul_rejections() {
        assert!(codes_of(r#"{"Port": 80}"#, "x.json").contains(&"CFG-015"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Check":{"HTTP":"http://x/","Interval":"10"}}"#, "x.json")
            .contains(&"CFG-016"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Check":{"HTTP":"http://x/"}}"#, "x.json").contains(&"CFG-017"));
        assert!(
            codes_of(r#"{"Name":"w","ID":"w","Check":{"TTL":"5s","Interval":"5s"}}"#, "x.json").contains(&"CFG-017")
        );
        assert!(codes_of(r#"{"Name":"w","ID":"w","Check":{"TTL":"5s","Status":"ok"}}"#, "x.json").contains(&"CFG-017"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Address":"0.0.0.0"}"#, "x.json").contains(&"CFG-020"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Port":"80"}"#, "x.json").contains(&"CFG-027"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Foo":1}"#, "x.json").contains(&"CFG-025"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Check":{"check_id":"c","TTL":"5s"}}"#, "x.json").contains(&"CFG-025"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Meta":{"consul-x":"1"}}"#, "x.json").contains(&"CFG-024"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Weights":{"Warning":1}}"#, "x.json").contains(&"CFG-029"));
    }

    #[test]
    fn strict_decoding_of_api_bodies() {
        // The /v1/agent/services shape sent back to register: 1.8.7 answers 400
        // `Request decode failed: json: unknown field "Service"`.
        for text in [r#"{"ID":"web-1","Service":"web","Port":80}"#, r#"{"Name":"web","Service":"web","ID":"w"}"#] {
            let defs = load_text(text, "x.json").unwrap_or_else(|e| panic!("{}", e.message));
            assert_eq!(defs[0].form, Form::Api);
            let r: Vec<_> = judge(&defs[0]).into_iter().filter(|r| r.code == Some("CFG-025")).collect();
            assert_eq!(r.len(), 1, "{text}");
            assert!(
                r[0].message.contains("Request decode failed: json: unknown field \"Service\""),
                "{}",
                r[0].message
            );
            assert!(r[0].message.contains("Name"), "{}", r[0].message);
        }
        // A wrapper is a configuration file; around an API body it earns a note.
        assert_eq!(load_text(r#"{"service":{"name":"web","id":"w"}}"#, "x.json").unwrap()[0].form, Form::Config);
        assert!(!codes_of(r#"{"service":{"name":"web","id":"w"}}"#, "x.json").contains(&"CFG-039"));
        let wrapped = codes_of(r#"{"service":{"Name":"web","ID":"w"}}"#, "x.json");
        assert_eq!(wrapped, vec!["CFG-039"]);
    }

    #[test]
    fn silent_pitfalls() {
        assert!(codes_of(r#"{"Name":"w","ID":"w","Port":70000}"#, "x.json").contains(&"CFG-019"));
        assert!(codes_of(r#"{"Name":"my.web","ID":"w"}"#, "x.json").contains(&"CFG-021"));
        assert!(codes_of(r#"{"Name":"my web","ID":"w"}"#, "x.json").contains(&"CFG-021"));
        // Consul's DNS answers my_web.service.consul (1.8.7), whatever the agent's log says.
        assert!(!codes_of(r#"{"Name":"my_web","ID":"w"}"#, "x.json").contains(&"CFG-021"));
        assert!(codes_of(r#"{"Name":"w"}"#, "x.json").contains(&"CFG-022"));
        let numeric = codes_of(
            r#"{"Name":"w","ID":"w","Check":{"HTTP":"http://x/","Interval":10,"DeregisterCriticalServiceAfter":"1m"}}"#,
            "x.json",
        );
        assert_eq!(numeric, vec!["CFG-026"]);
        assert!(codes_of(
            r#"{"Name":"w","ID":"w","Check":{"HTTP":"http://x/","Interval":"5s","Timeout":"10s"}}"#,
            "x.json"
        )
        .contains(&"CFG-018"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Check":{"HTTP":"127.0.0.1:80/health","Interval":"5s"}}"#, "x.json")
            .contains(&"CFG-030"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Check":{"Args":["/bin/true"],"Interval":"5s"}}"#, "x.json")
            .contains(&"CFG-028"));
        assert!(codes_of(
            r#"{"Name":"w","ID":"w","Check":{"TTL":"5s","DeregisterCriticalServiceAfter":"10s"}}"#,
            "x.json"
        )
        .contains(&"CFG-037"));
        // One code, one severity: advice and a value Consul overrides are two findings.
        let short =
            load_text(r#"{"Name":"w","ID":"w","Check":{"TTL":"5s","DeregisterCriticalServiceAfter":"30s"}}"#, "x.json")
                .unwrap();
        let r = judge(&short[0]);
        assert_eq!(
            r.iter().map(|r| (r.code, r.status)).collect::<Vec<_>>(),
            vec![(Some("CFG-037"), crate::report::Status::Warn)]
        );
        assert!(r[0].fix.as_deref().unwrap().contains("\"DeregisterCriticalServiceAfter\": \"1m\""));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Check":{"TTL":"5s"}}"#, "x.json").contains(&"CFG-023"));
        for url in ["http://10.0.0.5", "https://web.internal:8443/", "10.0.0.5/api"] {
            let text = format!(r#"{{"Name":"w","ID":"w","Address":"{url}","Port":8080}}"#);
            assert_eq!(codes_of(&text, "x.json"), vec!["CFG-038"], "{url}");
        }
        let defs = load_text(r#"{"Name":"w","ID":"w","Address":"http://10.0.0.5","Port":8080}"#, "x.json").unwrap();
        assert!(judge(&defs[0])[0].fix.as_deref().unwrap().contains("\"Address\": \"10.0.0.5\", \"Port\": 8080"));
        assert!(codes_of(r#"{"Name":"w","ID":"w","Address":"10.0.0.5"}"#, "x.json").is_empty());
        assert!(codes_of(r#"{"Name":"w","ID":"w","Address":"web.internal"}"#, "x.json").is_empty());
        assert!(codes_of(r#"{"services":[{"name":"a"},{"name":"a"}]}"#, "x.json").contains(&"CFG-032"));
    }

    #[test]
    fn parse_errors_have_positions() {
        let e = *load_text("{\"service\": {\"name\": \"web\",}}", "x.json").unwrap_err();
        assert_eq!(e.code, Some("CFG-014"));
        assert!(e.message.contains("line 1, column"), "{}", e.message);
        let e = *load_text("service {\n name = web\n}", "x.hcl").unwrap_err();
        assert!(e.message.contains("line 2, column"), "{}", e.message);
    }

    #[test]
    fn newer_fields_are_recorded_for_the_version_stage() {
        let defs = load_text(
            r#"{"Name":"w","ID":"w","Check":{"HTTP":"https://x/","Interval":"5s","TLSServerName":"x"}}"#,
            "x.json",
        )
        .unwrap();
        assert_eq!(defs[0].versioned[0].field, "TLSServerName");
        assert_eq!(defs[0].versioned[0].since, Some(&[(1, 10, 0)][..]));
        assert!(judge(&defs[0]).iter().all(|r| r.code != Some("CFG-025")));
    }
}
