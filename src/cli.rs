//! Command-line definition (clap derive) with the Consul CLI's flag names and `CONSUL_*`
//! environment fallbacks. Parsing here only collects raw values and where each came from;
//! `inputs.rs` validates them.

use std::ffi::OsString;
use std::path::PathBuf;

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
    long_about = "Runs a staged pipeline of checks (config, dns, tcp, tls, api, leader, acl, version) \
                  against a Consul agent, stops the cascade at the root cause and maps every failure \
                  to a stable code with a concrete fix. Read-only: it changes nothing in the cluster."
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
    /// Show the document of a finding code (accepts ACL-002, acl-002, ACL002)
    Explain {
        /// The code to explain
        code: String,
    },
    /// List every finding code
    Codes {
        /// Output format
        #[arg(long, value_enum, default_value_t = CodesFormat::Human)]
        format: CodesFormat,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Junit,
}

/// Stages that nothing else needs, so they can be left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SkippableStage {
    Health,
    Duplicates,
    Sync,
    Version,
}

impl SkippableStage {
    pub fn name(self) -> &'static str {
        match self {
            SkippableStage::Health => "health",
            SkippableStage::Duplicates => "duplicates",
            SkippableStage::Sync => "sync",
            SkippableStage::Version => "version",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Exit 1 only when a check fails
    Fail,
    /// Exit 1 when a check fails or warns
    Warn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}

/// Flags of `check`. No `Debug`: the token must never be printable.
#[derive(Args)]
pub struct CheckArgs {
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

    /// Resolve the agent host through this DNS server (IP or IP:PORT) instead of the system's
    #[arg(long, value_name = "IP:PORT", help_heading = "Diagnosis")]
    pub dns_server: Option<String>,
    /// Timeout of each network step (Go duration syntax)
    #[arg(long, default_value = "5s", value_name = "DURATION", help_heading = "Diagnosis")]
    pub timeout: String,
    /// Re-run every second until no check fails or this much time has passed (CI right after
    /// agents start)
    #[arg(long, value_name = "DURATION", help_heading = "Diagnosis")]
    pub wait: Option<String>,
    /// Leave out a stage that needs a vantage point or permissions this host lacks (repeatable)
    #[arg(long, value_enum, value_name = "STAGE", help_heading = "Diagnosis")]
    pub skip: Vec<SkippableStage>,
    /// Deadline of the whole run (Go duration syntax)
    #[arg(long, default_value = "30s", value_name = "DURATION", help_heading = "Diagnosis")]
    pub deadline: String,

    /// Report format
    #[arg(long, value_enum, default_value_t = Format::Human, help_heading = "Output")]
    pub format: Format,
    /// Write the report to this file instead of standard output
    #[arg(long, short = 'o', value_name = "PATH", help_heading = "Output")]
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

/// What the command line asks for.
pub enum Parsed {
    Check(Box<RawInputs>),
    Explain { code: String },
    Codes { format: CodesFormat },
    Completions { shell: clap_complete::Shell },
    Scan(Box<crate::scan::args::ScanRaw>),
}

/// Parses the command line; clap's error carries help/version output and usage errors alike.
pub fn parse<I, T>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(match cli.command {
        Command::Explain { code } => Parsed::Explain { code },
        Command::Codes { format } => Parsed::Codes { format },
        Command::Completions { shell } => Parsed::Completions { shell },
        Command::Check(args) => {
            let sub = matches.subcommand_matches("check").expect("check subcommand matched");
            Parsed::Check(Box::new(raw_inputs(args, sub)))
        }
        Command::Scan(args) => {
            let sub = matches.subcommand_matches("scan").expect("scan subcommand matched");
            Parsed::Scan(Box::new(crate::scan::args::raw_inputs(args, sub)))
        }
    })
}

fn source_of(m: &ArgMatches, id: &str, env: Option<&'static str>) -> Source {
    match m.value_source(id) {
        Some(ValueSource::CommandLine) => Source::Flag,
        Some(ValueSource::EnvVariable) => env.map(Source::Env).unwrap_or(Source::Flag),
        _ => Source::Default,
    }
}

pub(crate) fn sourced<T>(m: &ArgMatches, id: &str, env: Option<&'static str>, v: Option<T>) -> Option<Sourced<T>> {
    v.map(|value| Sourced { value, source: source_of(m, id, env) })
}

fn raw_inputs(a: CheckArgs, m: &ArgMatches) -> RawInputs {
    let env_var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // An empty value is the same as no value, as in the Consul CLI.
    let text = |v: Option<String>| v.filter(|s| !s.is_empty());
    let path = |v: Option<PathBuf>| v.filter(|p| !p.as_os_str().is_empty());
    let consul = ConsulInputs {
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
        namespace: env_var("CONSUL_NAMESPACE"),
        partition: env_var("CONSUL_PARTITION"),
        http_auth: env_var("CONSUL_HTTP_AUTH").map(Secret::new),
        proxy_env: ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"]
            .iter()
            .filter_map(|k| env_var(k).map(|v| (k.to_string(), v)))
            .collect(),
    };
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
        deadline: a.deadline,
        wait: a.wait,
        skip: a.skip.iter().map(|s| s.name()).collect(),
        format: a.format,
        output: a.output,
        fail_on: a.fail_on,
        color: a.color,
        verbose: a.verbose || std::env::var("CONSUL_DOCTOR_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug")),
    }
}
