//! A loopback DNS server (UDP and TCP on one 127.0.0.1 port) for resolver scenarios: silence,
//! SERVFAIL, REFUSED, and an authoritative table with NXDOMAIN and NODATA.
//!
//! Messages are parsed and built by hand: the header, one question, answers that point back to the
//! question name (0xC00C), and an SOA of the made-up zone `test.` in the authority section of
//! negative answers. Everything has TTL 0. The server stops when dropped, like `fault::FaultServer`.
#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(100);

pub const TYPE_A: u16 = 1;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

/// A loopback DNS server; stops when dropped.
pub struct FakeDns {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    handlers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    queries: Arc<Mutex<Vec<(String, u16)>>>,
}

enum Mode {
    Silent,
    Rcode(u8),
    /// Names lowercased without the trailing dot.
    Records(Vec<(String, Vec<IpAddr>)>),
}

#[derive(Clone)]
struct Ctx {
    stop: Arc<AtomicBool>,
    mode: Arc<Mode>,
    queries: Arc<Mutex<Vec<(String, u16)>>>,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl FakeDns {
    /// Receives queries and never answers (UDP and TCP both silent).
    pub fn silent() -> FakeDns {
        FakeDns::start(Mode::Silent)
    }

    /// Answers every query with RCODE SERVFAIL (2), echoing the question.
    pub fn servfail() -> FakeDns {
        FakeDns::start(Mode::Rcode(RCODE_SERVFAIL))
    }

    /// Answers every query with RCODE REFUSED (5), echoing the question.
    pub fn refused() -> FakeDns {
        FakeDns::start(Mode::Rcode(RCODE_REFUSED))
    }

    /// Authoritative answers from a table (names case-insensitive, trailing dot optional): A or AAAA
    /// records of a known name; NODATA (NOERROR, no answers, SOA in authority) for a known name
    /// without records of the asked type; NXDOMAIN with an SOA for any other name. TTL 0.
    pub fn records(records: Vec<(&str, Vec<IpAddr>)>) -> FakeDns {
        FakeDns::start(Mode::Records(records.into_iter().map(|(n, ips)| (normalize(n), ips)).collect()))
    }

    /// Every question received (UDP and TCP), as (lowercased name without trailing dot, QTYPE).
    pub fn queries(&self) -> Vec<(String, u16)> {
        lock(&self.queries).clone()
    }

    fn start(mode: Mode) -> FakeDns {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let handlers = Arc::new(Mutex::new(Vec::new()));
        let ctx = Ctx { stop: stop.clone(), mode: Arc::new(mode), queries: queries.clone() };
        let udp_thread = {
            let ctx = ctx.clone();
            thread::Builder::new().name("fakedns-udp".into()).spawn(move || udp_loop(udp, &ctx)).expect("spawn")
        };
        let tcp_thread = {
            let handlers = handlers.clone();
            thread::Builder::new()
                .name("fakedns-tcp".into())
                .spawn(move || accept_loop(tcp, ctx, handlers))
                .expect("spawn")
        };
        FakeDns { addr, stop, threads: vec![udp_thread, tcp_thread], handlers, queries }
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        for (i, t) in self.threads.drain(..).enumerate() {
            // Thread 1 is the TCP acceptor: only join it if the wake-up connection got through.
            if i == 0 || woke {
                let _ = t.join();
            }
        }
        let handlers = std::mem::take(&mut *lock(&self.handlers));
        for h in handlers {
            let _ = h.join();
        }
    }
}

/// UDP on 127.0.0.1:0, then TCP on the same port; a new port if that TCP port is taken.
fn bind_pair() -> (UdpSocket, TcpListener) {
    let mut last_err = None;
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().expect("local_addr").port();
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(tcp) => {
                udp.set_read_timeout(Some(POLL)).expect("set_read_timeout");
                return (udp, tcp);
            }
            Err(e) => last_err = Some(e),
        }
    }
    panic!("no 127.0.0.1 port free for both UDP and TCP: {last_err:?}");
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted)
}

fn udp_loop(udp: UdpSocket, ctx: &Ctx) {
    let mut buf = [0u8; 4096];
    while !ctx.stopped() {
        match udp.recv_from(&mut buf) {
            Ok((n, src)) => {
                if let Some(mut resp) = respond(&buf[..n], ctx) {
                    if resp.len() > 512 {
                        resp = truncate(&resp);
                    }
                    let _ = udp.send_to(&resp, src);
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn accept_loop(listener: TcpListener, ctx: Ctx, handlers: Arc<Mutex<Vec<JoinHandle<()>>>>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if ctx.stopped() {
                    return;
                }
                let conn_ctx = ctx.clone();
                let spawned =
                    thread::Builder::new().name("fakedns-conn".into()).spawn(move || tcp_conn(stream, &conn_ctx));
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

/// Fills `buf` across read timeouts; false on EOF, error or stop.
fn read_exact_poll(mut s: &TcpStream, mut buf: &mut [u8], ctx: &Ctx) -> bool {
    while !buf.is_empty() {
        if ctx.stopped() {
            return false;
        }
        match s.read(buf) {
            Ok(0) => return false,
            Ok(n) => buf = &mut buf[n..],
            Err(e) if is_timeout(&e) => {}
            Err(_) => return false,
        }
    }
    true
}

fn write_all_poll(mut s: &TcpStream, data: &[u8], ctx: &Ctx) -> bool {
    let mut off = 0;
    while off < data.len() {
        if ctx.stopped() {
            return false;
        }
        match s.write(&data[off..]) {
            Ok(0) => return false,
            Ok(n) => off += n,
            Err(e) if is_timeout(&e) => {}
            Err(_) => return false,
        }
    }
    true
}

/// TCP: messages framed by a 2-byte big-endian length, several per connection.
fn tcp_conn(s: TcpStream, ctx: &Ctx) {
    let _ = s.set_read_timeout(Some(POLL));
    let _ = s.set_write_timeout(Some(POLL));
    let _ = s.set_nodelay(true);
    loop {
        let mut len = [0u8; 2];
        if !read_exact_poll(&s, &mut len, ctx) {
            return;
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !read_exact_poll(&s, &mut msg, ctx) {
            return;
        }
        if let Some(resp) = respond(&msg, ctx) {
            let mut framed = (resp.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&resp);
            if !write_all_poll(&s, &framed, ctx) {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

struct Question {
    /// Lowercased, dot-separated, no trailing dot ("" for the root).
    name: String,
    qtype: u16,
    /// Offset just past QCLASS.
    end: usize,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The question at offset 12; `None` if it is malformed or compressed.
fn parse_question(msg: &[u8]) -> Option<Question> {
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    let mut wire_len = 0usize;
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        if len & 0xC0 != 0 {
            return None; // pointers and extended label types are not expected in a question
        }
        let label = msg.get(pos + 1..pos + 1 + len)?;
        wire_len += len + 1;
        if wire_len > 255 {
            return None;
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += 1 + len;
    }
    let qtype = be16(msg.get(pos..pos + 4)?, 0);
    Some(Question { name: labels.join("."), qtype, end: pos + 4 })
}

/// Encodes a dotted name as labels (no compression).
fn encode_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

fn push_soa(out: &mut Vec<u8>) {
    encode_name(out, "test.");
    out.extend_from_slice(&TYPE_SOA.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // TTL
    let mut rdata = Vec::new();
    encode_name(&mut rdata, "ns.test.");
    encode_name(&mut rdata, "hostmaster.test.");
    for v in [1u32, 3600, 600, 86400, 0] {
        // serial, refresh, retry, expire, minimum (negative-caching TTL)
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
}

/// The response to one query message, or `None` to stay silent (silent mode, or not a query).
fn respond(msg: &[u8], ctx: &Ctx) -> Option<Vec<u8>> {
    if matches!(*ctx.mode, Mode::Silent) {
        if let Some(q) = msg.get(..12).and_then(|_| parse_question(msg)) {
            lock(&ctx.queries).push((q.name, q.qtype));
        }
        return None;
    }
    if msg.len() < 12 {
        return None;
    }
    let flags = be16(msg, 2);
    if flags & 0x8000 != 0 {
        return None; // a response, not a query
    }
    let opcode = (flags >> 11) & 0x0F;
    let question = if be16(msg, 4) == 1 { parse_question(msg) } else { None };
    if let Some(q) = &question {
        lock(&ctx.queries).push((q.name.clone(), q.qtype));
    }

    let (rcode, answers, soa): (u8, Vec<IpAddr>, bool) = match (&question, &*ctx.mode) {
        (None, _) => (RCODE_FORMERR, Vec::new(), false),
        (Some(_), _) if opcode != 0 => (RCODE_NOTIMP, Vec::new(), false),
        (Some(_), Mode::Rcode(r)) => (*r, Vec::new(), false),
        (Some(q), Mode::Records(table)) => match table.iter().find(|(n, _)| *n == q.name) {
            None => (RCODE_NXDOMAIN, Vec::new(), true),
            Some((_, ips)) => {
                let wanted: Vec<IpAddr> = ips
                    .iter()
                    .copied()
                    .filter(|ip| match q.qtype {
                        TYPE_A => ip.is_ipv4(),
                        TYPE_AAAA => ip.is_ipv6(),
                        TYPE_ANY => true,
                        _ => false,
                    })
                    .collect();
                let nodata = wanted.is_empty();
                (RCODE_NOERROR, wanted, nodata)
            }
        },
        (Some(_), Mode::Silent) => unreachable!(),
    };

    // QR=1, opcode copied, AA=1, TC=0, RD copied, RA=0.
    let out_flags = 0x8000 | (opcode << 11) | 0x0400 | (flags & 0x0100) | u16::from(rcode);
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&msg[..2]); // ID
    out.extend_from_slice(&out_flags.to_be_bytes());
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes()); // ANCOUNT
    out.extend_from_slice(&u16::from(soa).to_be_bytes()); // NSCOUNT
    out.extend_from_slice(&0u16.to_be_bytes()); // ARCOUNT
    if let Some(q) = &question {
        out.extend_from_slice(&msg[12..q.end]);
    }
    for ip in &answers {
        out.extend_from_slice(&[0xC0, 0x0C]); // pointer to the question name
        let (rtype, rdata) = match ip {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // TTL
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    if soa {
        push_soa(&mut out);
    }
    Some(out)
}

/// A UDP response over 512 bytes: header and question only, with TC=1.
fn truncate(resp: &[u8]) -> Vec<u8> {
    let qend = if be16(resp, 4) == 1 { parse_question(resp).map_or(12, |q| q.end) } else { 12 };
    let mut out = resp[..qend].to_vec();
    out[2] |= 0x02; // TC
    out[6..12].fill(0); // ANCOUNT, NSCOUNT, ARCOUNT
    out
}
