//! Tests of the loopback fakes themselves, with plain std clients.

#[path = "common/fault.rs"]
mod fault;

#[path = "common/fakedns.rs"]
mod fakedns;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use fakedns::FakeDns;
use fault::{Behavior, FaultServer, Route};

const SHORT: Duration = Duration::from_millis(300);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).expect("connect");
    s.set_read_timeout(Some(SHORT)).unwrap();
    s.set_write_timeout(Some(SHORT)).unwrap();
    s
}

fn is_timeout(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one response head byte by byte (so nothing of the next response is consumed).
fn read_head(s: &mut TcpStream) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Ok((status, headers))
}

/// Reads a Content-Length framed response.
fn read_response(s: &mut TcpStream) -> std::io::Result<Resp> {
    let (status, headers) = read_head(s)?;
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(Resp { status, headers, body })
}

fn get(addr: SocketAddr, method: &str, path: &str) -> Resp {
    let mut s = connect(addr);
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    read_response(&mut s).expect("response")
}

// ---------------------------------------------------------------------------------------------
// Raw TCP fault servers

#[test]
fn silent_read_times_out() {
    let srv = FaultServer::silent();
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let err = s.read(&mut [0u8; 16]).expect_err("silent server answered");
    assert!(is_timeout(err.kind()), "{err:?}");
}

#[test]
fn close_on_accept_gives_eof() {
    let srv = FaultServer::close_on_accept();
    let mut s = connect(srv.addr);
    assert_eq!(s.read(&mut [0u8; 16]).unwrap(), 0);
    // Even after writing, the client reads EOF rather than a reset.
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(s.read(&mut [0u8; 16]).unwrap(), 0);
}

#[test]
fn reset_on_data_resets() {
    let srv = FaultServer::reset_on_data();
    let mut s = connect(srv.addr);
    s.write_all(b"GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let err = s.read(&mut [0u8; 16]).expect_err("expected a reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
}

#[test]
fn grpc_like_sends_settings_then_closes() {
    let srv = FaultServer::grpc_like();
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut frame = [0u8; 21];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(&frame[..], fault::HTTP2_SETTINGS);
    assert_eq!(frame, [0, 0, 0x0c, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0x64, 0, 4, 0, 0x10, 0, 0]);
    assert_eq!(s.read(&mut [0u8; 16]).unwrap(), 0);
}

#[test]
fn banner_is_sent_on_connect() {
    let srv = FaultServer::banner(b"SSH-2.0-OpenSSH_9.2p1\r\n");
    let mut s = connect(srv.addr);
    let mut got = [0u8; 23];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"SSH-2.0-OpenSSH_9.2p1\r\n");
    // Then nothing more, and the connection stays open.
    s.write_all(b"hello\r\n").unwrap();
    let err = s.read(&mut [0u8; 16]).expect_err("banner server wrote again");
    assert!(is_timeout(err.kind()), "{err:?}");
}

#[test]
fn drop_stops_everything() {
    let srv = FaultServer::http(vec![Route::text("/", 200, "").with_behavior(Behavior::Endless)]);
    let addr = srv.addr;
    // An endless response the client never reads fills the socket buffers: the writer is blocked.
    let mut endless = connect(addr);
    endless.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let silent = FaultServer::silent();
    let _idle = connect(silent.addr);
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    drop(srv);
    drop(silent);
    assert!(t.elapsed() < Duration::from_millis(600), "drop took {:?}", t.elapsed());
    let refused = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).expect_err("still listening");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

// ---------------------------------------------------------------------------------------------
// HTTP

#[test]
fn http_serves_status_headers_body() {
    let srv = FaultServer::http(vec![
        Route::json("/v1/agent/self", 200, r#"{"Config":{}}"#).with_header("X-Consul-Index", "7"),
        Route::text("/v1/status/leader", 503, "No cluster leader"),
        Route::html("/ui", 200, "<html></html>"),
    ]);
    let r = get(srv.addr, "GET", "/v1/agent/self?pretty");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, br#"{"Config":{}}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-consul-index"), Some("7"));

    let r = get(srv.addr, "GET", "/v1/status/leader");
    assert_eq!((r.status, r.body.as_slice()), (503, &b"No cluster leader"[..]));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let r = get(srv.addr, "GET", "/ui/");
    assert_eq!(r.header("content-type"), Some("text/html"));

    let r = get(srv.addr, "GET", "/nothing/here");
    assert_eq!((r.status, r.body.len()), (404, 0));
}

#[test]
fn http_status_line_reason() {
    let srv = FaultServer::http(vec![Route::text("/", 429, "slow down")]);
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8(all).unwrap();
    assert!(text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{text}");
    assert!(text.contains("Content-Length: 9\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nslow down"), "{text}");
}

#[test]
fn http_method_matching() {
    let srv = FaultServer::http(vec![
        Route::json("/v1/agent/service/register", 200, "").with_method("PUT"),
        Route::text("/v1/agent/service/register", 405, "method not allowed"),
    ]);
    let r = get(srv.addr, "GET", "/v1/agent/service/register");
    assert_eq!(r.status, 405);
    let mut s = connect(srv.addr);
    let body = r#"{"Name":"web"}"#;
    write!(s, "PUT /v1/agent/service/register HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 200);
}

#[test]
fn http_keep_alive_two_requests_one_connection() {
    let srv = FaultServer::http(vec![Route::json("/a", 200, "\"first\""), Route::json("/b", 200, "\"second\"")]);
    let mut s = connect(srv.addr);
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.body, b"\"first\"");
    assert_eq!(r.header("connection"), None);
    // A body on the second request must not confuse the framing; a 404 also keeps the connection.
    s.write_all(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").unwrap();
    assert_eq!(read_response(&mut s).unwrap().body, b"\"second\"");
    s.write_all(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 404);
    // Pipelined, with a chunked body in between.
    s.write_all(
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut s).unwrap().body, b"\"first\"");
    let last = read_response(&mut s).unwrap();
    assert_eq!(last.body, b"\"second\"");
    assert_eq!(last.header("connection"), Some("close"));
    assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
    assert_eq!(srv.requests().len(), 5);
}

#[test]
fn http_records_requests() {
    let srv = FaultServer::http(vec![Route::json("/v1/", 200, "{}")]);
    let mut s = connect(srv.addr);
    s.write_all(b"GET /v1/agent/self?dc=dc1 HTTP/1.1\r\nHost: x\r\nX-Consul-Token: secret\r\n\r\n").unwrap();
    read_response(&mut s).unwrap();
    s.write_all(b"PUT /v1/kv/a HTTP/1.1\r\nhost: x\r\nContent-Length: 2\r\n\r\nhi").unwrap();
    read_response(&mut s).unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/v1/agent/self?dc=dc1");
    assert_eq!(
        reqs[0].headers,
        vec![("host".to_string(), "x".to_string()), ("x-consul-token".to_string(), "secret".to_string())]
    );
    assert_eq!(reqs[0].header("X-Consul-Token"), Some("secret"));
    assert_eq!((reqs[1].method.as_str(), reqs[1].path.as_str()), ("PUT", "/v1/kv/a"));
}

#[test]
fn http_trickle_is_slow() {
    let srv = FaultServer::http(vec![
        Route::text("/", 200, "abcde").with_behavior(Behavior::Trickle(Duration::from_millis(60)))
    ]);
    let mut s = connect(srv.addr);
    let t = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let (status, headers) = read_head(&mut s).unwrap();
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-length".into(), "5".into())));
    assert!(t.elapsed() < Duration::from_millis(60), "head came late: {:?}", t.elapsed());
    let mut body = Vec::new();
    let mut b = [0u8; 16];
    let mut reads = 0;
    while body.len() < 5 {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0);
        body.extend_from_slice(&b[..n]);
        reads += 1;
    }
    assert_eq!(body, b"abcde");
    assert!(reads >= 4, "body arrived in {reads} reads");
    assert!(t.elapsed() >= Duration::from_millis(280), "too fast: {:?}", t.elapsed());
}

#[test]
fn http_endless_keeps_delivering() {
    let srv = FaultServer::http(vec![Route::text("/", 200, "").with_behavior(Behavior::Endless)]);
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let (status, headers) = read_head(&mut s).unwrap();
    assert_eq!(status, 200);
    assert!(headers.contains(&("transfer-encoding".into(), "chunked".into())));
    assert!(!headers.iter().any(|(n, _)| n == "content-length"));
    let mut first = [0u8; 7];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"10000\r\n");
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while total < 2 * 1024 * 1024 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "endless body ended after {total} bytes");
        total += n;
    }
}

#[test]
fn http_hang_never_answers() {
    let srv = FaultServer::http(vec![Route::json("/", 200, "{}").with_behavior(Behavior::Hang)]);
    let mut s = connect(srv.addr);
    s.write_all(b"GET /v1/agent/self HTTP/1.1\r\n\r\n").unwrap();
    let err = s.read(&mut [0u8; 16]).expect_err("hang answered");
    assert!(is_timeout(err.kind()), "{err:?}");
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn http_reset_mid_body() {
    let body = "y".repeat(1000);
    let srv = FaultServer::http(vec![Route::json("/", 200, &body).with_behavior(Behavior::ResetMidBody)]);
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, headers) = read_head(&mut s).unwrap();
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-length".into(), "1000".into())));
    let mut got = 0usize;
    let mut buf = [0u8; 4096];
    let err = loop {
        match s.read(&mut buf) {
            Ok(0) => panic!("clean EOF after {got} bytes, expected a reset"),
            Ok(n) => got += n,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?} after {got} bytes");
    assert_eq!(got, 500, "the half body arrives before the reset");
}

#[test]
fn http_reset_mid_body_after_post() {
    let srv = FaultServer::http(vec![Route::json("/", 200, "0123456789").with_behavior(Behavior::ResetMidBody)]);
    let mut s = connect(srv.addr);
    s.write_all(b"PUT / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody").unwrap();
    let mut all = Vec::new();
    let err = s.read_to_end(&mut all).expect_err("expected a reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
}

#[test]
fn http_head_request_has_no_body() {
    let srv = FaultServer::http(vec![Route::json("/", 200, "{\"a\":1}")]);
    let mut s = connect(srv.addr);
    s.write_all(b"HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n").unwrap();
    let (status, headers) = read_head(&mut s).unwrap();
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-length".into(), "7".into())));
    assert_eq!(read_response(&mut s).unwrap().body, b"{\"a\":1}");
}

// ---------------------------------------------------------------------------------------------
// DNS

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn udp_ask(addr: SocketAddr, q: &[u8]) -> std::io::Result<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    sock.send_to(q, addr).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = sock.recv_from(&mut buf)?;
    assert_eq!(from, addr);
    Ok(buf[..n].to_vec())
}

fn tcp_ask(addr: SocketAddr, q: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = connect(addr);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg)?;
    Ok(msg)
}

#[derive(Debug)]
struct Parsed {
    id: u16,
    flags: u16,
    rcode: u8,
    qd: u16,
    an: u16,
    ns: u16,
    ar: u16,
    question: Vec<u8>,
    /// (type, ttl, rdata) of each answer, whose name must be the pointer 0xC00C.
    answers: Vec<(u16, u32, Vec<u8>)>,
    /// (name bytes, type) of each authority record.
    authority: Vec<(Vec<u8>, u16, Vec<u8>)>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn parse(msg: &[u8]) -> Parsed {
    let (qd, an, ns, ar) = (be16(msg, 4), be16(msg, 6), be16(msg, 8), be16(msg, 10));
    let mut pos = 12;
    for _ in 0..qd {
        while msg[pos] != 0 {
            pos += 1 + usize::from(msg[pos]);
        }
        pos += 5;
    }
    let question = msg[12..pos].to_vec();
    let mut answers = Vec::new();
    for _ in 0..an {
        assert_eq!(&msg[pos..pos + 2], &[0xC0, 0x0C], "answer name is not a pointer to the question");
        pos += 2;
        let (t, class) = (be16(msg, pos), be16(msg, pos + 2));
        assert_eq!(class, 1);
        let ttl = u32::from_be_bytes(msg[pos + 4..pos + 8].try_into().unwrap());
        let len = usize::from(be16(msg, pos + 8));
        answers.push((t, ttl, msg[pos + 10..pos + 10 + len].to_vec()));
        pos += 10 + len;
    }
    let mut authority = Vec::new();
    for _ in 0..ns {
        let start = pos;
        while msg[pos] != 0 {
            pos += 1 + usize::from(msg[pos]);
        }
        pos += 1;
        let name = msg[start..pos].to_vec();
        let t = be16(msg, pos);
        let len = usize::from(be16(msg, pos + 8));
        authority.push((name, t, msg[pos + 10..pos + 10 + len].to_vec()));
        pos += 10 + len;
    }
    assert_eq!(pos, msg.len(), "trailing bytes");
    let flags = be16(msg, 2);
    Parsed { id: be16(msg, 0), flags, rcode: (flags & 0x0F) as u8, qd, an, ns, ar, question, answers, authority }
}

fn check_header(p: &Parsed, id: u16, rcode: u8) {
    assert_eq!(p.id, id);
    assert_eq!(p.flags & 0x8000, 0x8000, "QR");
    assert_eq!(p.flags & 0x0400, 0x0400, "AA");
    assert_eq!(p.flags & 0x0100, 0x0100, "RD copied");
    assert_eq!(p.flags & 0x0080, 0, "RA");
    assert_eq!(p.flags & 0x0200, 0, "TC");
    assert_eq!(p.rcode, rcode);
    assert_eq!(p.qd, 1);
    assert_eq!(p.ar, 0);
}

fn table() -> FakeDns {
    FakeDns::records(vec![
        ("consul.test.", vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]),
        ("v6only.test", vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]),
        ("empty.test", vec![]),
    ])
}

fn is_test_soa(auth: &(Vec<u8>, u16, Vec<u8>)) -> bool {
    auth.0 == b"\x04test\x00" && auth.1 == 6 && auth.2.starts_with(b"\x02ns\x04test\x00\x0ahostmaster\x04test\x00")
}

#[test]
fn dns_noerror_with_answers() {
    let dns = table();
    let q = query(0x1234, "Consul.TEST", 1);
    let p = parse(&udp_ask(dns.addr, &q).unwrap());
    check_header(&p, 0x1234, 0);
    assert_eq!(p.question, q[12..]);
    assert_eq!(p.answers, vec![(1, 0, vec![127, 0, 0, 1]), (1, 0, vec![127, 0, 0, 2])]);
    assert_eq!(p.ns, 0);

    let p = parse(&udp_ask(dns.addr, &query(7, "v6only.test.", 28)).unwrap());
    check_header(&p, 7, 0);
    assert_eq!(p.answers, vec![(28, 0, Ipv6Addr::LOCALHOST.octets().to_vec())]);
    assert_eq!(dns.queries(), vec![("consul.test".to_string(), 1), ("v6only.test".to_string(), 28)]);
}

#[test]
fn dns_nxdomain_has_soa() {
    let dns = table();
    let p = parse(&udp_ask(dns.addr, &query(42, "nope.test", 1)).unwrap());
    check_header(&p, 42, 3);
    assert_eq!(p.an, 0);
    assert_eq!(p.ns, 1);
    assert!(is_test_soa(&p.authority[0]), "{:?}", p.authority);
}

#[test]
fn dns_nodata_has_soa() {
    let dns = table();
    for (name, qtype) in [("consul.test", 28), ("v6only.test", 1), ("empty.test", 1)] {
        let p = parse(&udp_ask(dns.addr, &query(9, name, qtype)).unwrap());
        check_header(&p, 9, 0);
        assert_eq!(p.an, 0, "{name}");
        assert_eq!(p.ns, 1, "{name}");
        assert!(is_test_soa(&p.authority[0]));
    }
}

#[test]
fn dns_servfail_and_refused() {
    let dns = FakeDns::servfail();
    let q = query(1, "consul.test", 1);
    let p = parse(&udp_ask(dns.addr, &q).unwrap());
    check_header(&p, 1, 2);
    assert_eq!((p.an, p.ns), (0, 0));
    assert_eq!(p.question, q[12..]);

    let dns = FakeDns::refused();
    let p = parse(&udp_ask(dns.addr, &query(2, "consul.test", 1)).unwrap());
    check_header(&p, 2, 5);
}

#[test]
fn dns_silent_times_out() {
    let dns = FakeDns::silent();
    let q = query(3, "consul.test", 1);
    let err = udp_ask(dns.addr, &q).expect_err("silent DNS answered over UDP");
    assert!(is_timeout(err.kind()), "{err:?}");
    let err = tcp_ask(dns.addr, &q).expect_err("silent DNS answered over TCP");
    assert!(is_timeout(err.kind()), "{err:?}");
    assert_eq!(dns.queries().len(), 2);
}

#[test]
fn dns_over_tcp() {
    let dns = table();
    let p = parse(&tcp_ask(dns.addr, &query(0xBEEF, "consul.test", 1)).unwrap());
    check_header(&p, 0xBEEF, 0);
    assert_eq!(p.answers.len(), 2);
    let p = parse(&tcp_ask(dns.addr, &query(0xBEF0, "missing.test", 1)).unwrap());
    check_header(&p, 0xBEF0, 3);

    // Two queries on one connection.
    let mut s = connect(dns.addr);
    for id in [10u16, 11] {
        let q = query(id, "consul.test", 1);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut msg).unwrap();
        check_header(&parse(&msg), id, 0);
    }

    let dns = FakeDns::refused();
    check_header(&parse(&tcp_ask(dns.addr, &query(5, "x.test", 1)).unwrap()), 5, 5);
}

#[test]
fn dns_ignores_garbage() {
    let dns = table();
    // Too short: no answer; no question: FORMERR.
    assert!(udp_ask(dns.addr, &[1, 2, 3]).is_err());
    let resp = udp_ask(dns.addr, &[0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let p = parse(&resp);
    assert_eq!((p.id, p.rcode, p.qd), (9, 1, 0));
}
