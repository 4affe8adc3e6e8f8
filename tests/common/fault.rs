//! Loopback TCP fault servers: behaviours a real Consul agent cannot show (silence, resets, a gRPC
//! port, an SSH banner, an HTTP server that trickles, never ends, hangs or dies mid-body).
//!
//! Every server binds `127.0.0.1:0`, serves from background threads and stops when dropped: the drop
//! sets a shared stop flag, connects once to unblock the acceptor, then joins the acceptor and every
//! connection thread. Connection threads poll with ~100 ms socket timeouts, so a drop takes at most
//! a few hundred milliseconds and nothing outlives the test.
//!
//! Only the standard library is used. A TCP RST is produced without `SO_LINGER` (unstable in std)
//! by closing a socket that still has unread data in its receive queue, which makes Linux send a
//! reset instead of a FIN. The HTTP server reads requests with `peek` so that it never consumes more
//! than one request, and for [`Behavior::ResetMidBody`] it deliberately leaves the last request byte
//! unread for exactly that purpose.
#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Socket timeout used by every server thread between checks of the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Largest request head the HTTP server accepts.
const MAX_HEAD: usize = 64 * 1024;
/// How long a server waits for the client's bytes that make a close send an RST.
const RST_WAIT: Duration = Duration::from_secs(1);

/// The HTTP/2 SETTINGS frame a gRPC server sends first (MAX_CONCURRENT_STREAMS=100,
/// INITIAL_WINDOW_SIZE=1 MiB).
pub const HTTP2_SETTINGS: &[u8] = &[
    0x00, 0x00, 0x0c, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x64, 0x00, 0x04, 0x00, 0x10,
    0x00, 0x00,
];

/// A loopback TCP server with one fault behaviour; stops when dropped.
pub struct FaultServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    handlers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    silent: Arc<AtomicBool>,
    open: Arc<OpenConnections>,
}

/// The connections a client holds open: each accepted one until the client closed it (seen by
/// the kernel: the peer's FIN or reset), counted at every accept.
/// Held weakly: the handler's drop still closes (or resets) the socket when the fault says so.
#[derive(Default)]
struct OpenConnections {
    streams: Mutex<Vec<std::sync::Weak<TcpStream>>>,
    most: AtomicUsize,
}

impl OpenConnections {
    fn accepted(&self, stream: &Arc<TcpStream>) {
        let mut open = lock(&self.streams);
        open.retain(|s| s.upgrade().is_some_and(|s| !peer_closed(&s)));
        open.push(Arc::downgrade(stream));
        self.most.fetch_max(open.len(), Ordering::SeqCst);
    }
}

/// Whether the peer closed (or reset) its side, whatever unread data is still queued.
fn peer_closed(s: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// One request received by [`FaultServer::http`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The request target as sent: path with query string.
    pub path: String,
    /// Header names lowercased, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
    /// A `Content-Length` body (its first 64 KiB, as text); empty for chunked bodies.
    pub body: String,
}

impl Recorded {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A route of [`FaultServer::http`]: the first route whose method and path prefix match serves.
#[derive(Clone, Debug)]
pub struct Route {
    /// `None` matches any method.
    pub method: Option<&'static str>,
    /// Matched against the request path without its query string.
    pub path_prefix: String,
    pub response: Response,
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub behavior: Behavior,
    /// A header whose value cycles through a list, one value per response (for example an
    /// `X-Consul-Index` that goes backwards).
    pub cycle: Option<(String, Arc<Vec<String>>, Arc<std::sync::atomic::AtomicUsize>)>,
}

#[derive(Clone, Debug)]
pub enum Behavior {
    /// Status line, headers with Content-Length, body; the connection is kept alive if the client asked.
    Normal,
    /// Send the status line and headers (with Content-Length of the full body), then the body one
    /// byte per `interval` (each byte after one interval).
    Trickle(Duration),
    /// Send headers with Content-Length of the full body, half the body, then reset the connection.
    ResetMidBody,
    /// Send headers with `Transfer-Encoding: chunked`, then chunks of 64 KiB of `x` until the client
    /// disconnects or the server is dropped.
    Endless,
    /// Read the request and never answer.
    Hang,
    /// Read the request and reset the connection without a byte of answer (what an agent does
    /// to connections over `limits.http_max_conns_per_client`).
    ResetBeforeAnswer,
}

impl Response {
    /// A normal response with no headers besides the framing ones.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: Vec::new(), body: body.into(), behavior: Behavior::Normal, cycle: None }
    }
}

impl Route {
    /// A route for any method serving `response`.
    pub fn new(path_prefix: &str, response: Response) -> Route {
        Route { method: None, path_prefix: path_prefix.to_string(), response }
    }

    /// `Content-Type: application/json`.
    pub fn json(path_prefix: &str, status: u16, body: &str) -> Route {
        Route::new(path_prefix, Response::new(status, body)).with_header("Content-Type", "application/json")
    }

    /// `Content-Type: text/plain; charset=utf-8`.
    pub fn text(path_prefix: &str, status: u16, body: &str) -> Route {
        Route::new(path_prefix, Response::new(status, body)).with_header("Content-Type", "text/plain; charset=utf-8")
    }

    /// `Content-Type: text/html`.
    pub fn html(path_prefix: &str, status: u16, body: &str) -> Route {
        Route::new(path_prefix, Response::new(status, body)).with_header("Content-Type", "text/html")
    }

    /// Match only this method (case-insensitive).
    pub fn with_method(mut self, m: &'static str) -> Route {
        self.method = Some(m);
        self
    }

    /// Add a response header, replacing one of the same name (case-insensitive). A `Content-Length`
    /// or `Transfer-Encoding` set here replaces the server's own framing header (Normal only).
    pub fn with_header(mut self, name: &str, value: &str) -> Route {
        let headers = &mut self.response.headers;
        match headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(h) => h.1 = value.to_string(),
            None => headers.push((name.to_string(), value.to_string())),
        }
        self
    }

    /// Answer with header `name` set to the next of `values` on each response, round and round.
    pub fn with_header_cycle(mut self, name: &str, values: &[&str]) -> Route {
        let values = values.iter().map(|v| v.to_string()).collect();
        self.response.cycle = Some((name.to_string(), Arc::new(values), Arc::default()));
        self
    }

    pub fn with_behavior(mut self, b: Behavior) -> Route {
        self.response.behavior = b;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.is_none_or(|m| m.eq_ignore_ascii_case(method)) && path.starts_with(self.path_prefix.as_str())
    }
}

enum Mode {
    Silent,
    CloseOnAccept,
    ResetOnData,
    GrpcLike,
    Banner(&'static [u8]),
    Http(Vec<Route>),
}

impl FaultServer {
    /// Accepts connections, reads and discards whatever arrives, never writes, keeps them open until
    /// drop (or until the client closes).
    pub fn silent() -> FaultServer {
        FaultServer::start(Mode::Silent)
    }

    /// Accepts, then closes immediately: the peer sees EOF. The close is a write shutdown (FIN) with
    /// the read side kept draining, so a client that writes first still reads EOF, never a reset.
    pub fn close_on_accept() -> FaultServer {
        FaultServer::start(Mode::CloseOnAccept)
    }

    /// Accepts, waits for the first bytes, reads one byte and closes with the rest unread, which
    /// makes the kernel send a TCP RST: the client sees `ConnectionReset`. (A client that sends a
    /// single byte only gets a FIN, after about a second.)
    pub fn reset_on_data() -> FaultServer {
        FaultServer::start(Mode::ResetOnData)
    }

    /// On connect writes an HTTP/2 SETTINGS frame ([`HTTP2_SETTINGS`]) and closes (FIN), like a gRPC
    /// port answering an HTTP/1.1 or TLS client.
    pub fn grpc_like() -> FaultServer {
        FaultServer::start(Mode::GrpcLike)
    }

    /// Writes `bytes` as soon as a client connects (e.g. `b"SSH-2.0-OpenSSH_9.2p1\r\n"`), then keeps
    /// reading until drop.
    pub fn banner(bytes: &'static [u8]) -> FaultServer {
        FaultServer::start(Mode::Banner(bytes))
    }

    /// A minimal HTTP/1.1 server with keep-alive. Unmatched requests get 404 with an empty body.
    pub fn http(routes: Vec<Route>) -> FaultServer {
        FaultServer::start(Mode::Http(routes))
    }

    /// Like [`FaultServer::http`], on a given loopback port (for servers that appear late).
    pub fn http_on(port: u16, routes: Vec<Route>) -> FaultServer {
        FaultServer::start_on(port, Mode::Http(routes))
    }

    /// From now on the HTTP server reads every request and never answers (an agent that froze).
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Every request the HTTP server received, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.recorded).clone()
    }

    /// The most connections the client held open at once so far (counted at each accept: the
    /// new one and those the client had not closed before it connected).
    pub fn most_open(&self) -> usize {
        self.open.most.load(Ordering::SeqCst)
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn start(mode: Mode) -> FaultServer {
        FaultServer::start_on(0, mode)
    }

    fn start_on(port: u16, mode: Mode) -> FaultServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind a loopback port");
        let addr = listener.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let handlers = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let silent = Arc::new(AtomicBool::new(false));
        let open = Arc::new(OpenConnections::default());
        let ctx = Ctx {
            stop: stop.clone(),
            recorded: recorded.clone(),
            mode: Arc::new(mode),
            silent: silent.clone(),
            open: open.clone(),
        };
        let acceptor = {
            let handlers = handlers.clone();
            thread::Builder::new()
                .name(format!("fault-accept-{}", addr.port()))
                .spawn(move || accept_loop(listener, ctx, handlers))
                .expect("spawn acceptor")
        };
        FaultServer { addr, stop, acceptor: Some(acceptor), handlers, recorded, silent, open }
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock the acceptor, which then sees the flag and returns.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(acceptor) = self.acceptor.take() {
            if woke {
                let _ = acceptor.join();
            }
        }
        let handlers = std::mem::take(&mut *lock(&self.handlers));
        for h in handlers {
            let _ = h.join();
        }
    }
}

#[derive(Clone)]
struct Ctx {
    stop: Arc<AtomicBool>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    mode: Arc<Mode>,
    silent: Arc<AtomicBool>,
    open: Arc<OpenConnections>,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, ctx: Ctx, handlers: Arc<Mutex<Vec<JoinHandle<()>>>>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if ctx.stopped() {
                    return;
                }
                let stream = Arc::new(stream);
                ctx.open.accepted(&stream);
                let conn_ctx = ctx.clone();
                let spawned = thread::Builder::new().name("fault-conn".into()).spawn(move || handle(stream, &conn_ctx));
                let mut hs = lock(&handlers);
                hs.retain(|h| !h.is_finished());
                if let Ok(h) = spawned {
                    hs.push(h);
                }
            }
            Err(_) => {
                if ctx.stopped() {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn handle(stream: Arc<TcpStream>, ctx: &Ctx) {
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(POLL));
    let _ = stream.set_nodelay(true);
    match &*ctx.mode {
        Mode::Silent => drain(&stream, ctx),
        Mode::CloseOnAccept => close_gracefully(&stream, ctx),
        Mode::ResetOnData => {
            let mut one = [0u8; 1];
            if let Ok(1) = read_poll(&stream, &mut one, ctx) {
                await_unread(&stream, ctx); // dropping `stream` below then sends the RST
            }
        }
        Mode::GrpcLike => {
            if write_all_poll(&stream, HTTP2_SETTINGS, ctx).is_ok() {
                close_gracefully(&stream, ctx);
            }
        }
        Mode::Banner(bytes) => {
            if write_all_poll(&stream, bytes, ctx).is_ok() {
                drain(&stream, ctx);
            }
        }
        Mode::Http(routes) => serve_http(&stream, routes, ctx),
    }
}

// ---------------------------------------------------------------------------------------------
// Socket helpers that poll the stop flag

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted)
}

fn stopped_err() -> io::Error {
    io::Error::other("fault server stopped")
}

/// One `read`, retried across timeouts; `Ok(0)` is EOF; an error once the server stops.
fn read_poll(mut s: &TcpStream, buf: &mut [u8], ctx: &Ctx) -> io::Result<usize> {
    loop {
        if ctx.stopped() {
            return Err(stopped_err());
        }
        match s.read(buf) {
            Err(e) if is_timeout(&e) => continue,
            r => return r,
        }
    }
}

/// One `peek`, retried across timeouts (blocks until data, EOF, error or stop).
fn peek_poll(s: &TcpStream, buf: &mut [u8], ctx: &Ctx) -> io::Result<usize> {
    loop {
        if ctx.stopped() {
            return Err(stopped_err());
        }
        match s.peek(buf) {
            Err(e) if is_timeout(&e) => continue,
            r => return r,
        }
    }
}

fn read_exact_poll(s: &TcpStream, mut buf: &mut [u8], ctx: &Ctx) -> io::Result<()> {
    while !buf.is_empty() {
        match read_poll(s, buf, ctx)? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

/// Reads and throws away exactly `n` bytes.
fn discard_poll(s: &TcpStream, mut n: usize, ctx: &Ctx) -> io::Result<()> {
    let mut buf = [0u8; 8192];
    while n > 0 {
        let want = n.min(buf.len());
        match read_poll(s, &mut buf[..want], ctx)? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            got => n -= got,
        }
    }
    Ok(())
}

fn collect_poll(s: &TcpStream, n: usize, ctx: &Ctx) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    let mut at = 0;
    while at < n {
        match read_poll(s, &mut out[at..], ctx)? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            got => at += got,
        }
    }
    Ok(out)
}

fn write_all_poll(mut s: &TcpStream, data: &[u8], ctx: &Ctx) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        if ctx.stopped() {
            return Err(stopped_err());
        }
        match s.write(&data[off..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sleeps in short slices; false if the server stopped meanwhile.
fn sleep_poll(d: Duration, ctx: &Ctx) -> bool {
    let end = Instant::now() + d;
    loop {
        if ctx.stopped() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Reads and discards until EOF, error or stop.
fn drain(s: &TcpStream, ctx: &Ctx) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = read_poll(s, &mut buf, ctx) {
        if n == 0 {
            return;
        }
    }
}

/// FIN now, then keep reading so that nothing the client still sends turns the close into an RST.
fn close_gracefully(s: &TcpStream, ctx: &Ctx) {
    let _ = s.shutdown(Shutdown::Write);
    drain(s, ctx);
}

/// Prepares a close by TCP RST: waits (at most [`RST_WAIT`]) until unread data sits in the receive
/// queue. The caller then drops the socket, and Linux answers a close with unread data by a reset.
fn await_unread(s: &TcpStream, ctx: &Ctx) {
    let deadline = Instant::now() + RST_WAIT;
    let mut one = [0u8; 1];
    while !ctx.stopped() && Instant::now() < deadline {
        match s.peek(&mut one) {
            Err(e) if is_timeout(&e) => continue,
            _ => break, // data waiting (what we want), EOF or error
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1

struct Request {
    method: String,
    target: String,
    keep_alive: bool,
    headers: Vec<(String, String)>,
    body: BodyFraming,
}

enum BodyFraming {
    Length(usize),
    Chunked,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Locates the next request head with `peek`, consuming only bytes known to belong to it.
/// Returns the whole head (through `\r\n\r\n`) and how many of its bytes were consumed; `None` on a
/// clean EOF before any byte.
fn peek_head(s: &TcpStream, ctx: &Ctx) -> io::Result<Option<(Vec<u8>, usize)>> {
    let mut consumed: Vec<u8> = Vec::new();
    let mut peeked = vec![0u8; MAX_HEAD + 4];
    loop {
        let n = peek_poll(s, &mut peeked, ctx)?;
        if n == 0 {
            return if consumed.is_empty() { Ok(None) } else { Err(ErrorKind::UnexpectedEof.into()) };
        }
        let mut combined = consumed.clone();
        combined.extend_from_slice(&peeked[..n]);
        let from = consumed.len().saturating_sub(3);
        if let Some(p) = find(&combined[from..], b"\r\n\r\n") {
            combined.truncate(from + p + 4);
            return Ok(Some((combined, consumed.len())));
        }
        if combined.len() > MAX_HEAD {
            return Err(io::Error::new(ErrorKind::InvalidData, "request head over 64 KiB"));
        }
        // No end of head yet: everything peeked is head, consume it so the next peek waits for more.
        read_exact_poll(s, &mut peeked[..n], ctx)?;
        consumed.extend_from_slice(&peeked[..n]);
    }
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ').filter(|p| !p.is_empty());
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let tokens = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
            .collect()
    };
    let connection = tokens("connection");
    let keep_alive = if version == "HTTP/1.0" {
        connection.iter().any(|t| t == "keep-alive")
    } else {
        !connection.iter().any(|t| t == "close")
    };
    let body = if tokens("transfer-encoding").iter().any(|t| t == "chunked") {
        BodyFraming::Chunked
    } else {
        let len = headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse::<usize>());
        match len {
            Some(Ok(n)) => BodyFraming::Length(n),
            Some(Err(_)) => return None,
            None => BodyFraming::Length(0),
        }
    };
    Some(Request { method: method.to_string(), target: target.to_string(), keep_alive, headers, body })
}

/// Reads one CRLF-terminated line byte by byte (chunked framing only), without the CRLF.
fn read_line_poll(s: &TcpStream, ctx: &Ctx) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        read_exact_poll(s, &mut b, ctx)?;
        if b[0] == b'\n' {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        if line.len() > 8192 {
            return Err(io::Error::new(ErrorKind::InvalidData, "chunk line too long"));
        }
        line.push(b[0]);
    }
}

/// Consumes a chunked request body; with `hold_back`, leaves its very last byte unread.
fn consume_chunked(s: &TcpStream, hold_back: bool, ctx: &Ctx) -> io::Result<()> {
    loop {
        let line = read_line_poll(s, ctx)?;
        let size_text = String::from_utf8_lossy(&line);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            break;
        }
        discard_poll(s, size + 2, ctx)?;
    }
    // Trailer section: lines until an empty one.
    let mut b = [0u8; 1];
    loop {
        read_exact_poll(s, &mut b, ctx)?;
        if b[0] == b'\r' {
            // The final empty line: its '\n' is the last byte of the request.
            return if hold_back { Ok(()) } else { read_exact_poll(s, &mut b, ctx) };
        }
        if b[0] != b'\n' {
            read_line_poll(s, ctx)?;
        }
    }
}

fn response_head(resp: &Response, framing: Option<&str>, close: bool) -> Vec<u8> {
    let is_framing = |n: &str| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding");
    // A framing header set on the route replaces ours for Normal; other behaviours own the framing.
    let normal = matches!(resp.behavior, Behavior::Normal);
    let user_framing = normal && resp.headers.iter().any(|(n, _)| is_framing(n));
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (n, v) in resp.headers.iter().filter(|(n, _)| normal || !is_framing(n)) {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(f) = framing.filter(|_| !user_framing) {
        head.push_str(f);
        head.push_str("\r\n");
    }
    if let Some((name, values, next)) = &resp.cycle {
        let n = next.fetch_add(1, Ordering::SeqCst);
        head.push_str(&format!("{name}: {}\r\n", values[n % values.len()]));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn serve_http(s: &TcpStream, routes: &[Route], ctx: &Ctx) {
    let not_found = Response::new(404, Vec::new());
    loop {
        let (head, consumed) = match peek_head(s, ctx) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                if e.kind() == ErrorKind::InvalidData {
                    let bad = Response::new(431, Vec::new());
                    let _ = write_all_poll(s, &response_head(&bad, Some("Content-Length: 0"), true), ctx);
                    close_gracefully(s, ctx);
                }
                return;
            }
        };
        let Some(req) = parse_head(&head) else {
            let bad = Response::new(400, Vec::new());
            let _ = discard_poll(s, head.len() - consumed, ctx);
            let _ = write_all_poll(s, &response_head(&bad, Some("Content-Length: 0"), true), ctx);
            close_gracefully(s, ctx);
            return;
        };

        let path = {
            // Absolute-form targets (through a proxy) are matched on their path.
            let t = req.target.as_str();
            let t = match t.strip_prefix("http://").or_else(|| t.strip_prefix("https://")) {
                Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
                None => t,
            };
            t.split(['?', '#']).next().unwrap_or("").to_string()
        };
        let resp = routes.iter().find(|r| r.matches(&req.method, &path)).map_or(&not_found, |r| &r.response);
        let hold_back = matches!(resp.behavior, Behavior::ResetMidBody | Behavior::ResetBeforeAnswer);

        // Consume the rest of the request (leaving its last byte unread when an RST is planned).
        let rest_of_head = head.len() - consumed;
        let mut body = Vec::new();
        let consumed_ok = match req.body {
            BodyFraming::Length(n) if !hold_back => discard_poll(s, rest_of_head, ctx).and_then(|()| {
                body = collect_poll(s, n.min(64 * 1024), ctx)?;
                discard_poll(s, n - n.min(64 * 1024), ctx)
            }),
            BodyFraming::Length(n) => discard_poll(s, rest_of_head + n - usize::from(hold_back), ctx),
            BodyFraming::Chunked => {
                discard_poll(s, rest_of_head, ctx).and_then(|()| consume_chunked(s, hold_back, ctx))
            }
        };
        lock(&ctx.recorded).push(Recorded {
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if consumed_ok.is_err() {
            return;
        }
        if ctx.silent.load(Ordering::SeqCst) {
            drain(s, ctx);
            return;
        }

        let is_head = req.method.eq_ignore_ascii_case("HEAD");
        let no_body_status = resp.status < 200 || resp.status == 204;
        let length = format!("Content-Length: {}", resp.body.len());
        match &resp.behavior {
            Behavior::Normal => {
                let close = !req.keep_alive;
                let framing = if no_body_status { None } else { Some(length.as_str()) };
                let mut out = response_head(resp, framing, close);
                if !is_head && !no_body_status {
                    out.extend_from_slice(&resp.body);
                }
                if write_all_poll(s, &out, ctx).is_err() {
                    return;
                }
                if close {
                    close_gracefully(s, ctx);
                    return;
                }
            }
            Behavior::Trickle(interval) => {
                if write_all_poll(s, &response_head(resp, Some(&length), true), ctx).is_err() {
                    return;
                }
                if !is_head {
                    for b in &resp.body {
                        if !sleep_poll(*interval, ctx) || write_all_poll(s, std::slice::from_ref(b), ctx).is_err() {
                            return;
                        }
                    }
                }
                close_gracefully(s, ctx);
                return;
            }
            Behavior::ResetMidBody => {
                let mut out = response_head(resp, Some(&length), true);
                out.extend_from_slice(&resp.body[..resp.body.len() / 2]);
                if write_all_poll(s, &out, ctx).is_err() {
                    return;
                }
                // Give loopback a moment to deliver the half body before the reset discards queues.
                sleep_poll(Duration::from_millis(30), ctx);
                // The held-back request byte is unread, so the caller's drop of the socket is an RST.
                await_unread(s, ctx);
                return;
            }
            Behavior::Endless => {
                if write_all_poll(s, &response_head(resp, Some("Transfer-Encoding: chunked"), true), ctx).is_err() {
                    return;
                }
                let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
                chunk.extend(std::iter::repeat_n(b'x', 64 * 1024));
                chunk.extend_from_slice(b"\r\n");
                while write_all_poll(s, &chunk, ctx).is_ok() {}
                return;
            }
            Behavior::Hang => {
                drain(s, ctx);
                return;
            }
            Behavior::ResetBeforeAnswer => {
                await_unread(s, ctx);
                return;
            }
        }
    }
}
