//! The Consul HTTP API client: typed calls over one reqwest client, one error enum.
//!
//! Every request has the per-step timeout, bodies are capped, redirects are not followed (Consul
//! never redirects API calls; a redirect means something else answered) and proxies from the
//! environment are not used (the config stage warns about them instead).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, USER_AGENT};
use serde::de::DeserializeOwned;

use crate::connection::{Connection, Target};

/// Largest response body read; anything bigger is reported, not buffered.
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// Largest body decoded while streaming (catalog-sized lists): memory follows the decoded
/// entries, not the body, so this only bounds the time spent.
pub const MAX_STREAMED_BODY: usize = 1024 * 1024 * 1024;

/// A response as the doctor needs it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }

    /// The body shortened for messages. Secrets are removed before the cut, so a token the
    /// server echoes can never be left half-redacted by it.
    pub fn snippet(&self) -> String {
        let t = crate::secret::redact(&self.text());
        let mut s: String = t.chars().take(200).collect();
        if t.chars().count() > 200 {
            s.push('…');
        }
        s
    }

    /// The body decoded, every string clipped to [`crate::jsonclip::MAX_STRING`] bytes.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        crate::jsonclip::from_slice(&self.body).map_err(|e| e.to_string())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|c| c.contains("json"))
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFailure {
    /// The connection could not be opened.
    Connect(String),
    /// No complete response within the timeout (headers or body).
    Timeout,
    /// The connection broke mid-response (reset, truncated body).
    Broken(String),
    /// The body exceeded [`MAX_BODY`].
    TooLarge,
    /// Anything else reqwest reports (TLS errors included).
    Other(String),
}

impl HttpFailure {
    /// The agent closed or reset the connection before sending any answer: what an agent does
    /// to connections over its `limits.http_max_conns_per_client`.
    pub fn reset_before_answer(&self) -> bool {
        match self {
            HttpFailure::Broken(e) | HttpFailure::Connect(e) | HttpFailure::Other(e) => {
                let e = e.to_ascii_lowercase();
                e.contains("connection reset") || e.contains("closed before message completed")
            }
            _ => false,
        }
    }

    pub fn describe(&self, timeout: Duration) -> String {
        if self.reset_before_answer() {
            let text = match self {
                HttpFailure::Broken(e) | HttpFailure::Connect(e) | HttpFailure::Other(e) => e.as_str(),
                _ => "",
            };
            return format!(
                "the agent closed the connection without answering ({text}); the likely cause is the agent's per-client connection limit (limits {{ http_max_conns_per_client }}, default 200) used up by other processes on this host — the doctor itself keeps at most {MAX_IN_FLIGHT} connections"
            );
        }
        match self {
            HttpFailure::Connect(e) => format!("connection failed: {e}"),
            HttpFailure::Timeout => {
                format!("no complete response within {}", crate::duration::format_go(timeout.as_nanos() as i64))
            }
            HttpFailure::Broken(e) => format!("response cut off: {e}"),
            HttpFailure::TooLarge => {
                format!("response larger than {} MiB", MAX_BODY / (1024 * 1024))
            }
            HttpFailure::Other(e) => e.clone(),
        }
    }
}

fn classify(e: &reqwest::Error) -> HttpFailure {
    let chain = error_chain(e);
    if e.is_timeout() {
        return HttpFailure::Timeout;
    }
    if e.is_connect() {
        return HttpFailure::Connect(chain);
    }
    if e.is_body() || e.is_decode() || chain.contains("connection reset") || chain.contains("connection closed") {
        return HttpFailure::Broken(chain);
    }
    HttpFailure::Other(chain)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Bodies up to this size are decoded as one slice once they are in, without a decoder thread.
const INLINE_DECODE: usize = 64 * 1024;

/// Most requests in flight to the agent at once. Agents may limit connections per client IP
/// (`limits { http_max_conns_per_client }`, often set low in production); the doctor stays
/// within two keep-alive connections, reused for every request.
pub const MAX_IN_FLIGHT: usize = 2;

/// The namespace, admin partition and peer a run is about (Consul Enterprise namespaces and
/// partitions, cluster peering). The client carries them on every request whose handler reads
/// them, and on every `/v1/internal/acl/authorize` item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub namespace: Option<String>,
    pub partition: Option<String>,
    pub peer: Option<String>,
}

impl Scope {
    pub fn is_empty(&self) -> bool {
        self.namespace.is_none() && self.partition.is_none() && self.peer.is_none()
    }

    /// The query parameters for `path`: `ns`/`partition` where the catalog, health and local
    /// agent service handlers read them (`agent/http_ent.go` parseEntMeta), `peer` on the health
    /// and catalog reads of one service (`agent/health_endpoint.go`, `catalog_endpoint.go`).
    pub fn query_for(&self, path: &str) -> String {
        let bare = path.split('?').next().unwrap_or(path);
        let entity = ["/v1/catalog/", "/v1/health/", "/v1/agent/service", "/v1/agent/check", "/v1/internal/ui/"]
            .iter()
            .any(|p| bare.starts_with(p));
        let peered = ["/v1/health/service/", "/v1/catalog/service/"].iter().any(|p| bare.starts_with(p));
        let mut q = Vec::new();
        if entity {
            if let Some(ns) = &self.namespace {
                q.push(format!("{}={}", crate::consul_facts::NAMESPACE_PARAM, urlencode(ns)));
            }
            if let Some(p) = &self.partition {
                q.push(format!("{}={}", crate::consul_facts::PARTITION_PARAM, urlencode(p)));
            }
        }
        if peered {
            if let Some(p) = &self.peer {
                q.push(format!("{}={}", crate::consul_facts::PEER_PARAM, urlencode(p)));
            }
        }
        q.join("&")
    }

    /// `path` with the scope's parameters appended.
    pub fn apply(&self, path: &str) -> String {
        let q = self.query_for(path);
        match (q.is_empty(), path.contains('?')) {
            (true, _) => path.to_string(),
            (false, true) => format!("{path}&{q}"),
            (false, false) => format!("{path}?{q}"),
        }
    }

    /// Adds `Namespace`/`Partition` to every item of an authorize body that names neither
    /// (each item is evaluated in its own namespace and partition: `agent/acl_endpoint.go`).
    pub fn authorize_items(&self, body: &serde_json::Value) -> serde_json::Value {
        let mut body = body.clone();
        if let Some(items) = body.as_array_mut() {
            for item in items.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                if let Some(ns) = &self.namespace {
                    item.entry("Namespace").or_insert_with(|| ns.clone().into());
                }
                if let Some(p) = &self.partition {
                    item.entry("Partition").or_insert_with(|| p.clone().into());
                }
            }
        }
        body
    }
}

/// A client bound to one agent.
pub struct ConsulClient {
    client: reqwest::Client,
    in_flight: tokio::sync::Semaphore,
    base: String,
    /// CONSUL_HTTP_AUTH, split into user and password, sent as HTTP Basic auth like the Go client.
    basic_auth: Option<(String, Option<String>)>,
    pub timeout: Duration,
    /// Requests sent so far (answered or not), for commands that report how many they made.
    requests: std::sync::atomic::AtomicU64,
    /// Set once the agent's edition and version are known (the api stage): never sent to an
    /// agent that cannot take it.
    scope: std::sync::OnceLock<Scope>,
    /// An answer said `X-Consul-Results-Filtered-By-ACLs: true` (1.11+): ACLs shortened a list.
    filtered: std::sync::atomic::AtomicBool,
}

/// Decodes a streamed answer's body. The body is handed over as it arrives: a decoder must
/// bound what it keeps of any one string itself ([`decode_serde`] clips them all).
pub type Decoder<T> = std::sync::Arc<dyn Fn(&mut (dyn std::io::Read + Send)) -> serde_json::Result<T> + Send + Sync>;

/// Decodes a whole body already in memory (every string clipped, as [`Decoder`]s do).
pub type WholeDecoder<T> = fn(&[u8]) -> serde_json::Result<T>;

/// serde's own decoding with every string clipped ([`crate::jsonclip`]), through a buffer
/// (serde_json reads a reader a byte at a time).
pub fn decode_serde<T: DeserializeOwned>(r: &mut (dyn std::io::Read + Send)) -> serde_json::Result<T> {
    serde_json::from_reader(std::io::BufReader::with_capacity(64 * 1024, crate::jsonclip::ClipStrings::new(r)))
}

impl ConsulClient {
    /// Builds the client for a connection, pinned to the addresses the tcp stage reached.
    pub fn new(
        conn: &Connection,
        http_auth: Option<&crate::secret::Secret>,
        addrs: &[SocketAddr],
        timeout: Duration,
    ) -> Result<ConsulClient, String> {
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("consul-doctor/", env!("CARGO_PKG_VERSION"))));
        if let Some(token) = &conn.token {
            let mut v = HeaderValue::from_str(token.expose())
                .map_err(|_| "the ACL token contains characters not allowed in an HTTP header".to_string())?;
            v.set_sensitive(true);
            headers.insert("X-Consul-Token", v);
        }
        let mut b = reqwest::Client::builder()
            .default_headers(headers)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .http1_only()
            .connect_timeout(timeout)
            .timeout(timeout)
            .pool_max_idle_per_host(MAX_IN_FLIGHT);
        let base = match &conn.target {
            Target::Unix { path } => {
                b = b.unix_socket(path.clone()).tls_backend_preconfigured(crate::transport::plaintext_only_config());
                "http://localhost".to_string()
            }
            Target::Tcp { scheme, host, port, path_prefix } => {
                b = match &conn.tls {
                    Some(tls) => b.tls_backend_preconfigured((*tls.config).clone()),
                    None => b.tls_backend_preconfigured(crate::transport::plaintext_only_config()),
                };
                let url_host = match &conn.tls {
                    Some(tls) => tls.server_name_host.clone(),
                    None => host.clone(),
                };
                let is_ip = url_host.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok();
                if !is_ip && !addrs.is_empty() {
                    b = b.resolve_to_addrs(&url_host, addrs);
                }
                let url_host = if url_host.contains(':') && !url_host.starts_with('[') {
                    format!("[{url_host}]")
                } else {
                    url_host
                };
                // An IP literal host whose server name differs is pinned via the resolve above
                // when a server name is configured; otherwise the host is the IP itself.
                format!("{}://{}:{}{}", scheme.as_str(), url_host, port, path_prefix)
            }
        };
        let client = b.build().map_err(|e| error_chain(&e))?;
        let basic_auth = http_auth.map(|a| match a.expose().split_once(':') {
            Some((user, password)) => (user.to_string(), Some(password.to_string())),
            None => (a.expose().to_string(), None),
        });
        Ok(ConsulClient {
            client,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            base,
            basic_auth,
            timeout,
            requests: std::sync::atomic::AtomicU64::new(0),
            scope: std::sync::OnceLock::new(),
            filtered: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The URL of `path`, with the run's scope where the handler reads it.
    pub fn url(&self, path: &str) -> String {
        match self.scope.get() {
            Some(scope) => format!("{}{}", self.base, scope.apply(path)),
            None => format!("{}{}", self.base, path),
        }
    }

    /// Sets the run's scope (once; later calls are ignored).
    pub fn set_scope(&self, scope: Scope) {
        if !scope.is_empty() {
            let _ = self.scope.set(scope);
        }
    }

    /// Whether any answer so far said ACLs filtered it (`X-Consul-Results-Filtered-By-ACLs`,
    /// 1.11+; older agents never say, so `false` proves nothing there).
    pub fn saw_filtered_results(&self) -> bool {
        self.filtered.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn note_filtered(&self, headers: &HeaderMap) {
        let filtered = headers
            .get(crate::consul_facts::FILTERED_BY_ACLS_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if filtered {
            self.filtered.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn scope(&self) -> Scope {
        self.scope.get().cloned().unwrap_or_default()
    }

    /// How many requests this client has sent.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub async fn get(&self, path: &str) -> Result<Reply, HttpFailure> {
        let url = self.url(path);
        self.send("GET", &url, self.authed(self.client.get(&url))).await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<Reply, HttpFailure> {
        self.post_json_as(path, body, None).await
    }

    /// POSTs JSON, optionally with another token than the client's (a service's own token).
    pub async fn post_json_as(
        &self,
        path: &str,
        body: &serde_json::Value,
        token: Option<&crate::secret::Secret>,
    ) -> Result<Reply, HttpFailure> {
        let url = self.url(path);
        let scoped;
        let body = match self.scope.get() {
            Some(scope) if path.starts_with("/v1/internal/acl/authorize") => {
                scoped = scope.authorize_items(body);
                &scoped
            }
            _ => body,
        };
        let mut req =
            self.authed(self.client.post(&url)).header("Content-Type", "application/json").body(body.to_string());
        if let Some(t) = token {
            let mut v = HeaderValue::from_str(t.expose())
                .map_err(|_| HttpFailure::Other("the service's token is not a valid header value".into()))?;
            v.set_sensitive(true);
            req = req.header("X-Consul-Token", v);
        }
        self.send("POST", &url, req).await
    }

    /// PUTs a JSON body (or none). Only the flagged writes use it (`check --probe-register`).
    pub async fn put_json(&self, path: &str, body: Option<&serde_json::Value>) -> Result<Reply, HttpFailure> {
        let url = self.url(path);
        let mut req = self.authed(self.client.put(&url));
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        self.send("PUT", &url, req).await
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.basic_auth {
            Some((user, password)) => req.basic_auth(user, password.as_ref()),
            None => req,
        }
    }

    /// GETs a possibly huge JSON list and decodes it while it streams in, so memory holds only
    /// the decoded values. A non-200 answer, or a body that does not decode, comes back as a
    /// `Reply` (with at most the first KiB of the body) for the caller to judge.
    pub async fn get_json_streamed<T>(&self, path: &str) -> Result<Result<T, (Reply, String)>, HttpFailure>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.streamed(path, std::sync::Arc::new(decode_serde::<T>), Some(crate::jsonclip::from_slice::<T>)).await
    }

    /// [`Self::get_json_streamed`] with the caller's own decoder, handed the body as it
    /// streams in.
    pub async fn get_streamed_with<T>(
        &self,
        path: &str,
        decode: Decoder<T>,
    ) -> Result<Result<T, (Reply, String)>, HttpFailure>
    where
        T: Send + 'static,
    {
        self.streamed(path, decode, None).await
    }

    /// The streamed read of both: `whole` decodes a body that arrived within the first chunks
    /// at once, without a decoder thread (`decode` then reads it from a slice when there is none).
    async fn streamed<T>(
        &self,
        path: &str,
        decode: Decoder<T>,
        whole: Option<WholeDecoder<T>>,
    ) -> Result<Result<T, (Reply, String)>, HttpFailure>
    where
        T: Send + 'static,
    {
        let url = self.url(path);
        let start = Instant::now();
        let result = match self.stream_decode::<T>(&url, start, None, decode, whole).await {
            Ok(Ok((v, _))) => Ok(Ok(v)),
            Ok(Err(e)) => Ok(Err(e)),
            Err(f) => Err(f),
        };
        self.log_streamed(&url, start, result.as_ref().map(|r| r.as_ref().map(|_| ()).map_err(|(r, e)| (r, e))));
        result
    }

    /// [`Self::get_json_streamed`] for a blocking query: this request's own `timeout` (longer
    /// than its `wait`) instead of the client's, and the answer's headers (`X-Consul-Index`).
    pub async fn get_json_streamed_within<T>(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<Result<(T, HeaderMap), (Reply, String)>, HttpFailure>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let url = self.url(path);
        let start = Instant::now();
        let result = self
            .stream_decode::<T>(
                &url,
                start,
                Some(timeout),
                std::sync::Arc::new(decode_serde::<T>),
                Some(crate::jsonclip::from_slice::<T>),
            )
            .await;
        self.log_streamed(&url, start, result.as_ref().map(|r| r.as_ref().map(|_| ()).map_err(|(r, e)| (r, e))));
        result
    }

    fn log_streamed(&self, url: &str, start: Instant, result: Result<Result<(), (&Reply, &String)>, &HttpFailure>) {
        match &result {
            Ok(Ok(_)) => crate::log::debug(format!(
                "GET {url} -> 200 (decoded while streaming) in {} ms",
                start.elapsed().as_millis()
            )),
            Ok(Err((r, e))) => {
                crate::log::debug(format!("GET {url} -> {} in {} ms: {e}", r.status, start.elapsed().as_millis()))
            }
            Err(e) => crate::log::debug(format!(
                "GET {url} -> {} after {} ms",
                e.describe(self.timeout),
                start.elapsed().as_millis()
            )),
        }
    }

    async fn stream_decode<T>(
        &self,
        url: &str,
        start: Instant,
        timeout: Option<Duration>,
        decode: Decoder<T>,
        whole: Option<WholeDecoder<T>>,
    ) -> Result<Result<(T, HeaderMap), (Reply, String)>, HttpFailure>
    where
        T: Send + 'static,
    {
        let _permit = self.in_flight.acquire().await.map_err(|_| HttpFailure::Other("client closed".into()))?;
        let build = || {
            let req = self.authed(self.client.get(url));
            match timeout {
                Some(t) => req.timeout(t),
                None => req,
            }
        };
        self.count();
        let mut resp = match build().send().await.map_err(|e| classify(&e)) {
            Err(f) if f.reset_before_answer() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.count();
                build().send().await.map_err(|e| classify(&e))?
            }
            other => other?,
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.note_filtered(&headers);
        if status != 200 {
            let body = read_capped(resp).await?;
            let reply = Reply { status, headers, body, elapsed: start.elapsed() };
            return Ok(Err((reply, String::new())));
        }
        // A body that ends within the first chunks (most answers) is decoded here, without a
        // decoder thread; a longer one streams through one, so memory never holds the body.
        let mut first: Vec<bytes_chunk::Chunk> = Vec::new();
        let mut total = 0usize;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    total += chunk.len();
                    first.push(chunk);
                    if total > INLINE_DECODE {
                        break;
                    }
                }
                Ok(None) => {
                    let body: Vec<u8> = first.concat();
                    let decoded = match whole {
                        Some(whole) => whole(&body),
                        None => decode(&mut &body[..]),
                    };
                    return Ok(match decoded {
                        Ok(v) => Ok((v, headers)),
                        Err(e) => {
                            let head = body[..body.len().min(1024)].to_vec();
                            Err((Reply { status, headers, body: head, elapsed: start.elapsed() }, e.to_string()))
                        }
                    });
                }
                Err(e) => return Err(broken(&e)),
            }
        }
        // A few chunks in flight (hyper hands over up to about 400 KiB at a time).
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes_chunk::Chunk>(3);
        let decoder = tokio::task::spawn_blocking(move || {
            // Strings are clipped as they stream past, so memory follows the number of values
            // decoded, never the length of one of them.
            decode(&mut bytes_chunk::ChannelReader::new(rx))
        });
        let mut head = Vec::new();
        let mut failure = None;
        let mut early = first.into_iter();
        loop {
            let next = match early.next() {
                Some(chunk) => Ok(Some(chunk)),
                None => resp.chunk().await.inspect(|c| total += c.as_ref().map_or(0, |c| c.len())),
            };
            match next {
                Ok(Some(chunk)) => {
                    if head.len() < 1024 {
                        head.extend_from_slice(&chunk[..chunk.len().min(1024 - head.len())]);
                    }
                    if total > MAX_STREAMED_BODY {
                        failure = Some(HttpFailure::TooLarge);
                        break;
                    }
                    if tx.send(chunk).await.is_err() {
                        break; // the decoder stopped early: a syntax error, judged below
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(broken(&e));
                    break;
                }
            }
        }
        drop(tx);
        let decoded = decoder.await.map_err(|e| HttpFailure::Other(format!("decoder stopped: {e}")))?;
        if let Some(f) = failure {
            return Err(f);
        }
        match decoded {
            Ok(v) => Ok(Ok((v, headers))),
            Err(e) => Ok(Err((Reply { status, headers, body: head, elapsed: start.elapsed() }, e.to_string()))),
        }
    }

    async fn send(&self, method: &str, url: &str, req: reqwest::RequestBuilder) -> Result<Reply, HttpFailure> {
        let start = Instant::now();
        let _permit = self.in_flight.acquire().await.map_err(|_| HttpFailure::Other("client closed".into()))?;
        // A read the agent reset before answering is asked once more, on a fresh connection: a
        // per-client connection limit drops connections it has not yet seen closed.
        let retry = if method == "GET" || url.ends_with("/v1/internal/acl/authorize") { req.try_clone() } else { None };
        let mut result = self.exchange(req).await;
        if let (Err(f), Some(again)) = (&result, retry) {
            if f.reset_before_answer() {
                crate::log::debug(format!("{method} {url}: {}; asking once more", f.describe(self.timeout)));
                tokio::time::sleep(Duration::from_millis(50)).await;
                result = self.exchange(again).await;
            }
        }
        match &result {
            Ok(r) => crate::log::debug(format!(
                "{method} {url} -> {} ({} bytes) in {} ms",
                r.status,
                r.body.len(),
                r.elapsed.as_millis()
            )),
            Err(e) => crate::log::debug(format!(
                "{method} {url} -> {} after {} ms",
                e.describe(self.timeout),
                start.elapsed().as_millis()
            )),
        }
        result
    }

    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<Reply, HttpFailure> {
        let start = Instant::now();
        self.count();
        let resp = req.send().await.map_err(|e| classify(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.note_filtered(&headers);
        let body = read_capped(resp).await?;
        Ok(Reply { status, headers, body, elapsed: start.elapsed() })
    }
}

/// Shared handle stored in the run's facts.
pub type SharedClient = Arc<ConsulClient>;

/// `?dc=` suffix for calls that honour `--datacenter`.
pub fn dc_query(dc: Option<&str>) -> String {
    match dc {
        Some(dc) => format!("?dc={}", urlencode(dc)),
        None => String::new(),
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a whole body, refusing more than [`MAX_BODY`].
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, HttpFailure> {
    if resp.content_length().is_some_and(|n| n as usize > MAX_BODY) {
        return Err(HttpFailure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| broken(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HttpFailure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn broken(e: &reqwest::Error) -> HttpFailure {
    match classify(e) {
        HttpFailure::Timeout => HttpFailure::Timeout,
        HttpFailure::Other(t) | HttpFailure::Connect(t) => HttpFailure::Broken(t),
        other => other,
    }
}

/// A blocking `Read` over body chunks arriving on a channel, for serde_json's streaming decoder.
mod bytes_chunk {
    use std::io::Read;

    pub type Chunk = bytes::Bytes;

    pub struct ChannelReader {
        rx: tokio::sync::mpsc::Receiver<Chunk>,
        current: Chunk,
    }

    impl ChannelReader {
        pub fn new(rx: tokio::sync::mpsc::Receiver<Chunk>) -> Self {
            ChannelReader { rx, current: Chunk::new() }
        }
    }

    impl Read for ChannelReader {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            while self.current.is_empty() {
                match self.rx.blocking_recv() {
                    Some(chunk) => self.current = chunk,
                    None => return Ok(0),
                }
            }
            let n = buf.len().min(self.current.len());
            buf[..n].copy_from_slice(&self.current.split_to(n));
            Ok(n)
        }
    }
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn scope_goes_where_the_handlers_read_it() {
        let s = Scope { namespace: Some("team a".into()), partition: Some("p1".into()), peer: Some("dc2".into()) };
        assert_eq!(
            s.apply("/v1/health/service/web?dc=dc1"),
            "/v1/health/service/web?dc=dc1&ns=team%20a&partition=p1&peer=dc2"
        );
        assert_eq!(s.apply("/v1/agent/services"), "/v1/agent/services?ns=team%20a&partition=p1");
        assert_eq!(s.apply("/v1/catalog/services"), "/v1/catalog/services?ns=team%20a&partition=p1");
        // Status, agent/self and ACL reads take no namespace.
        assert_eq!(s.apply("/v1/status/leader"), "/v1/status/leader");
        assert_eq!(s.apply("/v1/agent/self"), "/v1/agent/self");
        assert_eq!(s.apply("/v1/acl/token/self"), "/v1/acl/token/self");
        assert_eq!(Scope::default().apply("/v1/health/service/web"), "/v1/health/service/web");
    }

    #[test]
    fn authorize_items_carry_namespace_and_partition() {
        let s = Scope { namespace: Some("team-a".into()), partition: Some("p1".into()), peer: None };
        let body = serde_json::json!([{"Resource": "service", "Segment": "web", "Access": "write"}, {"Resource": "node", "Segment": "n", "Access": "read", "Namespace": "other"}]);
        let out = s.authorize_items(&body);
        assert_eq!(out[0]["Namespace"], "team-a");
        assert_eq!(out[0]["Partition"], "p1");
        assert_eq!(out[1]["Namespace"], "other", "an item's own namespace wins");
    }
}
