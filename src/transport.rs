//! Raw transport probes below the HTTP API: TCP connect, a protocol sniff of the first bytes the
//! port sends back, and TLS handshakes with chosen trust settings.
//!
//! These work on sockets directly (not through the HTTP client) so that refused, timed out,
//! reset, silent, gRPC, plain-HTTP and TLS listeners can be told apart precisely.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Any byte stream the probes can talk over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    Timeout,
    Unreachable(String),
    Reset,
    NotFound,
    PermissionDenied,
    Other(String),
}

impl ConnectFailure {
    pub fn describe(&self) -> String {
        match self {
            ConnectFailure::Refused => "connection refused".into(),
            ConnectFailure::Timeout => "timed out".into(),
            ConnectFailure::Unreachable(e) => format!("unreachable ({e})"),
            ConnectFailure::Reset => "connection reset".into(),
            ConnectFailure::NotFound => "no such file or directory".into(),
            ConnectFailure::PermissionDenied => "permission denied".into(),
            ConnectFailure::Other(e) => e.clone(),
        }
    }

    fn from_io(e: &io::Error) -> Self {
        use io::ErrorKind::*;
        match e.kind() {
            ConnectionRefused => ConnectFailure::Refused,
            TimedOut => ConnectFailure::Timeout,
            ConnectionReset | ConnectionAborted => ConnectFailure::Reset,
            NotFound => ConnectFailure::NotFound,
            PermissionDenied => ConnectFailure::PermissionDenied,
            HostUnreachable | NetworkUnreachable | AddrNotAvailable => ConnectFailure::Unreachable(e.to_string()),
            _ => match e.raw_os_error() {
                Some(101) | Some(113) => ConnectFailure::Unreachable(e.to_string()),
                _ => ConnectFailure::Other(e.to_string()),
            },
        }
    }
}

pub async fn connect_tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectFailure> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Err(ConnectFailure::Timeout),
        Ok(Err(e)) => Err(ConnectFailure::from_io(&e)),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

pub async fn connect_unix(path: &Path, timeout: Duration) -> Result<UnixStream, ConnectFailure> {
    match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Err(_) => Err(ConnectFailure::Timeout),
        Ok(Err(e)) => Err(ConnectFailure::from_io(&e)),
        Ok(Ok(s)) => Ok(s),
    }
}

/// What a port turned out to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniff {
    /// A plain HTTP server answered with this status line.
    Http { status_line: String },
    /// A TLS server (handshake record, alert, or Go's "HTTP request to an HTTPS server" answer).
    Tls { evidence: String },
    /// An HTTP/2 (gRPC) server sent its SETTINGS frame.
    Grpc,
    /// The peer closed or reset the connection without sending anything.
    Closed { how: String },
    /// Nothing came back within the timeout.
    Silent,
    /// Bytes that match no known protocol.
    Unknown { preview: String },
}

const HTTPS_ON_HTTP_BODY: &str = "Client sent an HTTP request to an HTTPS server";

/// Classifies the first bytes a server sent. `end` says how reading ended when `bytes` is empty.
pub fn classify_bytes(bytes: &[u8], end: &ReadEnd) -> Sniff {
    if bytes.is_empty() {
        return match end {
            ReadEnd::Timeout => Sniff::Silent,
            ReadEnd::Eof => Sniff::Closed { how: "closed it without answering (EOF)".into() },
            ReadEnd::Error(e) => Sniff::Closed { how: format!("dropped it ({e})") },
            ReadEnd::Enough => Sniff::Silent,
        };
    }
    if bytes.starts_with(b"HTTP/") {
        let text = String::from_utf8_lossy(bytes);
        if text.contains(HTTPS_ON_HTTP_BODY) {
            return Sniff::Tls { evidence: format!("the server answered: {HTTPS_ON_HTTP_BODY}.") };
        }
        let status_line = text.lines().next().unwrap_or("").trim().to_string();
        return Sniff::Http { status_line };
    }
    if bytes.len() >= 2 && (bytes[0] == 0x15 || bytes[0] == 0x16) && bytes[1] == 0x03 {
        return Sniff::Tls { evidence: "the server sent a TLS record".into() };
    }
    if bytes.len() >= 9 && bytes[3] == 0x04 && bytes[5..9] == [0, 0, 0, 0] {
        return Sniff::Grpc;
    }
    Sniff::Unknown { preview: preview(bytes) }
}

fn preview(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(32)];
    let text_len = head.iter().take_while(|b| b.is_ascii_graphic() || **b == b' ').count();
    if text_len >= 4 {
        format!("{:?}", String::from_utf8_lossy(&head[..text_len]))
    } else {
        head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }
}

/// How a bounded read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    Eof,
    Timeout,
    Error(String),
    Enough,
}

/// Reads until EOF, `limit` bytes, the end of an HTTP head plus a little body, or the timeout.
pub async fn read_some<S: AsyncRead + Unpin>(s: &mut S, limit: usize, timeout: Duration) -> (Vec<u8>, ReadEnd) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return (buf, ReadEnd::Timeout),
            Ok(Ok(0)) => return (buf, ReadEnd::Eof),
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() >= limit {
                    return (buf, ReadEnd::Enough);
                }
                if (!buf.starts_with(b"HTTP/") && buf.len() >= 9) || http_complete(&buf) {
                    return (buf, ReadEnd::Enough);
                }
            }
            Ok(Err(e)) => return (buf, ReadEnd::Error(io_text(&e))),
        }
    }
}

/// True once an HTTP response head and its (small) body have arrived.
fn http_complete(buf: &[u8]) -> bool {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body = buf.len() - head_end - 4;
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(n) => body >= n.min(256),
        None => body > 0,
    }
}

pub fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        io::ErrorKind::BrokenPipe => "broken pipe".into(),
        io::ErrorKind::UnexpectedEof => "unexpected EOF".into(),
        _ => e.to_string(),
    }
}

pub fn http_probe_request(host: &str) -> String {
    format!(
        "GET /v1/status/leader HTTP/1.1\r\nHost: {host}\r\nUser-Agent: consul-doctor/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Sends one plain HTTP request (no token) and classifies what comes back.
pub async fn sniff_plain<S: Io>(s: S, host: &str, timeout: Duration) -> Sniff {
    sniff_plain_answer(s, host, timeout).await.0
}

/// [`sniff_plain`], with the answer itself when it is a complete HTTP response (status line,
/// headers and a body of exactly its Content-Length): the answer to
/// `GET /v1/status/leader` ([`http_probe_request`]).
pub async fn sniff_plain_answer<S: Io>(
    mut s: S,
    host: &str,
    timeout: Duration,
) -> (Sniff, Option<crate::consul::Reply>) {
    let start = Instant::now();
    let deadline = start + timeout;
    if let Err(e) = s.write_all(http_probe_request(host).as_bytes()).await {
        return (Sniff::Closed { how: format!("dropped it ({})", io_text(&e)) }, None);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let (bytes, end) = read_some(&mut s, 1024, left).await;
    let sniff = classify_bytes(&bytes, &end);
    let reply = match &sniff {
        Sniff::Http { .. } => parse_reply(&bytes, start.elapsed()),
        _ => None,
    };
    (sniff, reply)
}

/// A complete HTTP/1.x response with a Content-Length body, as the API client would hand it
/// over; `None` for anything else (chunked, cut short, unparsable).
pub fn parse_reply(bytes: &[u8], elapsed: Duration) -> Option<crate::consul::Reply> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.strip_prefix("HTTP/1.")?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = reqwest::header::HeaderMap::new();
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().ok()?);
        }
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            reqwest::header::HeaderValue::from_str(value).ok()?,
        );
    }
    let body = &bytes[head_end + 4..];
    (length? == body.len()).then(|| crate::consul::Reply { status, headers, body: body.to_vec(), elapsed })
}

/// Performs a TLS handshake that trusts anything, only to learn whether the port speaks TLS.
pub async fn sniff_tls(tcp: TcpStream, server_name: ServerName<'static>, timeout: Duration) -> Sniff {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = Recorder { inner: tcp, seen: seen.clone() };
    let config = Arc::new(insecure_config(None));
    let connector = tokio_rustls::TlsConnector::from(config);
    let result = tokio::time::timeout(timeout, connector.connect(server_name, rec)).await;
    let bytes = seen.lock().map(|g| g.clone()).unwrap_or_default();
    match result {
        Ok(Ok(_)) => Sniff::Tls { evidence: "TLS handshake completed".into() },
        Ok(Err(e)) => {
            if bytes.starts_with(b"HTTP/") {
                return classify_bytes(&bytes, &ReadEnd::Enough);
            }
            if let Some(rustls::Error::AlertReceived(alert)) = rustls_error(&e) {
                return Sniff::Tls { evidence: format!("the server sent TLS alert {alert:?}") };
            }
            if bytes.is_empty() {
                let end =
                    if e.kind() == io::ErrorKind::UnexpectedEof { ReadEnd::Eof } else { ReadEnd::Error(io_text(&e)) };
                return classify_bytes(&bytes, &end);
            }
            match classify_bytes(&bytes, &ReadEnd::Enough) {
                Sniff::Unknown { .. } | Sniff::Tls { .. } => Sniff::Tls { evidence: format!("handshake error: {e}") },
                other => other,
            }
        }
        Err(_) => {
            if bytes.is_empty() {
                Sniff::Silent
            } else {
                classify_bytes(&bytes, &ReadEnd::Enough)
            }
        }
    }
}

/// The rustls error inside an I/O error from tokio-rustls, if any.
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Keeps a copy of the first bytes read, so a failed handshake can still be classified.
struct Recorder<S> {
    inner: S,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let new = &buf.filled()[before..];
            if let Ok(mut seen) = self.seen.lock() {
                let room = 256usize.saturating_sub(seen.len());
                seen.extend_from_slice(&new[..new.len().min(room)]);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client certificate chain and key.
pub type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Builds the TLS client configuration the Consul API client would use.
///
/// `roots: None` means the system trust store (as Go does without `CONSUL_CACERT`);
/// `verify: false` mirrors `CONSUL_HTTP_SSL_VERIFY=false`.
pub fn client_config(
    roots: Option<&[CertificateDer<'static>]>,
    identity: Option<ClientIdentity>,
    verify: bool,
) -> Result<ClientConfig, String> {
    if !verify {
        return Ok(insecure_config(identity));
    }
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match roots {
        Some(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for cert in roots {
                store.add(cert.clone()).map_err(|e| format!("CA certificate rejected: {e}"))?;
            }
            builder.with_root_certificates(store)
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|e| e.to_string())?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        }
    };
    match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client certificate and key do not form a usable pair: {e}")),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// A TLS configuration for clients that only ever speak plain HTTP: building it loads no trust
/// store (reading the system's certificates costs more than a whole diagnosis on loopback).
pub fn plaintext_only_config() -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

fn insecure_config(identity: Option<ClientIdentity>) -> ClientConfig {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)));
    match identity {
        Some((chain, key)) => match builder.clone().with_client_auth_cert(chain, key) {
            Ok(c) => c,
            Err(_) => builder.with_no_client_auth(),
        },
        None => builder.with_no_client_auth(),
    }
}

/// Trusts every certificate; used for the protocol sniff and for `CONSUL_HTTP_SSL_VERIFY=false`.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_probe_answer_is_a_reply_and_anything_else_is_not() {
        let t = Duration::from_millis(1);
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Knownleader: true\r\nContent-Length: 16\r\n\r\n\"127.0.0.1:8300\"";
        let r = parse_reply(ok, t).expect("complete answer");
        assert_eq!((r.status, r.text().as_str()), (200, "\"127.0.0.1:8300\""));
        assert_eq!(r.header("x-consul-knownleader").as_deref(), Some("true"));
        assert!(r.is_json());
        let err = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 16\r\n\r\nNo cluster leader";
        assert!(parse_reply(err, t).is_none(), "a body longer than its Content-Length is not trusted");
        let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n\"127.0";
        assert!(parse_reply(cut, t).is_none());
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n\"127.0.0.1:8300\"\r\n0\r\n\r\n";
        assert!(parse_reply(chunked, t).is_none());
        assert!(parse_reply(b"SSH-2.0-OpenSSH_9.2\r\n", t).is_none());
    }

    #[test]
    fn classifies_first_bytes() {
        let http = classify_bytes(b"HTTP/1.1 200 OK\r\n\r\n\"\"", &ReadEnd::Eof);
        assert!(matches!(http, Sniff::Http { ref status_line } if status_line == "HTTP/1.1 200 OK"));
        let go_tls = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
        assert!(matches!(classify_bytes(go_tls, &ReadEnd::Eof), Sniff::Tls { .. }));
        assert!(matches!(classify_bytes(&[0x15, 0x03, 0x01, 0x00, 0x02], &ReadEnd::Eof), Sniff::Tls { .. }));
        let settings = [0x00, 0x00, 0x0c, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(classify_bytes(&settings, &ReadEnd::Enough), Sniff::Grpc);
        assert_eq!(classify_bytes(b"", &ReadEnd::Timeout), Sniff::Silent);
        assert!(matches!(classify_bytes(b"", &ReadEnd::Eof), Sniff::Closed { .. }));
        assert!(matches!(classify_bytes(b"SSH-2.0-OpenSSH", &ReadEnd::Enough), Sniff::Unknown { .. }));
    }
}
