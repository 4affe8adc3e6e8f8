//! Property tests for the parsers: Go durations, CONSUL_HTTP_ADDR, service definitions and HCL.
//!
//! Every property runs a fixed number of cases (see `config`) so the whole file stays fast.
//! Tests whose comment starts with `BUG:` hold inputs on which the crate disagrees with Go or
//! crashes; they assert the correct behaviour and fail until src/ is fixed.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use consul_doctor::connection::{parse_address, Scheme, Target};
use consul_doctor::duration::parse_go_duration;
use consul_doctor::hcl;
use consul_doctor::service::{judge, judge_duplicate_ids, load_text, CheckKind, Form, ServiceDef};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Number, Value};

/// 256 cases a property, and no regression files written next to the tests.
fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Go durations

const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{00b5}s", 1_000),
    ("\u{03bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Go's `time.quote` as its source describes it: bytes of non-ASCII and control characters
/// as `\xNN`, a backslash before `"` and `\`, everything else as is.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if !(' '..'\u{80}').contains(&c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Strings built from the pieces of durations, both micro signs and arbitrary characters.
fn duration_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[0-9]{1,20}",
        2 => select(&["ns", "us", "\u{00b5}s", "\u{03bc}s", "ms", "s", "m", "h", "d", "\u{00b5}", "\u{03bc}"][..])
            .prop_map(String::from),
        2 => select(&[".", "-", "+", " ", "0", "e", "\u{fffd}"][..]).prop_map(String::from),
        1 => any::<char>().prop_map(String::from),
    ];
    vec(piece, 0..8).prop_map(|p| p.concat())
}

/// One `<number><unit>` component of a valid duration.
#[derive(Debug, Clone)]
struct Part {
    int: String,
    frac: Option<String>,
    unit: usize,
}

impl Part {
    fn text(&self) -> String {
        let frac = self.frac.as_ref().map(|f| format!(".{f}")).unwrap_or_default();
        format!("{}{frac}{}", self.int, UNITS[self.unit].0)
    }

    fn digits(s: &str) -> u64 {
        if s.is_empty() {
            0
        } else {
            s.parse().unwrap()
        }
    }

    /// Go's arithmetic: `v*unit + uint64(float64(f) * (float64(unit) / scale))`.
    fn go_nanos(&self) -> u64 {
        let unit = UNITS[self.unit].1;
        let frac = self.frac.as_deref().unwrap_or("");
        let (v, f) = (Self::digits(&self.int), Self::digits(frac));
        let scale = 10u64.pow(frac.len() as u32) as f64; // exact: at most 12 digits
        let mut n = v * unit;
        if f > 0 {
            n += (f as f64 * (unit as f64 / scale)) as u64;
        }
        n
    }

    /// The exact value, rounded down, in integer arithmetic.
    fn exact_nanos(&self) -> u128 {
        let unit = u128::from(UNITS[self.unit].1);
        let frac = self.frac.as_deref().unwrap_or("");
        let pow = 10u128.pow(frac.len() as u32);
        (u128::from(Self::digits(&self.int)) * unit * pow + u128::from(Self::digits(frac)) * unit) / pow
    }
}

fn part() -> impl Strategy<Value = Part> {
    // "1", "1.5", "5." (digits before the point) or ".5" (digits only after it).
    let with_int = ("[0-9]{1,5}", proptest::option::of("[0-9]{0,12}"));
    let frac_only = "[0-9]{1,12}".prop_map(|f| (String::new(), Some(f)));
    (prop_oneof![3 => with_int, 1 => frac_only], 0..UNITS.len()).prop_map(|((int, frac), unit)| Part {
        int,
        frac,
        unit,
    })
}

#[test]
fn durations_match_gos_documented_and_tested_results() {
    // From Go's documentation ("300ms", "-1.5h", "2h45m") and its parseDurationTests table.
    let valid: &[(&str, i64)] = &[
        ("300ms", 300_000_000),
        ("-1.5h", -5_400_000_000_000),
        ("2h45m", 9_900_000_000_000),
        ("1h15m30.918273645s", 4_530_918_273_645),
        ("1\u{00b5}s", 1_000),
        ("1\u{03bc}s", 1_000),
        ("1.s", 1_000_000_000),
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("5s", 5_000_000_000),
        ("-5s", -5_000_000_000),
        ("+5s", 5_000_000_000),
        ("5.0s", 5_000_000_000),
        ("5.6s", 5_600_000_000),
        ("5.s", 5_000_000_000),
        (".5s", 500_000_000),
        ("1.004s", 1_004_000_000),
        ("1.0040s", 1_004_000_000),
        ("100.00100s", 100_001_000_000),
        ("10ns", 10),
        ("11us", 11_000),
        ("12\u{00b5}s", 12_000),
        ("12\u{03bc}s", 12_000),
        ("13ms", 13_000_000),
        ("15m", 900_000_000_000),
        ("16h", 57_600_000_000_000),
        ("3h30m", 12_600_000_000_000),
        ("10.5s4m", 250_500_000_000),
        ("-2m3.4s", -123_400_000_000),
        ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ("39h9m14.425s", 140_954_425_000_000),
        ("52763797000ns", 52_763_797_000),
        ("0.3333333333333333333h", 1_200_000_000_000),
        ("9007199254740993ns", 9_007_199_254_740_993),
        ("9223372036854775807ns", i64::MAX),
        ("9223372036854775.807us", i64::MAX),
        ("9223372036s854ms775us807ns", i64::MAX),
        ("-9223372036854775808ns", i64::MIN),
        ("-9223372036854775.808us", i64::MIN),
        ("-9223372036s854ms775us808ns", i64::MIN),
        ("-2562047h47m16.854775808s", i64::MIN),
        ("0.100000000000000000000h", 360_000_000_000),
        ("0.830103483285477580700h", 2_988_372_539_827),
    ];
    for (input, want) in valid {
        assert_eq!(parse_go_duration(input), Ok(*want), "{input:?}");
    }
    let invalid = |s: &str| format!("time: invalid duration {}", go_quote(s));
    let no_unit = |s: &str| format!("time: missing unit in duration {}", go_quote(s));
    let errors: Vec<(&str, String)> = vec![
        ("", invalid("")),
        ("1", no_unit("1")),
        ("3", no_unit("3")),
        ("1.", no_unit("1.")),
        ("1d", "time: unknown unit \"d\" in duration \"1d\"".into()),
        ("1 s", "time: unknown unit \" s\" in duration \"1 s\"".into()),
        ("+", invalid("+")),
        ("-", invalid("-")),
        ("s", invalid("s")),
        (".", invalid(".")),
        ("-.", invalid("-.")),
        (".s", invalid(".s")),
        ("+.s", invalid("+.s")),
        ("9223372036854775810ns", invalid("9223372036854775810ns")),
        ("9223372036854775808ns", invalid("9223372036854775808ns")),
        ("-9223372036854775809ns", invalid("-9223372036854775809ns")),
        ("9223372036854776us", invalid("9223372036854776us")),
        ("3000000h", invalid("3000000h")),
        ("9223372036854775.808us", invalid("9223372036854775.808us")),
        ("9223372036854ms775us808ns", invalid("9223372036854ms775us808ns")),
    ];
    for (input, want) in errors {
        assert_eq!(parse_go_duration(input), Err(want), "{input:?}");
    }
}

/// BUG: error texts quote non-ASCII input with Rust's `{:?}`, but Go's `time.quote` writes every
/// byte of a non-ASCII (or control) character as `\xNN`. The first two cases are Go's own
/// parseDurationErrorTests data; the third is the typo "1µ" (unit without the s).
/// Observed: `time: invalid duration "\u{fffd}"`-style text with the raw character.
#[test]
fn duration_errors_quote_non_ascii_like_go() {
    let cases = [
        ("\u{fffd}", "\"\\xef\\xbf\\xbd\""),
        ("\u{fffd} hello \u{fffd} world", "\"\\xef\\xbf\\xbd hello \\xef\\xbf\\xbd world\""),
        ("1\u{00b5}", "time: unknown unit \"\\xc2\\xb5\" in duration \"1\\xc2\\xb5\""),
    ];
    for (input, want) in cases {
        let err = parse_go_duration(input).expect_err(input);
        assert!(err.contains(want), "parse_go_duration({input:?}) = Err({err:?}); Go's error contains {want}");
    }
}

/// BUG: Go adds the components into a uint64 without a wrap check (`d += v; if d > 1<<63`), so
/// two components of exactly 2^63 ns wrap to 0 and Go returns (0, nil); the port saturates and
/// returns an error. Only this exact sum (2^63 + 2^63) wraps. Harmless in practice, but the
/// module promises to accept exactly what Go accepts.
#[test]
fn duration_component_sum_wraps_like_go() {
    assert_eq!(parse_go_duration("9223372036854775808ns9223372036854775808ns"), Ok(0));
    assert_eq!(parse_go_duration("-9223372036854775808ns9223372036854775808ns"), Ok(0));
}

proptest! {
    #![proptest_config(config())]

    /// 1. Never panics, on any text; an accepted unsigned text negates exactly.
    #[test]
    fn duration_never_panics(s in prop_oneof![any::<String>(), duration_soup()]) {
        if let Ok(n) = parse_go_duration(&s) {
            if !s.starts_with(['+', '-']) {
                prop_assert_eq!(parse_go_duration(&format!("-{s}")), Ok(-n), "{:?}", s);
                prop_assert_eq!(parse_go_duration(&format!("+{s}")), Ok(n), "{:?}", s);
            }
        }
    }

    /// 1b. For printable ASCII, error texts end with the input quoted exactly as Go quotes it.
    #[test]
    fn duration_errors_quote_ascii_like_go(s in prop_oneof!["[ -~]{0,16}", duration_soup().prop_filter("ascii", |s| s.bytes().all(|b| (b' '..=b'~').contains(&b)))]) {
        if let Err(e) = parse_go_duration(&s) {
            prop_assert!(e.starts_with("time: "), "{}", e);
            prop_assert!(e.ends_with(&format!(" {}", go_quote(&s))), "{:?} -> {}", s, e);
        }
    }

    /// 2. Generated valid durations parse to Go's value, within 1ns a component of the exact one.
    #[test]
    fn valid_durations_parse_like_go(sign in select(&["", "+", "-"][..]), parts in vec(part(), 1..5)) {
        let text = format!("{sign}{}", parts.iter().map(Part::text).collect::<String>());
        let go: u64 = parts.iter().map(Part::go_nanos).sum();
        let exact: u128 = parts.iter().map(Part::exact_nanos).sum();
        prop_assert!(u128::from(go).abs_diff(exact) <= parts.len() as u128, "{} go={} exact={}", text, go, exact);
        let want = if sign == "-" { -(go as i64) } else { go as i64 };
        prop_assert_eq!(parse_go_duration(&text), Ok(want), "{:?}", text);
    }
}

// ---------------------------------------------------------------------------------------------
// CONSUL_HTTP_ADDR

#[derive(Debug, Clone)]
enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    fn in_address(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::V4(ip) => ip.to_string(),
            Host::V6(ip) => format!("[{ip}]"),
        }
    }

    fn parsed(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::V4(ip) => ip.to_string(),
            Host::V6(ip) => ip.to_string(),
        }
    }
}

fn host() -> impl Strategy<Value = Host> {
    let name = (vec("[a-zA-Z0-9_-]{1,12}", 1..5), any::<bool>()).prop_map(|(labels, dot)| {
        let mut h = labels.join(".");
        if dot {
            h.push('.');
        }
        Host::Name(h)
    });
    prop_oneof![
        2 => name,
        1 => any::<Ipv4Addr>().prop_map(Host::V4),
        1 => any::<Ipv6Addr>().prop_map(Host::V6),
    ]
}

fn address_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => select(
            &[
                "http://", "https://", "unix://", "tcp://", "://", "[", "]", ":", "::", "::1", "/", "//", "@", "%",
                "8500", "0", "65536", "99999", "-1", "+80", "localhost", "127.0.0.1", "fe80::1%eth0", ".", " ",
                "\u{e9}", "\u{3bc}",
            ][..]
        )
        .prop_map(String::from),
        1 => "[a-z0-9]{1,6}",
        1 => any::<char>().prop_map(String::from),
    ];
    vec(piece, 0..8).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config())]

    /// 3. Never panics, on any text and either CONSUL_HTTP_SSL.
    #[test]
    fn address_never_panics(s in prop_oneof![any::<String>(), address_soup()], ssl in any::<bool>()) {
        let _ = parse_address(&s, ssl);
    }

    /// 3b. host[:port][/prefix] with an optional scheme round-trips host, port, scheme and prefix.
    #[test]
    fn valid_addresses_round_trip(
        host in host(),
        scheme in select(&["", "http://", "https://"][..]),
        port in proptest::option::of(1u16..=65535),
        path in vec("[a-zA-Z0-9_.-]{1,8}", 0..3),
        trailing_slash in any::<bool>(),
        ssl in any::<bool>(),
        pad in select(&["", " ", "\t", " \n"][..]),
    ) {
        let mut text = format!("{pad}{scheme}{}", host.in_address());
        if let Some(p) = port {
            text.push_str(&format!(":{p}"));
        }
        for seg in &path {
            text.push('/');
            text.push_str(seg);
        }
        if trailing_slash {
            text.push('/');
        }
        text.push_str(pad);
        let parsed = parse_address(&text, ssl).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let want_scheme = if scheme == "https://" || ssl { Scheme::Https } else { Scheme::Http };
        let want_port = port.unwrap_or(if want_scheme == Scheme::Https { 443 } else { 80 });
        let want_prefix = if path.is_empty() { String::new() } else { format!("/{}", path.join("/")) };
        prop_assert_eq!(
            parsed.target,
            Target::Tcp { scheme: want_scheme, host: host.parsed(), port: want_port, path_prefix: want_prefix },
            "{:?}", text
        );
        prop_assert_eq!(parsed.default_port, port.is_none(), "{:?}", text);
    }

    /// 3c. unix:// addresses keep their socket path.
    #[test]
    fn unix_addresses_round_trip(path in "/[a-zA-Z0-9_./-]{1,30}", ssl in any::<bool>()) {
        let parsed = parse_address(&format!("unix://{path}"), ssl).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed.target, Target::Unix { path: PathBuf::from(&path) });
    }
}

// ---------------------------------------------------------------------------------------------
// Service definitions

/// Field names Consul knows (both styles) plus the wrappers, so generated trees reach the readers.
const KEYS: &[&str] = &[
    "Name",
    "name",
    "ID",
    "id",
    "Port",
    "port",
    "Address",
    "Kind",
    "Token",
    "Tags",
    "tags",
    "Meta",
    "meta",
    "Weights",
    "Passing",
    "Warning",
    "Check",
    "check",
    "Checks",
    "checks",
    "Connect",
    "SidecarService",
    "sidecar_service",
    "service",
    "services",
    "Service",
    "HTTP",
    "http",
    "TCP",
    "GRPC",
    "TTL",
    "ttl",
    "Interval",
    "interval",
    "Timeout",
    "DeregisterCriticalServiceAfter",
    "deregister_critical_service_after",
    "Args",
    "args",
    "ScriptArgs",
    "script",
    "CheckID",
    "check_id",
    "Status",
    "Header",
    "Method",
    "AliasService",
    "H2PING",
    "UDP",
    "OSService",
    "TLSServerName",
    "TaggedAddresses",
    "EnableTagOverride",
    "Namespace",
    "SocketPath",
    "FailuresBeforeWarning",
    "DisableRedirects",
    "TLSSkipVerify",
];

fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(
            &[
                "", "10s", "1m", "0", "-5s", "500ms", "1.5h", "10", "http://127.0.0.1:8080/health", "127.0.0.1:80",
                "[::1]:80", "host", "passing", "critical", "ok", "0.0.0.0", "::", "[::]", "web", "web-1", "my_web",
                "consul-x", "GET", "secret-token",
            ][..]
        )
        .prop_map(String::from),
        1 => duration_soup(),
        1 => any::<String>(),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-100i64..100_000).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        interesting_string().prop_map(Value::String),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![4 => select(KEYS).prop_map(String::from), 1 => "[a-zA-Z_-]{0,10}"]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text that looks a little like JSON or HCL.
fn definition_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => select(
            &[
                "{", "}", "[", "]", ":", "=", ",", "\"", "\\", "\\u", "\n", " ", "#", "//", "/*", "*/", "<<EOT\n",
                "<<-EOT\n", "EOT", "\"Name\"", "\"web\"", "service", "services", "check", "name", "true", "null", "1",
                "-1", "1e5", ".", "\"10s\"",
            ][..]
        )
        .prop_map(String::from),
        1 => select(KEYS).prop_map(String::from),
        1 => any::<char>().prop_map(String::from),
    ];
    vec(piece, 0..24).prop_map(|p| p.concat())
}

/// Everything a caller does with a loaded definition.
fn exercise(loaded: Result<Vec<ServiceDef>, Box<consul_doctor::report::CheckResult>>) {
    match loaded {
        Ok(defs) => {
            for d in &defs {
                let _ = judge(d);
                let _ = d.effective_id();
                let _ = d.display_name();
            }
            let _ = judge_duplicate_ids(&defs);
        }
        Err(e) => {
            let _ = e.message.len();
        }
    }
}

const NAMES: &[&str] = &["x.json", "x.hcl", "x"];

#[derive(Debug, Clone)]
struct GoodService {
    name: String,
    id: String,
    port: u16,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
    check_port: u16,
    interval_s: u32,
    timeout_s: u32,
    deregister_m: u32,
}

fn good_service() -> impl Strategy<Value = GoodService> {
    let check = (2u32..=3600).prop_flat_map(|interval| (Just(interval), 1..interval));
    (
        "[a-z][a-z0-9-]{0,20}",
        "[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,20}",
        1u16..=65535,
        vec("[ -~]{0,12}", 0..4),
        btree_map(
            "[a-zA-Z0-9_-]{1,20}".prop_filter("reserved prefix", |k| !k.starts_with("consul-")),
            "[ -~]{0,40}",
            0..5,
        ),
        1u16..=65535,
        check,
        1u32..=120,
    )
        .prop_map(|(name, id, port, tags, meta, check_port, (interval_s, timeout_s), deregister_m)| GoodService {
            name,
            id,
            port,
            tags,
            meta,
            check_port,
            interval_s,
            timeout_s,
            deregister_m,
        })
}

impl GoodService {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.check_port)
    }

    fn api_json(&self) -> Value {
        json!({
            "Name": self.name, "ID": self.id, "Port": self.port, "Tags": self.tags, "Meta": self.meta,
            "Check": {
                "HTTP": self.url(),
                "Interval": format!("{}s", self.interval_s),
                "Timeout": format!("{}s", self.timeout_s),
                "DeregisterCriticalServiceAfter": format!("{}m", self.deregister_m),
            }
        })
    }

    fn config_json(&self) -> Value {
        json!({"service": {
            "name": self.name, "id": self.id, "port": self.port, "tags": self.tags, "meta": self.meta,
            "check": {
                "http": self.url(),
                "interval": format!("{}s", self.interval_s),
                "timeout": format!("{}s", self.timeout_s),
                "deregister_critical_service_after": format!("{}m", self.deregister_m),
            }
        }})
    }

    fn hcl(&self) -> String {
        let tags: Vec<String> = self.tags.iter().map(|t| hcl_quote(t)).collect();
        let meta: Vec<String> = self.meta.iter().map(|(k, v)| format!("{} = {}", hcl_quote(k), hcl_quote(v))).collect();
        format!(
            "service {{\n  name = {}\n  id = {}\n  port = {}\n  tags = [{}]\n  meta = {{ {} }}\n  check {{\n    http = {}\n    interval = \"{}s\"\n    timeout = \"{}s\"\n    deregister_critical_service_after = \"{}m\"\n  }}\n}}\n",
            hcl_quote(&self.name),
            hcl_quote(&self.id),
            self.port,
            tags.join(", "),
            meta.join(", "),
            hcl_quote(&self.url()),
            self.interval_s,
            self.timeout_s,
            self.deregister_m
        )
    }

    fn check_loaded(&self, text: &str, file: &str, form: Form) -> Result<(), TestCaseError> {
        let defs = load_text(text, file).map_err(|e| TestCaseError::fail(format!("{file}: {}\n{text}", e.message)))?;
        prop_assert_eq!(defs.len(), 1, "{}", text);
        let d = &defs[0];
        prop_assert_eq!(d.form, form);
        prop_assert_eq!(d.name.as_deref(), Some(self.name.as_str()));
        prop_assert_eq!(d.id.as_deref(), Some(self.id.as_str()));
        prop_assert_eq!(d.port, Some(i64::from(self.port)));
        prop_assert_eq!(&d.tags, &self.tags);
        let meta: BTreeMap<String, String> = d.meta.iter().cloned().collect();
        prop_assert_eq!(&meta, &self.meta);
        prop_assert_eq!(d.checks.len(), 1);
        prop_assert!(
            matches!(&d.checks[0].kind, CheckKind::Http { url, .. } if *url == self.url()),
            "{:?}",
            d.checks[0].kind
        );
        let found: Vec<String> = judge(d).iter().map(|r| format!("{:?} {}", r.code, r.message)).collect();
        prop_assert!(found.is_empty(), "{} findings for\n{}\n{:#?}", file, text, found);
        Ok(())
    }
}

fn hcl_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

proptest! {
    #![proptest_config(config())]

    /// 4. load_text (and judge on its result) never panics on arbitrary bytes.
    #[test]
    fn load_text_never_panics_on_bytes(bytes in vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        for name in NAMES {
            exercise(load_text(&text, name));
        }
    }

    /// 4b. ... nor on text that looks like JSON or HCL.
    #[test]
    fn load_text_never_panics_on_soup(text in definition_soup()) {
        for name in NAMES {
            exercise(load_text(&text, name));
        }
    }

    /// 4c. ... nor on arbitrary JSON trees, bare or wrapped as a service or a list of services.
    #[test]
    fn load_text_never_panics_on_json_values(v in json_value()) {
        let shapes = [json!({"service": v.clone()}), json!({"services": [v.clone(), v.clone()]}), v];
        for shape in &shapes {
            let text = serde_json::to_string(shape).unwrap();
            for name in NAMES {
                exercise(load_text(&text, name));
            }
        }
    }

    /// 5. Valid definitions load as given and have no findings: API JSON, config JSON, HCL.
    #[test]
    fn valid_definitions_round_trip(s in good_service()) {
        s.check_loaded(&serde_json::to_string(&s.api_json()).unwrap(), "x.json", Form::Api)?;
        s.check_loaded(&serde_json::to_string_pretty(&s.config_json()).unwrap(), "x.json", Form::Config)?;
        s.check_loaded(&s.hcl(), "x.hcl", Form::Config)?;
    }
}

// ---------------------------------------------------------------------------------------------
// HCL

/// JSON values HCL 1 can express: no nulls, integers only.
fn hcl_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 5, |inner| {
        prop_oneof![vec(inner.clone(), 0..5).prop_map(Value::Array), hcl_object(inner).prop_map(Value::Object),]
    })
}

fn hcl_object(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Map<String, Value>> {
    btree_map(prop_oneof![json_key(), any::<String>()], inner, 0..5).prop_map(|m| m.into_iter().collect())
}

fn render_hcl(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => hcl_quote(s),
        Value::Array(items) => format!("[{}]", items.iter().map(render_hcl).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!("{{\n{}}}", render_body(m)),
        Value::Null => unreachable!("no nulls are generated"),
    }
}

fn render_body(m: &Map<String, Value>) -> String {
    m.iter().map(|(k, v)| format!("{} = {}\n", hcl_quote(k), render_hcl(v))).collect()
}

fn hcl_soup() -> impl Strategy<Value = String> {
    prop_oneof![definition_soup(), any::<String>()]
}

proptest! {
    #![proptest_config(config())]

    /// 6. hcl::parse never panics.
    #[test]
    fn hcl_never_panics(s in hcl_soup()) {
        if let Err(e) = hcl::parse(&s) {
            prop_assert!(e.line >= 1 && e.column >= 1, "{:?}", e);
        }
    }

    /// 6b. Quoted keys, escaped strings, integers, booleans, lists and inline objects read back.
    #[test]
    fn hcl_round_trips_what_it_can_express(m in hcl_object(hcl_value())) {
        let text = render_body(&m);
        let parsed = hcl::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed, Value::Object(m), "{}", text);
    }
}

/// BUG: the HCL reader recurses once per nesting level with no limit, so deeply nested input
/// (here 100,000 levels of `a {`) overflows the stack and aborts the process instead of
/// returning an HclError. `load_text` reaches it for `.hcl` files and also for `.json` files
/// whose text is not JSON (it tries HCL before reporting the JSON error). serde_json stops at
/// 128 levels with an error. The crash is checked in a child process so it cannot take this
/// test binary down.
#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "deep_nesting_child", "--test-threads=1", "--nocapture"])
        .env("CONSUL_DOCTOR_DEEP_NESTING_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child parsing deeply nested HCL crashed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs only as the child of `deeply_nested_input_is_an_error_not_a_crash`.
#[test]
fn deep_nesting_child() {
    if std::env::var_os("CONSUL_DOCTOR_DEEP_NESTING_CHILD").is_none() {
        return;
    }
    let text = "a {".repeat(100_000);
    assert!(hcl::parse(&text).is_err());
    assert!(load_text(&text, "x.hcl").is_err());
    assert!(load_text(&text, "x.json").is_err());
}

// ---------------------------------------------------------------------------------------------
// scan: the catalog decoder and the judges on any /v1/internal/ui/nodes body

/// A ui/nodes entry in the shape of hashicorp/consul `agent/structs/structs.go` `NodeInfo`,
/// from few names so that nodes, IDs and addresses collide.
fn ui_node() -> impl Strategy<Value = Value> {
    let name = select(&["a", "b", "", "ü", "x.y"][..]);
    let status = select(&["passing", "warning", "critical", "", "maintenance"][..]);
    let service = (
        name.clone(),
        name.clone(),
        select(&[0i64, 80, 70000, -1][..]),
        select(&["", "connect-proxy", "mesh-gateway"][..]),
        any::<u64>(),
    )
        .prop_map(|(id, svc, port, kind, index)| {
            json!({"ID": id, "Service": svc, "Port": port, "Kind": kind, "ModifyIndex": index,
                   "Proxy": {"DestinationServiceID": id}, "Meta": {"external-source": svc}})
        });
    let check = (name.clone(), name.clone(), status)
        .prop_map(|(id, sid, st)| json!({"CheckID": id, "ServiceID": sid, "Status": st}));
    (name.clone(), select(&["", "east"][..]), vec(service, 0..4), vec(check, 0..5), any::<bool>()).prop_map(
        |(node, peer, services, checks, serf)| {
            let mut checks = checks;
            if serf {
                checks.push(json!({"CheckID": "serfHealth", "ServiceID": "", "Status": "critical"}));
            }
            json!({"Node": node, "Address": "10.0.0.1", "PeerName": peer, "Services": services, "Checks": checks})
        },
    )
}

proptest! {
    #![proptest_config(config())]

    /// Any list of entries, whole or cut anywhere, decodes or fails cleanly; what decodes is
    /// judged and planned without a panic.
    #[test]
    fn scan_decodes_and_judges_any_catalog(nodes in vec(ui_node(), 0..6), cut in any::<prop::sample::Index>()) {
        use consul_doctor::scan::model::UiNodesInto;
        let body = Value::Array(nodes).to_string();
        let bytes = body.as_bytes();
        for text in [bytes, &bytes[..cut.index(bytes.len() + 1)]] {
            if let Ok(decoded) = UiNodesInto::decode(&mut &text[..]) {
                let cat = decoded.0.finish();
                let judged = consul_doctor::scan::judge::judge(&cat, &Default::default());
                prop_assert_eq!(judged.stale.len(), cat.instance_count());
            }
        }
    }
}

/// Any JSON value, nested a few levels, with strings full of quotes, backslashes, brackets and
/// non-ASCII characters.
fn tricky_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[\"\\\\\\[\\]{}a-zé ,:\\n]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map("[a-z\"\\\\{]{0,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    /// The splitter hands over exactly the array's elements, whatever the layout, the sizes of
    /// the reads and the longest element taken whole; a cut answer is an error, never a panic.
    #[test]
    fn json_arrays_split_into_their_elements(
        items in vec(tricky_json(), 0..8),
        pretty in any::<bool>(),
        chunk in 1usize..300,
        max in 1usize..400,
        cut in any::<prop::sample::Index>(),
    ) {
        use consul_doctor::jsonsplit::{for_each_element, Element};
        use serde::Deserialize;
        struct Chunks<'a>(&'a [u8], usize);
        impl std::io::Read for Chunks<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = out.len().min(self.1).min(self.0.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let whole = Value::Array(items.clone());
        let text = if pretty { serde_json::to_string_pretty(&whole).unwrap() } else { whole.to_string() };
        let split = |bytes: &[u8]| {
            let mut got = Vec::new();
            for_each_element(Chunks(bytes, chunk), max, |e| {
                got.push(match e {
                    Element::Slice(b) => serde_json::from_slice(b)?,
                    Element::Stream(r) => {
                        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(r));
                        let v = Value::deserialize(&mut de)?;
                        de.end()?;
                        v
                    }
                });
                Ok(())
            })
            .map(|()| got)
        };
        prop_assert_eq!(split(text.as_bytes()).unwrap(), items);
        let bytes = text.as_bytes();
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert!(split(short).is_err(), "a cut answer is refused: {:?}", String::from_utf8_lossy(short));
    }
}
