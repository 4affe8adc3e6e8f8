//! Command-line definition (clap derive) with the Consul CLI's flag names and `CONSUL_*`
//! environment fallbacks. Parsing here only collects raw values and where each came from;
//! `inputs.rs` validates them.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::inputs::{ConsulInputs, FlagServiceArgs, RawInputs, ServiceInputs, Source, Sourced, DEFAULT_HTTP_ADDR};
use crate::secret::Secret;

#[derive(Parser)]
#[command(
    name = "consul-doctor",
    version,
    long_version = concat!(
        env!("CARGO_PKG_VERSION"),
        "\nsupported Consul agents: 1.8 and newer (HTTP API v1); tested against Consul 1.8.7",
        "\nJSON report schema_version: 1"
    ),
    about = "Diagnoses why a service cannot register with a HashiCorp Consul agent",
    long_about = "Diagnoses Consul service registration: check runs a staged pipeline of checks against \
                  an agent, stops the cascade at the root cause and maps every failure to a stable code \
                  with a concrete fix; wait is the deploy gate; scan checks the whole catalog. \
                  Read-only: nothing in the cluster changes, except the two writes a flag asks for \
                  (check --probe-register: one throwaway canary registration, removed again; \
                  scan --prune: deregisters what is safe to remove). Flags may be written as in the \
                  Consul CLI, with one dash (-http-addr=127.0.0.1:8500, -token-file PATH)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum Command {
    /// Run the diagnosis pipeline against a Consul agent
    Check(CheckArgs),
    /// Wait until a service is registered and passing (or gone), for deploy steps
    Wait(WaitArgs),
    /// Show the document of a finding code (accepts ACL-002, acl-002, ACL002)
    Explain {
        /// The code to explain
        #[arg(value_parser = CodeName, hide_possible_values = true)]
        code: String,
    },
    /// List every finding code
    Codes {
        /// Output format
        #[arg(long, value_enum, default_value_t = CodesFormat::Human)]
        format: CodesFormat,
        /// Only the codes of this stage (config, dns, tcp, tls, api, leader, acl, ...)
        #[arg(long, value_name = "STAGE")]
        stage: Option<String>,
    },
    /// Fleet hygiene across the catalog: stale, duplicate and unhealthy registrations (and a safe --prune)
    Scan(crate::scan::args::ScanArgs),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CodesFormat {
    Human,
    Json,
}

// The report side owns these; the command line only parses them.
pub use crate::render::Format;
pub use crate::report::FailOn;

impl ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &[Format::Human, Format::Json, Format::Junit]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            Format::Human => "human",
            Format::Json => "json",
            Format::Junit => "junit",
        }))
    }
}

impl ValueEnum for FailOn {
    fn value_variants<'a>() -> &'a [Self] {
        &[FailOn::Fail, FailOn::Warn]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            FailOn::Fail => PossibleValue::new("fail").help("Exit 1 only when a check fails"),
            FailOn::Warn => PossibleValue::new("warn").help("Exit 1 when a check fails or warns"),
        })
    }
}

/// Stages that nothing else needs, so they can be left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SkippableStage {
    Health,
    Duplicates,
    Sync,
    Version,
    Discovery,
    Mesh,
}

impl SkippableStage {
    pub fn name(self) -> &'static str {
        match self {
            SkippableStage::Health => "health",
            SkippableStage::Duplicates => "duplicates",
            SkippableStage::Sync => "sync",
            SkippableStage::Version => "version",
            SkippableStage::Discovery => "discovery",
            SkippableStage::Mesh => "mesh",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}

/// The Consul connection flags every command shares, with the Consul CLI's names and env
/// fallbacks. No `Debug`: the token must never be printable.
#[derive(Args)]
pub struct ConnectionArgs {
    /// Agent address: host:port, http://, https:// or unix:///path [default: 127.0.0.1:8500]
    #[arg(long, env = "CONSUL_HTTP_ADDR", value_name = "ADDR", help_heading = "Consul connection")]
    pub http_addr: Option<String>,
    /// ACL token (a non-empty token file takes precedence, as in Consul)
    #[arg(
        long,
        env = "CONSUL_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Consul connection"
    )]
    pub token: Option<String>,
    /// File holding the ACL token
    #[arg(long, env = "CONSUL_HTTP_TOKEN_FILE", value_name = "PATH", help_heading = "Consul connection")]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle used to verify the agent's certificate
    #[arg(long, env = "CONSUL_CACERT", value_name = "PATH", help_heading = "Consul connection")]
    pub ca_file: Option<PathBuf>,
    /// Directory of PEM CA certificates
    #[arg(long, env = "CONSUL_CAPATH", value_name = "DIR", help_heading = "Consul connection")]
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate (for verify_incoming)
    #[arg(long, env = "CONSUL_CLIENT_CERT", value_name = "PATH", help_heading = "Consul connection")]
    pub client_cert: Option<PathBuf>,
    /// PEM client key
    #[arg(long, env = "CONSUL_CLIENT_KEY", value_name = "PATH", help_heading = "Consul connection")]
    pub client_key: Option<PathBuf>,
    /// Server name for SNI and certificate verification
    #[arg(long, env = "CONSUL_TLS_SERVER_NAME", value_name = "NAME", help_heading = "Consul connection")]
    pub tls_server_name: Option<String>,
    /// Datacenter to query (default: the agent's own)
    #[arg(long, value_name = "DC", help_heading = "Consul connection")]
    pub datacenter: Option<String>,
    /// Consul Enterprise namespace of every request (?ns=; default: the token's or "default")
    #[arg(long, env = "CONSUL_NAMESPACE", value_name = "NS", help_heading = "Consul connection")]
    pub namespace: Option<String>,
    /// Consul Enterprise admin partition of every request (?partition=; default: the agent's)
    #[arg(long, env = "CONSUL_PARTITION", value_name = "PARTITION", help_heading = "Consul connection")]
    pub partition: Option<String>,
}

/// Flags of `check`. No `Debug`: the token must never be printable.
#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Service definition to check: JSON or HCL, {"service": ...}, {"services": [...]} or an API body (repeatable)
    #[arg(long, value_name = "PATH", help_heading = "Service to register")]
    pub service_file: Vec<PathBuf>,
    /// Name of a service to check (instead of, or besides, a file)
    #[arg(long, value_name = "NAME", help_heading = "Service to register")]
    pub service: Option<String>,
    /// ID of the --service
    #[arg(long, value_name = "ID", help_heading = "Service to register")]
    pub service_id: Option<String>,
    /// Address of the --service
    #[arg(long, value_name = "ADDR", help_heading = "Service to register")]
    pub service_address: Option<String>,
    /// Port of the --service
    #[arg(long, value_name = "PORT", allow_negative_numbers = true, help_heading = "Service to register")]
    pub service_port: Option<i64>,
    /// HTTP health check URL of the --service
    #[arg(long, value_name = "URL", help_heading = "Service to register")]
    pub check_http: Option<String>,
    /// TCP health check target (HOST:PORT) of the --service
    #[arg(long, value_name = "HOST:PORT", help_heading = "Service to register")]
    pub check_tcp: Option<String>,
    /// Interval of the --check-http/--check-tcp check [default: 10s]
    #[arg(long, value_name = "DURATION", help_heading = "Service to register")]
    pub check_interval: Option<String>,
    /// Timeout of the --check-http/--check-tcp check
    #[arg(long, value_name = "DURATION", help_heading = "Service to register")]
    pub check_timeout: Option<String>,
    /// go.mod of the application, to report its github.com/hashicorp/consul/api version
    #[arg(long, value_name = "PATH", help_heading = "Service to register")]
    pub go_mod: Option<PathBuf>,
    /// The --service is imported from this cluster peer: judge what consumers here see (?peer=)
    #[arg(long, value_name = "PEER", help_heading = "Service to register")]
    pub peer: Option<String>,

    /// Resolve the agent host through this DNS server (IP or IP:PORT) instead of the system's
    #[arg(long, value_name = "IP:PORT", help_heading = "Diagnosis")]
    pub dns_server: Option<String>,
    /// Timeout of each network step (Go duration syntax)
    #[arg(long, default_value = "5s", value_name = "DURATION", help_heading = "Diagnosis")]
    pub timeout: String,
    /// Re-run every second until no check fails or this much time has passed (CI right after
    /// agents start); progress goes to standard error
    #[arg(long, value_name = "DURATION", help_heading = "Diagnosis")]
    pub wait: Option<String>,
    /// Leave out a stage that needs a vantage point or permissions this host lacks (repeatable)
    #[arg(long, value_enum, value_name = "STAGE", help_heading = "Diagnosis")]
    pub skip: Vec<SkippableStage>,
    /// Accept a known finding: it is reported as a note and fails nothing (repeatable; also
    /// CONSUL_DOCTOR_IGNORE=CODE,CODE)
    #[arg(long, env = "CONSUL_DOCTOR_IGNORE", value_delimiter = ',', value_name = "CODE", help_heading = "Diagnosis")]
    pub ignore: Vec<String>,
    /// CI preflight before the application starts: a health endpoint that nothing answers yet is
    /// a note (its check will be critical until the app answers), not a failure
    #[arg(long, help_heading = "Diagnosis")]
    pub pre_start: bool,
    /// Consul DNS to ask in the discovery stage (default: the agent's DNS interface from /v1/agent/self)
    #[arg(long, value_name = "IP:PORT", help_heading = "Diagnosis")]
    pub consul_dns: Option<String>,
    /// Register a throwaway, never-passing instance to prove registration reaches the catalog,
    /// then deregister it (the only write check makes)
    #[arg(long, help_heading = "Diagnosis")]
    pub probe_register: bool,
    /// Name to probe under instead of the service's own (needs --probe-register)
    #[arg(long, value_name = "NAME", help_heading = "Diagnosis")]
    pub probe_name: Option<String>,
    /// A mesh consumer: the mesh stage checks that intentions let NAME call the service
    #[arg(long = "from", value_name = "NAME", help_heading = "Diagnosis")]
    pub mesh_from: Option<String>,
    /// Deadline of the whole invocation, --wait included (Go duration syntax) [with --wait:
    /// the wait plus 30s]
    #[arg(long, default_value = "30s", value_name = "DURATION", help_heading = "Diagnosis")]
    pub deadline: String,

    /// Report format
    #[arg(long, value_enum, default_value_t = Format::Human, help_heading = "Output")]
    pub format: Format,
    /// Write the report to this file instead of standard output
    #[arg(long, short = 'o', value_name = "PATH", value_parser = output_path, help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Lowest status that makes the exit code 1
    #[arg(long, value_enum, default_value_t = FailOn::Fail, help_heading = "Output")]
    pub fail_on: FailOn,
    /// When to colour the human report (NO_COLOR and CLICOLOR_FORCE are honoured in auto)
    #[arg(long, value_enum, default_value_t = ColorMode::Auto, help_heading = "Output")]
    pub color: ColorMode,
    /// Log every request and stage to standard error (also CONSUL_DOCTOR_LOG=debug); never the token
    #[arg(long, short = 'v', help_heading = "Output")]
    pub verbose: bool,
}

/// Flags of `wait`. No `Debug`: the token must never be printable.
#[derive(Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Name of the service to wait for
    #[arg(long, value_name = "NAME", help_heading = "Condition")]
    pub service: String,
    /// Only this instance (service ID) counts
    #[arg(long, value_name = "ID", help_heading = "Condition")]
    pub id: Option<String>,
    /// Only instances with this tag count (repeatable: all must be present)
    #[arg(long, value_name = "TAG", help_heading = "Condition")]
    pub tag: Vec<String>,
    /// Only instances on this node count
    #[arg(long, value_name = "NODE", help_heading = "Condition")]
    pub node: Option<String>,
    /// The service is imported from this cluster peer: wait for what consumers here see (?peer=)
    #[arg(long, value_name = "PEER", help_heading = "Condition")]
    pub peer: Option<String>,
    /// How many matching instances must have all checks passing
    #[arg(long, default_value_t = 1, value_name = "N", help_heading = "Condition")]
    pub min_passing: usize,
    /// Wait only until a matching instance is in the catalog, whatever its health
    #[arg(long, conflicts_with = "gone", help_heading = "Condition")]
    pub registered: bool,
    /// Wait until the --id instance (or every instance on --node) has left the catalog
    #[arg(long, help_heading = "Condition")]
    pub gone: bool,
    /// Service mesh: an instance counts only when its sidecar proxy passes too and
    /// /v1/health/connect/NAME?passing lists it
    #[arg(long, conflicts_with_all = ["gone", "registered"], help_heading = "Condition")]
    pub connect: bool,

    /// Resolve the agent host through this DNS server (IP or IP:PORT) instead of the system's
    #[arg(long, value_name = "IP:PORT", help_heading = "Diagnosis")]
    pub dns_server: Option<String>,
    /// Timeout of each network step other than the blocking query itself (Go duration syntax)
    #[arg(long, default_value = "5s", value_name = "DURATION", help_heading = "Diagnosis")]
    pub timeout: String,
    /// Give up after this long and print the diagnosis (Go duration syntax)
    #[arg(long, default_value = "2m", value_name = "DURATION", help_heading = "Diagnosis")]
    pub deadline: String,

    /// Report format
    #[arg(long, value_enum, default_value_t = Format::Human, help_heading = "Output")]
    pub format: Format,
    /// Write the report to this file instead of standard output
    #[arg(long, short = 'o', value_name = "PATH", value_parser = output_path, help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// When to colour output (NO_COLOR and CLICOLOR_FORCE are honoured in auto)
    #[arg(long, value_enum, default_value_t = ColorMode::Auto, help_heading = "Output")]
    pub color: ColorMode,
    /// Log every request to standard error (also CONSUL_DOCTOR_LOG=debug); never the token
    #[arg(long, short = 'v', help_heading = "Output")]
    pub verbose: bool,
}

/// What the command line asks for.
pub enum Parsed {
    Check(Box<RawInputs>),
    Wait(Box<crate::wait::RawWait>),
    Explain { code: String },
    Codes { format: CodesFormat, stage: Option<String> },
    Completions { shell: clap_complete::Shell },
    Scan(Box<crate::scan::args::ScanRaw>),
}

/// Parses the command line; clap's error carries help/version output and usage errors alike.
pub fn parse<I, T>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cmd = command();
    let args = consul_style(&cmd, args.into_iter().map(Into::into).collect());
    let matches = match cmd.try_get_matches_from(&args) {
        Ok(m) => m,
        Err(err) => return Err(help_alone(err, &args)),
    };
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(match cli.command {
        Command::Explain { code } => Parsed::Explain { code },
        Command::Codes { format, stage } => Parsed::Codes { format, stage },
        Command::Completions { shell } => Parsed::Completions { shell },
        Command::Check(args) => {
            let sub = matches.subcommand_matches("check").expect("check subcommand matched");
            Parsed::Check(Box::new(raw_inputs(args, sub)))
        }
        Command::Wait(args) => {
            let sub = matches.subcommand_matches("wait").expect("wait subcommand matched");
            Parsed::Wait(Box::new(raw_wait(args, sub)))
        }
        Command::Scan(args) => {
            let sub = matches.subcommand_matches("scan").expect("scan subcommand matched");
            Parsed::Scan(Box::new(crate::scan::args::raw_inputs(args, sub)))
        }
    })
}

/// The Consul CLI's spelling of flags, as Go's flag package reads them: `-flag`, `-flag value`,
/// `-flag=value` (and `--flag`) are one flag, and a boolean takes `-flag=true|false`. Clap reads a
/// single dash as short flags (`-http-addr=…` would be `-h` + more: help and exit 0), so every
/// single-dash word whose name is a long option of the command at hand is rewritten to two
/// dashes first. A word that is exactly a short flag (`-o`, `-v`, `-h`) keeps its meaning, as do
/// clusters of them (`-vo FILE`); values (the word after a flag that takes one) and everything
/// after `--` are left alone.
pub fn consul_style(root: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut cmd = root;
    let mut iter = args.into_iter();
    out.extend(iter.next());
    let mut value_next = false;
    let mut rest = false;
    for arg in iter {
        let Some(text) = arg.to_str().map(str::to_string) else {
            out.push(arg);
            value_next = false;
            continue;
        };
        if rest || value_next {
            out.push(arg);
            value_next = false;
            continue;
        }
        if text == "--" {
            rest = true;
            out.push(arg);
            continue;
        }
        let dashes = if text.starts_with("--") {
            2
        } else if text.starts_with('-') && text.len() > 1 {
            1
        } else {
            0
        };
        if dashes == 0 {
            if let Some(sub) = cmd.find_subcommand(&text) {
                cmd = sub;
            }
            out.push(arg);
            continue;
        }
        let body = &text[dashes..];
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let long = cmd.get_arguments().find(|a| a.get_long() == Some(name));
        let exact_short = dashes == 1 && name.chars().count() == 1;
        match long {
            Some(a) if !exact_short || dashes == 2 => {
                let takes = a.get_action().takes_values();
                match (takes, value) {
                    (false, Some(v)) => match go_bool(v) {
                        Some(true) => out.push(format!("--{name}").into()),
                        Some(false) => {}
                        None => out.push(format!("--{name}={v}").into()),
                    },
                    (true, Some(v)) => out.push(format!("--{name}={v}").into()),
                    (takes, None) => {
                        out.push(format!("--{name}").into());
                        value_next = takes;
                    }
                }
            }
            _ if dashes == 1 && (name == "help" || name == "version") && value.is_none() => {
                out.push(format!("--{name}").into());
            }
            _ => {
                // A short flag (or an unknown word, which clap reports): a short flag written
                // alone takes the next word as its value.
                let short = |c: char| cmd.get_arguments().find(|a| a.get_short() == Some(c));
                let takes = |c: char| short(c).is_some_and(|a| a.get_action().takes_values());
                let first = body.chars().next().unwrap_or('-');
                if dashes == 1 && body.chars().count() == 1 {
                    value_next = takes(first);
                } else if dashes == 1
                    && !takes(first)
                    && !body
                        .chars()
                        .all(|c| short(c).is_some() || c == 'h' || (c == 'V' && cmd.get_version().is_some()))
                {
                    // Not a cluster of short flags (`-vh`) nor a short flag with its value
                    // (`-oreport.json`): an unknown or misspelt long flag, which clap names as such.
                    out.push(format!("--{body}").into());
                    continue;
                } else if dashes == 1 && !takes(first) {
                    // A cluster (`-vo`) whose last flag takes the next word as its value.
                    value_next = body.chars().last().is_some_and(takes);
                }
                out.push(arg);
            }
        }
    }
    out
}

/// Go's `strconv.ParseBool`, which the flag package uses for `-flag=value` on a boolean.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Help or version asked for together with anything but the subcommand's name is a usage error
/// (exit 2): a deploy step that passes a misspelt flag must never pass as "help printed".
fn help_alone(err: clap::Error, args: &[OsString]) -> clap::Error {
    use clap::error::ErrorKind;
    if !matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        return err;
    }
    let root = command();
    let mut cmd = &root;
    let mut path = vec!["consul-doctor".to_string()];
    let mut others = Vec::new();
    for a in args.iter().skip(1) {
        let text = a.to_string_lossy();
        if matches!(text.as_ref(), "-h" | "--help" | "-V" | "--version" | "help") {
            continue;
        }
        if others.is_empty() && err.kind() == ErrorKind::DisplayHelp {
            if let Some(sub) = cmd.find_subcommand(text.as_ref()) {
                cmd = sub;
                path.push(text.into_owned());
                continue;
            }
        }
        others.push(text.into_owned());
    }
    if others.is_empty() {
        return err;
    }
    let asked = if err.kind() == ErrorKind::DisplayHelp { "--help" } else { "--version" };
    let mut e = clap::Error::raw(
        ErrorKind::ArgumentConflict,
        format!(
            "{asked} was given together with other arguments ({}), so nothing ran; for the help alone \
             run: {} {asked}\n",
            others.join(" "),
            path.join(" ")
        ),
    );
    e = e.with_cmd(cmd);
    e
}

/// `-o`/`--output`: a report format given as a file name (`-o json`, kubectl's habit) is refused,
/// since it would silently write the report to a file called `json`.
pub fn output_path(value: &str) -> Result<PathBuf, String> {
    let format = match value.to_ascii_lowercase().as_str() {
        "json" => "json",
        "junit" | "xml" => "junit",
        "human" | "text" => "human",
        _ => return Ok(PathBuf::from(value)),
    };
    Err(format!(
        "{value:?} is a report format, not a file: use --format {format} (or -o ./{value} to write a file of that name)"
    ))
}

pub(crate) fn source_of(m: &ArgMatches, id: &str, env: Option<&'static str>) -> Source {
    match m.value_source(id) {
        Some(ValueSource::CommandLine) => Source::Flag,
        Some(ValueSource::EnvVariable) => env.map(Source::Env).unwrap_or(Source::Flag),
        _ => Source::Default,
    }
}

pub(crate) fn sourced<T>(m: &ArgMatches, id: &str, env: Option<&'static str>, v: Option<T>) -> Option<Sourced<T>> {
    v.map(|value| Sourced { value, source: source_of(m, id, env) })
}

/// The connection inputs from the shared flags, with where each came from.
/// The connection inputs of every command, with their provenance.
pub(crate) fn consul_inputs(a: ConnectionArgs, m: &ArgMatches) -> ConsulInputs {
    let env_var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // An empty value is the same as no value, as in the Consul CLI.
    let text = |v: Option<String>| v.filter(|s| !s.is_empty());
    let path = |v: Option<PathBuf>| v.filter(|p| !p.as_os_str().is_empty());
    ConsulInputs {
        http_addr: sourced(m, "http_addr", Some("CONSUL_HTTP_ADDR"), text(a.http_addr))
            .unwrap_or(Sourced { value: DEFAULT_HTTP_ADDR.to_string(), source: Source::Default }),
        token: sourced(m, "token", Some("CONSUL_HTTP_TOKEN"), text(a.token).map(Secret::new)),
        token_file: sourced(m, "token_file", Some("CONSUL_HTTP_TOKEN_FILE"), path(a.token_file)),
        ca_file: sourced(m, "ca_file", Some("CONSUL_CACERT"), path(a.ca_file)),
        ca_path: sourced(m, "ca_path", Some("CONSUL_CAPATH"), path(a.ca_path)),
        client_cert: sourced(m, "client_cert", Some("CONSUL_CLIENT_CERT"), path(a.client_cert)),
        client_key: sourced(m, "client_key", Some("CONSUL_CLIENT_KEY"), path(a.client_key)),
        tls_server_name: sourced(m, "tls_server_name", Some("CONSUL_TLS_SERVER_NAME"), text(a.tls_server_name)),
        datacenter: sourced(m, "datacenter", None, text(a.datacenter)),
        http_ssl: std::env::var("CONSUL_HTTP_SSL").ok(),
        http_ssl_verify: std::env::var("CONSUL_HTTP_SSL_VERIFY").ok(),
        namespace: sourced(m, "namespace", Some("CONSUL_NAMESPACE"), text(a.namespace)),
        partition: sourced(m, "partition", Some("CONSUL_PARTITION"), text(a.partition)),
        peer: None,
        http_auth: env_var("CONSUL_HTTP_AUTH").map(Secret::new),
        proxy_env: ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"]
            .iter()
            .filter_map(|k| env_var(k).map(|v| (k.to_string(), v)))
            .collect(),
    }
}

fn raw_inputs(a: CheckArgs, m: &ArgMatches) -> RawInputs {
    let mut consul = consul_inputs(a.connection, m);
    consul.peer = sourced(m, "peer", None, a.peer.filter(|p| !p.is_empty()));
    let service = ServiceInputs {
        files: a.service_file,
        flags: FlagServiceArgs {
            name: a.service,
            id: a.service_id,
            address: a.service_address,
            port: a.service_port,
            check_http: a.check_http,
            check_tcp: a.check_tcp,
            check_interval: a.check_interval,
            check_timeout: a.check_timeout,
        },
        go_mod: a.go_mod,
    };
    RawInputs {
        consul,
        service,
        dns_server: a.dns_server,
        timeout: a.timeout,
        timeout_source: source_of(m, "timeout", None),
        deadline: a.deadline,
        wait: a.wait,
        skip: a.skip.iter().map(|s| s.name()).collect(),
        ignore: a.ignore.into_iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect(),
        pre_start: a.pre_start,
        format: a.format,
        output: a.output,
        fail_on: a.fail_on,
        color: a.color,
        verbose: a.verbose || std::env::var("CONSUL_DOCTOR_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug")),
        deadline_given: source_of(m, "deadline", None) != Source::Default,
        consul_dns: a.consul_dns,
        probe_register: a.probe_register,
        probe_name: a.probe_name,
        mesh_from: a.mesh_from,
    }
}

/// The `explain` argument: any spelling is accepted (explain resolves loose ones and suggests
/// near codes), but completion scripts offer the catalogue's codes.
#[derive(Clone, Copy)]
pub struct CodeName;

impl clap::builder::TypedValueParser for CodeName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(crate::codes::ALL.iter().map(|c| clap::builder::PossibleValue::new(c.code).help(c.title))))
    }
}

/// The completion script for `shell`. clap_complete's bash generator names the functions of a
/// hyphenated binary inconsistently (`consul__doctor__subcmd__check` where it dispatches, but
/// `consul__subcmd__doctor__subcmd__check` where it defines the case), so no subcommand
/// completed; the names are made to agree here.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "consul-doctor", &mut script);
    match shell {
        clap_complete::Shell::Bash => {
            String::from_utf8_lossy(&script).replace("consul__subcmd__doctor__", "consul__doctor__").into_bytes()
        }
        // clap_complete's fish generator offers no values for a positional argument: the codes
        // are added the way it writes its own value completions.
        clap_complete::Shell::Fish => {
            let quote = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'").replace('$', "\\$");
            let values: Vec<String> =
                crate::codes::ALL.iter().map(|c| format!("{}\\t'{}'", c.code, quote(c.title))).collect();
            let line = format!(
                "complete -c consul-doctor -n \"__fish_consul_doctor_using_subcommand explain\" -f -a \"{}\"\n",
                values.join("\n").replace('"', "\\\"")
            );
            script.extend_from_slice(line.as_bytes());
            script
        }
        _ => script,
    }
}

/// The clap command with what the derive cannot say: `check`'s help names every stage, from the
/// stage table itself. Parsing, completions and man pages all start here.
pub fn command() -> clap::Command {
    let stages: Vec<&str> = crate::diagnosis::pipeline::STAGES.iter().map(|s| s.name).collect();
    let list = stages.join(", ");
    Cli::command().mut_subcommand("check", |c| {
        c.long_about(format!(
            "Runs the stages {list} against a Consul agent. A stage runs once the stages it needs \
             have passed; when one fails, the stages that depend on it are skipped and name its \
             code, so the first failure is the root cause. Every failure maps to a stable code \
             (consul-doctor explain CODE) with a concrete fix. Read-only: it changes nothing in \
             the cluster.\n\n\
             --timeout bounds each network step. --deadline bounds the whole invocation, waiting \
             included: with --wait the pipeline is re-run every second until no check fails or \
             the wait is over, each attempt gets at most the time left, and the last attempt \
             still runs to the end of the wait (or of the deadline, whichever comes first)."
        ))
    })
}

/// Environment variables read besides the flags' own fallbacks (those are listed with each flag).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("CONSUL_HTTP_SSL", "true: use https:// for an address without a scheme, as the Consul CLI does"),
    ("CONSUL_HTTP_SSL_VERIFY", "false: do not verify the agent's certificate (reported as CFG-010)"),
    ("CONSUL_HTTP_AUTH", "user:password for HTTP basic authentication in front of the agent (never printed)"),
    ("CONSUL_NAMESPACE", "Consul Enterprise namespace of the queries"),
    ("CONSUL_PARTITION", "Consul Enterprise admin partition of the queries"),
    ("CONSUL_DOCTOR_LOG", "debug: the same as --verbose"),
    (
        "HTTP_PROXY, HTTPS_PROXY, NO_PROXY",
        "honoured as the Consul CLI honours them, lower case too (reported as CFG-013)",
    ),
    ("NO_COLOR", "set: no colour in the human report with --color auto"),
    ("CLICOLOR_FORCE", "set (not 0): colour even when standard output is not a terminal, with --color auto"),
    ("COLUMNS", "width to wrap the human report to when standard output is a terminal (default: the terminal's)"),
];

fn raw_wait(a: WaitArgs, m: &ArgMatches) -> crate::wait::RawWait {
    let mut consul = consul_inputs(a.connection, m);
    consul.peer = sourced(m, "peer", None, a.peer.clone().filter(|p| !p.is_empty()));
    let inputs = RawInputs {
        consul,
        // No service for the connection stages: wait judges its service itself (a read-only
        // deploy token must not be reported for lacking service:write).
        service: ServiceInputs { files: Vec::new(), flags: FlagServiceArgs::default(), go_mod: None },
        dns_server: a.dns_server,
        timeout: a.timeout,
        timeout_source: source_of(m, "timeout", None),
        deadline: a.deadline,
        wait: None,
        skip: Vec::new(),
        format: a.format,
        output: a.output,
        fail_on: FailOn::Fail,
        color: a.color,
        verbose: a.verbose || std::env::var("CONSUL_DOCTOR_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug")),
        ignore: Vec::new(),
        pre_start: false,
        deadline_given: true,
        consul_dns: None,
        probe_register: false,
        probe_name: None,
        mesh_from: None,
    };
    crate::wait::RawWait {
        inputs,
        service: a.service,
        id: a.id.filter(|s| !s.is_empty()),
        tags: a.tag,
        node: a.node.filter(|s| !s.is_empty()),
        min_passing: a.min_passing,
        registered: a.registered,
        gone: a.gone,
        connect: a.connect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(args: &[&str]) -> Vec<String> {
        let args: Vec<OsString> =
            std::iter::once("consul-doctor").chain(args.iter().copied()).map(OsString::from).collect();
        consul_style(&command(), args).into_iter().skip(1).map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn single_dash_long_flags_become_long_flags() {
        assert_eq!(
            rewritten(&["check", "-http-addr=127.0.0.1:1", "-token-file", "-odd-name", "-verbose", "-pre-start=false"]),
            ["check", "--http-addr=127.0.0.1:1", "--token-file", "-odd-name", "--verbose"]
        );
        // Exact short flags, clusters and their values stay; so does everything after `--`.
        assert_eq!(rewritten(&["check", "-o", "-x", "-v", "-h"]), ["check", "-o", "-x", "-v", "-h"]);
        assert_eq!(
            rewritten(&["check", "-vo", "r.json", "-oreport.json"]),
            ["check", "-vo", "r.json", "-oreport.json"]
        );
        assert_eq!(
            rewritten(&["wait", "-service", "check", "-id=web-1"]),
            ["wait", "--service", "check", "--id=web-1"]
        );
        assert_eq!(rewritten(&["check", "--", "-service"]), ["check", "--", "-service"]);
        // A misspelt one is named as the long flag it would be, never read as -h + more.
        assert_eq!(rewritten(&["check", "-htt-addr=x"]), ["check", "--htt-addr=x"]);
        assert_eq!(rewritten(&["-help"]), ["--help"]);
    }
}
