#!/usr/bin/env python3
"""consul-doctor bounds benchmark: peak memory, report size and request rate when the catalog or a
single answer is pathological. A real 1.8.7 agent cannot be made to serve these (a 1 GB check
output, a million nodes), so a fake agent on 127.0.0.1 streams them, generated on the fly.

    python3 benches/bounds.py [--no-build] [--only CASE[,CASE]] [--results benches/BOUNDS_RESULTS.md]

Cases (targets from issue 13: peak RSS <= 100 MiB and a report of at most a few MB on each):
  dup3000    scan: 3,000 instances of one service on one address:port (a duplicate group)
  bigname    scan: one node whose name is 10 MB long
  node1m     scan: one node with 1,000,000 services
  nodes1m    scan: 1,000,000 nodes with one service and one check each
  tags100k   scan: 100,000 instances of one service, each with a tag of its own (no square)
  mesh500k   scan: 250,000 nodes with a service and its sidecar each, every 10th sidecar orphaned
  output1g   wait: the health list's only instance has a 1 GB check Output (blocking answers)
  noindex    wait: answers without X-Consul-Index (a proxy that strips it): requests per second

Peak RSS is read with GNU time (/usr/bin/time -f %M) around the doctor alone; the fake agent runs in
its own process. Response shapes follow what Consul 1.8.7 answers on these endpoints
(agent/ui_endpoint.go UINodes, agent/health_endpoint.go HealthServiceNodes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import build_doctor, log  # noqa: E402

BENCHES = Path(__file__).resolve().parent

# The fake agent: run as `python3 bounds.py --serve CASE PORTFILE`.
SERVER = r'''
import http.server, json, socketserver, sys, threading
case, portfile = sys.argv[2], sys.argv[3]
AGENT_SELF = json.dumps({
    "Config": {"Datacenter": "dc1", "NodeName": "srv-1", "NodeID": "6f4f1b43-0000-0000-0000-000000000001",
               "Server": True, "Version": "1.8.7", "Revision": ""},
    "DebugConfig": {"ACLsEnabled": False},
    "Member": {"Name": "srv-1", "Addr": "127.0.0.1", "Port": 8301, "Tags": {"build": "1.8.7:", "role": "consul"}},
    "Stats": {"consul": {"acl": "disabled", "server": "true"}}}).encode()
MEMBERS = json.dumps([{"Name": "srv-1", "Addr": "127.0.0.1", "Port": 8301, "Status": 1,
    "Tags": {"build": "1.8.7:", "role": "consul", "dc": "dc1", "vsn": "2", "vsn_min": "2", "vsn_max": "3", "raft_vsn": "3"}}]).encode()
SERF = '{"CheckID":"serfHealth","Name":"Serf Health Status","Status":"passing","Output":"Agent alive and reachable","ServiceID":""}'

def check(sid, status="passing", output="HTTP GET: 200 OK"):
    return '{"CheckID":"%s-c","Name":"c","Status":"%s","Output":"%s","ServiceID":"%s"}' % (sid, status, output, sid)

def service(sid, name, addr="10.0.0.1", port=80):
    return '{"ID":"%s","Service":"%s","Tags":["v1"],"Address":"%s","Port":%d,"CreateIndex":10}' % (sid, name, addr, port)

def ui_nodes():
    """Yields the /v1/internal/ui/nodes body in pieces."""
    if case == "dup3000":
        yield '[{"Node":"n1","Address":"10.0.0.1","Meta":{},"Services":['
        yield ",".join(service("web-%d" % i, "web") for i in range(3000))
        yield '],"Checks":[' + SERF + "," + ",".join(check("web-%d" % i) for i in range(3000)) + "]}]"
    elif case == "bigname":
        yield '[{"Node":"' + "n" * (10 * 1000 * 1000) + '","Address":"10.0.0.1","Meta":{},"Services":['
        yield service("web-1", "web") + '],"Checks":[' + SERF + "," + check("web-1") + "]}]"
    elif case == "node1m":
        yield '[{"Node":"n1","Address":"10.0.0.1","Meta":{},"Services":['
        for block in range(1000):
            yield ("," if block else "") + ",".join(service("s-%d" % i, "svc-%d" % (i % 1000), port=1000 + i % 60000)
                                                     for i in range(block * 1000, block * 1000 + 1000))
        yield '],"Checks":[' + SERF + "]}]"
    elif case == "nodes1m":
        yield "["
        for block in range(1000):
            yield ("," if block else "") + ",".join(
                '{"Node":"node-%d","Address":"10.%d.%d.%d","Meta":{},"Services":[%s],"Checks":[%s,%s]}'
                % (i, i >> 16 & 255, i >> 8 & 255, i & 255, service("s-%d" % i, "svc-%d" % (i % 1000), "", 80), SERF, check("s-%d" % i))
                for i in range(block * 1000, block * 1000 + 1000))
        yield "]"
    elif case == "mesh500k":
        # Each node: a service and its sidecar (Kind connect-proxy, Proxy.DestinationServiceID;
        # hashicorp/consul agent/structs/structs.go NodeService), every 10th sidecar orphaned.
        yield "["
        for block in range(250):
            yield ("," if block else "") + ",".join(
                '{"Node":"m-%d","Address":"10.2.%d.%d","Meta":{},"Services":[%s,%s],"Checks":[%s]}' % (
                    i, i >> 8 & 255, i & 255,
                    service("a-%d" % i if i % 10 else "gone-%d" % i, "app-%d" % (i % 1000), "", 8080),
                    '{"ID":"a-%d-sidecar-proxy","Service":"app-%d-sidecar-proxy","Kind":"connect-proxy","Port":21000,'
                    '"Proxy":{"DestinationServiceName":"app-%d","DestinationServiceID":"a-%d"}}' % (i, i % 1000, i % 1000, i),
                    SERF)
                for i in range(block * 1000, block * 1000 + 1000))
        yield "]"
    elif case == "tags100k":
        yield "["
        for block in range(1000):
            yield ("," if block else "") + '{"Node":"n-%d","Address":"10.1.%d.%d","Meta":{},"Services":[%s],"Checks":[%s]}' % (
                block, block >> 8 & 255, block & 255,
                ",".join('{"ID":"w-%d","Service":"web","Tags":["t-%d"],"Port":%d}' % (k, k, 1000 + k % 60000)
                         for k in range(block * 100, block * 100 + 100)),
                SERF)
        yield "]"
    else:
        yield "[]"

def health():
    if case == "output1g":
        yield '[{"Node":{"Node":"srv-1","Address":"127.0.0.1"},"Service":' + service("web-1", "web") + ',"Checks":[{"CheckID":"c","Name":"c","Status":"passing","ServiceID":"web-1","Output":"'
        chunk = "x" * (1 << 20)
        for _ in range(1000 * 1000 * 1000 // len(chunk)):
            yield chunk
        yield '"}]}]'
    else:
        yield '[{"Node":{"Node":"srv-1","Address":"127.0.0.1"},"Service":' + service("web-1", "web") + ',"Checks":[' + check("web-1") + "]}]"

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def send_body(self, status, pieces, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for p in pieces:
                b = p.encode() if isinstance(p, str) else p
                if b:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
    def do_GET(self):
        path = self.path.split("?")[0]
        with lock:
            counts[path] = counts.get(path, 0) + 1
        if path == "/v1/agent/self":
            self.send_body(200, [AGENT_SELF])
        elif path == "/v1/status/leader":
            self.send_body(200, ['"127.0.0.1:8300"'])
        elif path == "/v1/status/peers":
            self.send_body(200, ['["127.0.0.1:8300"]'])
        elif path == "/v1/agent/members":
            self.send_body(200, [MEMBERS])
        elif path == "/v1/acl/token/self":
            self.send_body(401, ["ACL support disabled"])
        elif path == "/v1/internal/ui/nodes":
            self.send_body(200, ui_nodes(), [("X-Consul-Index", "100")])
        elif path.startswith("/v1/health/service/"):
            hdr = [] if case == "noindex" else [("X-Consul-Index", "100")]
            self.send_body(200, health(), hdr)
        elif path == "/v1/agent/services" or path == "/v1/agent/checks":
            self.send_body(200, ["{}"])
        elif path == "/v1/catalog/datacenters":
            self.send_body(200, ['["dc1"]'])
        elif path == "/counts":
            with lock:
                self.send_body(200, [json.dumps(counts)])
        else:
            self.send_body(404, [""])
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.send_body(401, ["ACL support disabled"])
    do_PUT = do_POST

counts, lock = {}, threading.Lock()
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
open(portfile, "w").write(str(s.server_address[1]))
s.serve_forever()
'''

CASES = {
    "dup3000": ("scan", []),
    "bigname": ("scan", []),
    "node1m": ("scan", ["--timeout", "60s", "--deadline", "5m"]),
    "nodes1m": ("scan", ["--timeout", "60s", "--deadline", "5m"]),
    "tags100k": ("scan", ["--timeout", "60s", "--deadline", "5m"]),
    "mesh500k": ("scan", ["--timeout", "60s", "--deadline", "5m"]),
    "output1g": ("wait", ["--service", "web", "--min-passing", "2", "--deadline", "20s", "--timeout", "30s"]),
    "noindex": ("wait", ["--service", "web", "--min-passing", "2", "--deadline", "10s"]),
}


def serve(case: str, tmp: Path) -> tuple[subprocess.Popen, int]:
    script = tmp / "fake_agent.py"
    script.write_text(SERVER)
    portfile = tmp / f"{case}.port"
    proc = subprocess.Popen([sys.executable, str(script), "--serve", case, str(portfile)])
    for _ in range(200):
        if portfile.exists() and portfile.read_text():
            return proc, int(portfile.read_text())
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the fake agent did not start")


def counts(port: int) -> dict:
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/counts", timeout=10) as r:
        return json.loads(r.read())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--binary", help="benchmark this consul-doctor binary instead of building target/release")
    ap.add_argument("--only", default=",".join(CASES))
    ap.add_argument("--results", default=str(BENCHES / "BOUNDS_RESULTS.md"))
    args = ap.parse_args()
    doctor = Path(args.binary) if args.binary else build_doctor(args.no_build)
    rows = []
    with tempfile.TemporaryDirectory(prefix="consul-doctor-bounds-") as t:
        tmp = Path(t)
        for case in [c for c in args.only.split(",") if c]:
            command, extra = CASES[case]
            proc, port = serve(case, tmp)
            try:
                out = tmp / f"{case}.json"
                argv = ["/usr/bin/time", "-f", "%M", str(doctor), command, "--http-addr", f"127.0.0.1:{port}",
                        "--format", "json", "--output", str(out)] + extra
                t0 = time.perf_counter()
                r = subprocess.run(argv, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                rss_kib = int(r.stderr.strip().splitlines()[-1])
                size = out.stat().st_size if out.exists() else 0
                row = {"case": case, "command": command, "exit": r.returncode, "wall_s": round(wall, 2),
                       "peak_rss_mib": round(rss_kib / 1024, 1), "report_bytes": size}
                try:
                    report = json.loads(out.read_text())
                    if command == "scan":
                        row["instances"] = report["scanned"]["instances"]
                        row["findings"] = report["summary"]["findings"]
                    else:
                        row["outcome"] = report["outcome"]
                        served = counts(port).get("/v1/health/service/web", 0)
                        row["health_requests"] = served
                        row["health_requests_per_s"] = round(served / max(wall, 0.001), 2)
                except (ValueError, KeyError) as e:
                    row["report_error"] = str(e)
                rows.append(row)
                log(json.dumps(row))
            finally:
                proc.kill()
                proc.wait()
    lines = [
        "# consul-doctor bounds benchmark results",
        "",
        "Reproduce with `python3 benches/bounds.py` (a fake agent on 127.0.0.1 streams each pathological answer).",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.",
        "Targets (issue 13): peak RSS <= 100 MiB and a report of a few MB at most on every case; wait never storms.",
        "",
        "| case | command | exit | wall s | peak RSS MiB | report bytes | details |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        details = ", ".join(f"{k} {v}" for k, v in r.items()
                            if k not in ("case", "command", "exit", "wall_s", "peak_rss_mib", "report_bytes"))
        lines.append(f"| {r['case']} | {r['command']} | {r['exit']} | {r['wall_s']} | {r['peak_rss_mib']} | "
                     f"{r['report_bytes']:,} | {details} |")
    Path(args.results).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
