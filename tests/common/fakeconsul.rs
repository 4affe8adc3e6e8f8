//! A small fake Consul HTTP API on loopback whose answers are computed per request (path, query,
//! body), for what the real 1.8.7 lab cannot show: newer versions, Enterprise namespaces and
//! partitions, consul-k8s agentless registrations, peered services. The responder decides every
//! answer; each scenario's responder names, beside each body, the hashicorp/consul or
//! hashicorp/consul-k8s source file its shape comes from.
//!
//! Standard library only: one thread per connection, HTTP/1.1 keep-alive, Content-Length bodies.
//! Every request is recorded (method, target with query, body). The server stops when dropped.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: String,
}

impl Req {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    /// The full target, for assertions (`/v1/health/service/web?ns=team-a`).
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let q: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}?{}", self.path, q.join("&"))
    }
}

/// An answer: status, extra headers, body (JSON unless the headers say otherwise).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(body: impl Into<String>) -> Answer {
        Answer { status: 200, headers: vec![("Content-Type".into(), "application/json".into())], body: body.into() }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer { status, headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())], body: body.into() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Responder = dyn Fn(&Req) -> Answer + Send + Sync;

pub struct FakeConsul {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    recorded: Arc<Mutex<Vec<Req>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeConsul {
    pub fn start(responder: impl Fn(&Req) -> Answer + Send + Sync + 'static) -> FakeConsul {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let responder: Arc<Responder> = Arc::new(responder);
        let (stop2, rec2) = (stop.clone(), recorded.clone());
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (stop3, rec3, resp3) = (stop2.clone(), rec2.clone(), responder.clone());
                std::thread::spawn(move || serve(conn, &stop3, &rec3, &*resp3));
            }
        });
        FakeConsul { addr, stop, recorded, acceptor: Some(acceptor) }
    }

    pub fn http_addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<Req> {
        self.recorded.lock().unwrap().clone()
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn serve(conn: TcpStream, stop: &AtomicBool, recorded: &Mutex<Vec<Req>>, responder: &Responder) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else { return };
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                if n.trim().eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), q),
            None => (target.to_string(), ""),
        };
        let query = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), unescape(v)),
                None => (kv.to_string(), String::new()),
            })
            .collect();
        let req = Req { method: method.to_string(), path, query, body: String::from_utf8_lossy(&body).into_owned() };
        recorded.lock().unwrap().push(req.clone());
        let a = responder(&req);
        let mut head = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", a.status, a.body.len());
        for (n, v) in &a.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).and_then(|_| out.write_all(a.body.as_bytes())).is_err() {
            return;
        }
    }
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
