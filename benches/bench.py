#!/usr/bin/env python3
"""consul-doctor benchmark harness: wall time and peak memory against a real, local Consul agent.

One command, from the repository root:

    python3 benches/bench.py

It needs only Python 3.11's standard library, bash, curl and GNU time (/usr/bin/time, to read each
child's peak RSS; see "Measurement" below). It runs `cargo build --release` first (a no-op when the
binary is current; --no-build skips it) and finds Consul through scripts/install-consul.sh.
All traffic stays on 127.0.0.1. A full run takes about a minute on a 2-core machine, plus the build.

What it does
  1. Starts its own `consul agent -dev` on loopback with free ports (a config file setting
     node_name, bind_addr/client_addr 127.0.0.1, disable_update_check, http/dns/serf_lan/serf_wan/
     server ports and grpc = -1, as tests/common/mod.rs does), waits for a leader, and kills it at
     the end, also on Ctrl-C, SIGTERM and exceptions (and via PR_SET_PDEATHSIG if Python dies).
  2. Serves 200 on http://127.0.0.1:<port>/health from a thread and writes the service file
     {"service": {"name": "web", "id": "web-bench", "port": <port>, "check": {"http": ...,
     "interval": "10s", "timeout": "2s", "deregister_critical_service_after": "10m"}}}.
  3. Times, interleaved round-robin, --runs (default 20) runs each of
       a. consul-doctor check --http-addr 127.0.0.1:<http> --service-file <file> --format json
       b. consul members -http-addr=127.0.0.1:<http>
       c. benches/curl_requests.sh: the doctor's HTTP requests, one curl each
       and /bin/true, to show the harness' own spawn/wait overhead.
     Targets: doctor wall <= 0.25 x consul members wall (the minimum over the interleaved runs
     of each; medians and run-by-run ratios are printed beside it); doctor peak RSS <= 15 MiB.
  4. Registers N instances of "web" through PUT /v1/catalog/register (fake nodes
     bench-node-<k // 10>, Address 127.0.0.1, distinct ports, every instance with one check, every
     10th critical) for N = 500, 5,000 and 20,000, and times the same doctor command at each N
     (--scale-runs, default 20/20/10 runs), plus one curl of /v1/health/service/web for reference.
     Target at N = 5,000: wall <= 1 s, peak RSS <= 64 MiB. Prints the 20,000/500 growth.
  5. Points the doctor at a TCP listener that accepts and never answers:
     consul-doctor check --http-addr 127.0.0.1:<port> --timeout 2s (--silent-runs, default 5).
     Target: wall <= 2.5 s.
  6. Prints a Markdown table of every measurement (median, min, max, target, PASS/FAIL) and writes
     it, with the per-stage times from the doctor's JSON, to benches/RESULTS.md.

Measurement
  Each sample is two runs of the command, back to back:
  - Wall time, CPU and exit code: the command is posix_spawn()ed directly and timed with
    time.perf_counter() from the spawn to wait4() returning (the /bin/true row shows the ~0.7 ms
    this costs by itself; nothing is subtracted). CPU is ru_utime + ru_stime from wait4(), which
    includes the command's waited-for children (the curls of the curl script).
  - Peak RSS: on Linux a child's ru_maxrss starts at its parent's RSS when it forks/execs, so
    wait4() straight from this (large) Python process would report Python's size for every child.
    The second run goes through GNU time (`/usr/bin/time -f %M`), whose tiny process forks the
    command: %M is the peak RSS in KiB of the command and its waited-for children (for the curl
    script: the largest of bash and the curls). Without /usr/bin/time the harness polls
    /proc/<pid>/status VmHWM instead and marks RSS as approximate.

Exit status: 0 when every target passes, 1 when any target fails (the table is printed and
written either way), 130 on Ctrl-C, other non-zero values when the harness itself fails.

Options: --runs N, --scale-runs 20,20,10, --scales 500,5000,20000, --silent-runs N, --no-build,
--doctor PATH, --consul PATH, --results PATH, --quick (smoke test: scales 500,5000 with 3 runs each,
2 silent runs; step 3 keeps --runs).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import http.client
import http.server
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
CURL_SCRIPT = BENCHES / "curl_requests.sh"
REPRO = "python3 benches/bench.py"

# Targets from the brief.
TARGET_RATIO_MEMBERS = 0.25
TARGET_RSS_MIB = 15.0
TARGET_SCALE_N = 5000
TARGET_SCALE_WALL_S = 1.0
TARGET_SCALE_RSS_MIB = 64.0
TARGET_SILENT_WALL_S = 2.5

INSTANCES_PER_NODE = 10
CRITICAL_EVERY = 10
REGISTER_THREADS = 6


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Process hygiene


_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def child_env() -> dict[str, str]:
    """This environment without CONSUL_*, proxy and colour variables (as tests/common does)."""
    env = {}
    for k, v in os.environ.items():
        u = k.upper()
        if u.startswith("CONSUL_") or u.endswith("_PROXY") or u == "NO_COLOR" or u.startswith("CLICOLOR"):
            continue
        env[k] = v
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


_USED_PORTS: set[int] = set()


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1, never handed out twice."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        if port not in _USED_PORTS:
            _USED_PORTS.add(port)
            return port
    raise RuntimeError("no free port found")


def http_call(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30.0):
    """One request to 127.0.0.1:<port>; returns (status, body bytes) or (0, b'') when refused."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        r = conn.getresponse()
        return r.status, r.read()
    except (ConnectionError, OSError):
        return 0, b""
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------
# The Consul dev agent


class ConsulAgent:
    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.dir = workdir / "consul"
        self.dir.mkdir()
        self.http, self.dns, self.serf_lan, self.serf_wan, self.server = (free_port() for _ in range(5))
        self.node = f"bench-{self.http}"
        self.log_path = self.dir / "agent.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        config = self.dir / "agent.hcl"
        # log_level debug: the agent logs every HTTP request, which lets the harness list the
        # requests the doctor makes (compared with benches/curl_requests.sh at start-up).
        config.write_text(
            f'''node_name = "{self.node}"
datacenter = "dc1"
bind_addr = "127.0.0.1"
client_addr = "127.0.0.1"
disable_update_check = true
disable_host_node_id = true
log_level = "debug"
ports {{
  http = {self.http}
  dns = {self.dns}
  serf_lan = {self.serf_lan}
  serf_wan = {self.serf_wan}
  server = {self.server}
  grpc = -1
  https = -1
}}
'''
        )
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "agent", "-dev", f"-config-file={config}"],
            cwd=self.dir,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the harness, which then kills the agent
            preexec_fn=_die_with_parent,
        )
        logf.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"consul exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            status, body = http_call(self.http, "GET", "/v1/status/leader", timeout=2)
            if status == 200 and body.strip() not in (b"", b'""'):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"consul did not elect a leader in 60 s; log:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def requests_since(self, offset: int) -> list[str]:
        """'METHOD /path' of each HTTP request the agent logged after byte `offset`."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        out = []
        for m in re.finditer(r"Request finished: method=(\S+) url=(\S+)", text):
            out.append(f"{m.group(1)} {m.group(2)}")
        return out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------------------------
# Local listeners


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        body, code = (b"ok\n", 200) if self.path.split("?")[0] == "/health" else (b"not found\n", 404)
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *_args):
        pass


class HealthServer:
    def __init__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SilentListener:
    """Accepts TCP connections on 127.0.0.1 and never writes a byte."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.closed = False
        self.thread = threading.Thread(target=self._accept, name="silent", daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)  # held open, never answered, closed at stop()

    def stop(self):
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.close()


# ------------------------------------------------------------------------------------------------
# Running one command and measuring it


class Sample:
    __slots__ = ("wall_s", "rss_kib", "cpu_s", "code", "stdout", "stderr")

    def __init__(self, wall_s, rss_kib, cpu_s, code, stdout, stderr):
        self.wall_s, self.rss_kib, self.cpu_s, self.code = wall_s, rss_kib, cpu_s, code
        self.stdout, self.stderr = stdout, stderr


class Runner:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.env = child_env()
        self.time_bin = None
        gnu = Path("/usr/bin/time")
        if gnu.is_file() and os.access(gnu, os.X_OK):
            probe = tmp / "time.probe"
            r = subprocess.run([str(gnu), "-f", "%M", "-o", str(probe), "true"], capture_output=True)
            if r.returncode == 0 and probe.read_text().strip().splitlines()[-1].isdigit():
                self.time_bin = str(gnu)
        self.rss_exact = self.time_bin is not None
        if not self.rss_exact:
            log("WARNING: no GNU time at /usr/bin/time: peak RSS polled from /proc (approximate)")

    def _spawn(self, argv: list[str], capture: bool):
        """posix_spawn + wait4; returns (wall seconds, wait status, rusage, stdout, stderr)."""
        out_path = self.tmp / "cmd.stdout"
        err_path = self.tmp / "cmd.stderr"
        with open(out_path if capture else os.devnull, "wb") as out, open(err_path, "wb") as err:
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ]
            t0 = time.perf_counter()
            pid = os.posix_spawnp(argv[0], argv, self.env, file_actions=actions)
            _, status, ru = os.wait4(pid, 0)
            wall = time.perf_counter() - t0
        stdout = out_path.read_text(errors="replace") if capture else ""
        return wall, status, ru, stdout, err_path.read_text(errors="replace")

    def peak_rss_kib(self, argv: list[str]) -> int:
        """Peak RSS (KiB) of one run of argv and its waited-for children, under GNU time."""
        if not self.time_bin:
            return self._poll_hwm(argv)
        time_path = self.tmp / "cmd.time"
        self._spawn([self.time_bin, "-f", "%M", "-o", str(time_path), "--", *argv], capture=False)
        lines = [l for l in time_path.read_text(errors="replace").splitlines() if l.strip()]
        return int(lines[-1]) if lines and lines[-1].strip().isdigit() else 0

    def run(self, argv: list[str], capture: bool = False, rss: bool = True) -> Sample:
        """One measured run: wall time, CPU and exit code from a direct spawn (no launcher), then,
        with rss, a second run of the same command under GNU time for its peak RSS."""
        wall, status, ru, stdout, stderr = self._spawn(list(argv), capture)
        return Sample(
            wall_s=wall,
            rss_kib=self.peak_rss_kib(argv) if rss else 0,
            cpu_s=ru.ru_utime + ru.ru_stime,
            code=os.waitstatus_to_exitcode(status),
            stdout=stdout,
            stderr=stderr,
        )

    def _poll_hwm(self, argv: list[str]) -> int:
        pid = os.posix_spawnp(argv[0], argv, self.env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
        peak = 0
        while True:
            wpid, status, ru = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                return peak
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            time.sleep(0.001)


# ------------------------------------------------------------------------------------------------
# Statistics and the results table


class Series:
    def __init__(self, name: str):
        self.name = name
        self.samples: list[Sample] = []
        self.codes: dict[int, int] = {}

    def add(self, s: Sample):
        self.samples.append(s)
        self.codes[s.code] = self.codes.get(s.code, 0) + 1

    def values(self, attr: str) -> list[float]:
        return [getattr(s, attr) for s in self.samples]

    def stat(self, attr: str, scale: float = 1.0):
        v = [x * scale for x in self.values(attr)]
        return statistics.median(v), min(v), max(v)

    def wall_ms(self):
        return self.stat("wall_s", 1000.0)

    def rss_mib(self):
        return self.stat("rss_kib", 1 / 1024)

    def cpu_ms(self):
        return self.stat("cpu_s", 1000.0)


def fmt(x: float, unit: str) -> str:
    if unit == "ms":
        return f"{x:.1f}" if x < 100 else f"{x:.0f}"
    if unit == "MiB":
        return f"{x:.1f}"
    return f"{x:.2f}"


class Table:
    HEAD = ["#", "Measurement", "Runs", "Median", "Min", "Max", "Target", "Result"]

    def __init__(self):
        self.rows: list[list[str]] = []
        self.verdicts: list[tuple[str, bool]] = []

    def series(self, ref: str, label: str, s: Series, what: str, target: float | None = None, tname: str = ""):
        if what == "wall":
            med, lo, hi = s.wall_ms()
            unit = "ms"
            label = f"{label}: wall (ms)"
        elif what == "rss":
            med, lo, hi = s.rss_mib()
            unit = "MiB"
            label = f"{label}: peak RSS (MiB)"
        else:
            med, lo, hi = s.cpu_ms()
            unit = "ms"
            label = f"{label}: CPU user+sys (ms)"
        tcell, rcell = "", ""
        if target is not None:
            ok = med <= target
            tcell = tname or f"≤ {fmt(target, unit)} {unit}"
            rcell = "PASS" if ok else "**FAIL**"
            self.verdicts.append((f"{ref} {label}", ok))
        self.rows.append([ref, label, str(len(s.samples)), fmt(med, unit), fmt(lo, unit), fmt(hi, unit), tcell, rcell])

    def value(self, ref: str, label: str, value: str, target: str = "", ok: bool | None = None, runs: str = ""):
        rcell = "" if ok is None else ("PASS" if ok else "**FAIL**")
        if ok is not None:
            self.verdicts.append((f"{ref} {label}", ok))
        self.rows.append([ref, label, runs, value, "", "", target, rcell])

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.HEAD) + " |", "|" + "|".join(["---"] * len(self.HEAD)) + "|"]
        for r in self.rows:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
        return "\n".join(lines)


def stage_times(report: dict) -> dict[str, int]:
    """Per stage: the largest elapsed_ms of its checks (stages run their checks in one future)."""
    out: dict[str, int] = {}
    for c in report.get("checks", []):
        st = c.get("stage", "?")
        out[st] = max(out.get(st, 0), int(c.get("elapsed_ms") or 0))
    return out


# ------------------------------------------------------------------------------------------------
# The benchmark


def build_doctor(skip: bool) -> Path:
    binary = ROOT / "target" / "release" / "consul-doctor"
    if not skip:
        log("cargo build --release (may wait for another build to finish) ...")
        r = subprocess.run(["cargo", "build", "--release"], cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr)
        if r.returncode != 0:
            if binary.is_file():
                log("WARNING: cargo build --release failed; benchmarking the existing binary")
            else:
                sys.exit("bench: cargo build --release failed and there is no target/release/consul-doctor")
    if not binary.is_file():
        sys.exit(f"bench: {binary} not found (run cargo build --release)")
    return binary


def find_consul() -> str:
    r = subprocess.run(["bash", str(ROOT / "scripts" / "install-consul.sh")], capture_output=True, text=True)
    path = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    if r.returncode != 0 or not Path(path).is_file():
        sys.exit(f"bench: scripts/install-consul.sh failed:\n{r.stderr}")
    return path


def service_payload(k: int, avoid_port: int) -> bytes:
    node = f"bench-node-{k // INSTANCES_PER_NODE}"
    sid = f"web-{k}"
    port = 10000 + k
    if port == avoid_port:
        port = 65001
    critical = k % CRITICAL_EVERY == 0
    return json.dumps(
        {
            "Node": node,
            "Address": "127.0.0.1",
            "Service": {"ID": sid, "Service": "web", "Address": "127.0.0.1", "Port": port, "Tags": ["bench"]},
            "Check": {
                "Node": node,
                "CheckID": f"{sid}-health",
                "Name": "web health",
                "ServiceID": sid,
                "Status": "critical" if critical else "passing",
                "Output": "HTTP GET: connection refused" if critical else "HTTP GET: 200 OK",
            },
        }
    ).encode()


def register_instances(http_port: int, start: int, end: int, avoid_port: int) -> float:
    """PUT /v1/catalog/register for instances start..end-1 from a few threads; returns seconds."""
    keys = list(range(start, end))
    chunks = [keys[i::REGISTER_THREADS] for i in range(REGISTER_THREADS)]

    def worker(ks: list[int]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=60)
        try:
            for k in ks:
                conn.request("PUT", "/v1/catalog/register", body=service_payload(k, avoid_port),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200 or data.strip() != b"true":
                    raise RuntimeError(f"catalog register web-{k}: {r.status} {data[:200]!r}")
        finally:
            conn.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(REGISTER_THREADS) as ex:
        for f in [ex.submit(worker, c) for c in chunks if c]:
            f.result()
    return time.perf_counter() - t0


def doctor_body_cap() -> int | None:
    """The doctor's cap for /v1/health/service bodies, which it decodes while they stream in
    (consul::MAX_STREAMED_BODY), read from src/consul.rs when recognisable."""
    try:
        m = re.search(r"MAX_STREAMED_BODY:\s*usize\s*=\s*(\d+)\s*\*\s*1024\s*\*\s*1024", (ROOT / "src" / "consul.rs").read_text())
    except OSError:
        return None
    return int(m.group(1)) * 2**20 if m else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="runs of each command in step 3 (>= 20)")
    ap.add_argument("--scales", default="500,5000,20000", help="catalog sizes for step 4")
    ap.add_argument("--scale-runs", default="20,20,10", help="doctor runs at each catalog size")
    ap.add_argument("--silent-runs", type=int, default=5)
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    ap.add_argument("--doctor", help="doctor binary (default target/release/consul-doctor)")
    ap.add_argument("--consul", help="consul binary (default: scripts/install-consul.sh)")
    ap.add_argument("--results", default=str(BENCHES / "RESULTS.md"), help="where to write the table")
    ap.add_argument("--quick", action="store_true", help="smoke test: scales 500,5000 with 3 runs each")
    args = ap.parse_args()
    if args.quick:
        args.scales, args.scale_runs, args.silent_runs = "500,5000", "3,3", 2
    scales = [int(x) for x in args.scales.split(",") if x]
    scale_runs = [int(x) for x in args.scale_runs.split(",") if x]
    scale_runs += [scale_runs[-1]] * (len(scales) - len(scale_runs))
    if args.runs < 20:
        log(f"WARNING: --runs {args.runs} is below the 20 runs the benchmark asks for")

    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)

    doctor = Path(args.doctor) if args.doctor else build_doctor(args.no_build)
    consul = args.consul or find_consul()
    for tool in ("bash", "curl"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found on PATH")

    started = time.time()
    load_start = os.getloadavg()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="consul-doctor-bench-")))
        runner = Runner(tmp)

        health = HealthServer()
        stack.callback(health.stop)
        agent = ConsulAgent(consul, tmp)
        stack.callback(agent.stop)
        log(f"starting consul agent -dev on 127.0.0.1:{agent.http} ...")
        agent.start()
        http_addr = f"127.0.0.1:{agent.http}"
        health_url = f"http://127.0.0.1:{health.port}/health"
        svc_file = tmp / "web.json"
        svc_file.write_text(json.dumps({"service": {
            "name": "web", "id": "web-bench", "port": health.port,
            "check": {"http": health_url, "interval": "10s", "timeout": "2s",
                      "deregister_critical_service_after": "10m"}}}, indent=2))

        doctor_cmd = [str(doctor), "check", "--http-addr", http_addr, "--service-file", str(svc_file), "--format", "json"]
        members_cmd = [consul, "members", f"-http-addr={http_addr}"]
        curl_cmd = ["bash", str(CURL_SCRIPT), http_addr, health_url, "web"]
        true_cmd = ["true"]

        versions = {
            "doctor": subprocess.run([str(doctor), "--version"], capture_output=True, text=True).stdout.strip().splitlines()[0:1],
            "consul": subprocess.run([consul, "version"], capture_output=True, text=True).stdout.strip().splitlines()[0:1],
            "curl": subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[0:1],
        }
        git = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "Cargo.toml"],
                               capture_output=True, text=True).stdout.strip()

        # --- sanity run: does the doctor work here, and which requests does it make? ----------
        off = agent.log_size()
        first = runner.run(doctor_cmd, capture=True, rss=False)
        time.sleep(0.5)
        doctor_reqs = agent.requests_since(off)
        try:
            report = json.loads(first.stdout)
        except json.JSONDecodeError:
            raise RuntimeError(f"doctor output is not JSON (exit {first.code}):\n{first.stdout}\n{first.stderr}")
        log(f"doctor sanity run: exit {first.code}, status {report.get('status')}, "
            f"summary {report.get('summary')}, root cause {report.get('root_cause')}")
        for c in report.get("checks", []):
            if c.get("status") in ("warn", "fail"):
                log(f"  {c['status']} {c['id']} {c.get('code')}: {c.get('message', '')[:160]}")
        off = agent.log_size()
        curl_first = runner.run(curl_cmd, rss=False)
        time.sleep(0.5)
        curl_reqs = agent.requests_since(off)
        if curl_first.code != 0:
            raise RuntimeError(f"curl script failed ({curl_first.code}): {curl_first.stderr}")
        request_note = ""
        if sorted(doctor_reqs) != sorted(curl_reqs):
            request_note = (f"WARNING: the doctor's requests differ from benches/curl_requests.sh: "
                            f"doctor {doctor_reqs}, curl {curl_reqs}")
            log(request_note)
        else:
            log(f"the doctor made {len(doctor_reqs)} agent requests (+1 health probe), the same as curl_requests.sh: {doctor_reqs}")
        members_first = runner.run(members_cmd, capture=True, rss=False)
        if members_first.code != 0:
            raise RuntimeError(f"consul members failed: {members_first.stderr}")

        # --- step 3: interleaved runs --------------------------------------------------------
        log(f"step 3: {args.runs} interleaved samples of doctor / consul members / curl script / true ...")
        s_doc, s_mem, s_curl, s_true = Series("doctor"), Series("members"), Series("curl"), Series("true")
        doc_stage_runs: list[dict[str, int]] = []
        for _ in range(args.runs):
            for series, cmd in ((s_doc, doctor_cmd), (s_mem, members_cmd), (s_curl, curl_cmd), (s_true, true_cmd)):
                smp = runner.run(cmd, capture=series is s_doc)
                if series is s_doc:
                    with contextlib.suppress(json.JSONDecodeError):
                        doc_stage_runs.append(stage_times(json.loads(smp.stdout)))
                    smp.stdout = ""
                series.add(smp)
        for s in (s_doc, s_mem, s_curl):
            bad = {c: n for c, n in s.codes.items() if c not in (0, 1)}
            if bad:
                log(f"WARNING: {s.name} exit codes {s.codes}")

        # --- step 4: catalog scale ------------------------------------------------------------
        scale_results = []  # (n, runs, series, body_bytes, curl_series, reg_seconds, stage medians, report)
        registered = 0
        for n, runs in zip(scales, scale_runs):
            if n > registered:
                log(f"step 4: registering web instances {registered}..{n - 1} via /v1/catalog/register ...")
                reg_s = register_instances(agent.http, registered, n, health.port)
                registered = n
            else:
                reg_s = 0.0
            status, body = http_call(agent.http, "GET", "/v1/health/service/web", timeout=120)
            entries = json.loads(body) if status == 200 else []
            if len(entries) != n:
                raise RuntimeError(f"expected {n} instances of web in the catalog, found {len(entries)}")
            critical = sum(1 for e in entries if any(c.get("Status") == "critical" for c in e.get("Checks", [])))
            log(f"  N={n}: registered in {reg_s:.1f} s; /v1/health/service/web is {len(body) / 2**20:.1f} MiB, "
                f"{critical} critical; {runs} doctor runs ...")
            curl_series = Series(f"curl-{n}")
            s = Series(f"doctor-{n}")
            stages_n: list[dict[str, int]] = []
            last_report = None
            for i in range(runs):
                smp = runner.run(doctor_cmd, capture=True)
                try:
                    rep = json.loads(smp.stdout)
                    stages_n.append(stage_times(rep))
                    last_report = rep
                except json.JSONDecodeError:
                    log(f"WARNING: doctor output at N={n} is not JSON (exit {smp.code}): {smp.stderr[:300]}")
                smp.stdout = ""
                s.add(smp)
                if i < 5:
                    curl_series.add(runner.run(["curl", "-s", "-o", "/dev/null", "--noproxy", "*",
                                                f"http://{http_addr}/v1/health/service/web"], rss=False))
            if last_report is not None:
                rc = last_report.get("root_cause") or {}
                log(f"  N={n}: doctor exit codes {s.codes}, status {last_report.get('status')}"
                    + (f", root cause {rc.get('code')}: {rc.get('message', '')[:160]}" if rc else ""))
            scale_results.append((n, runs, s, len(body), curl_series, reg_s, stages_n, last_report))
            del body, entries

        # --- step 5: silent agent -------------------------------------------------------------
        log(f"step 5: {args.silent_runs} runs against a listener that never answers ...")
        silent = SilentListener()
        stack.callback(silent.stop)
        silent_cmd = [str(doctor), "check", "--http-addr", f"127.0.0.1:{silent.port}", "--timeout", "2s"]
        s_silent = Series("silent")
        silent_report_root = None
        for _ in range(args.silent_runs):
            smp = runner.run(silent_cmd + ["--format", "json"], capture=True)
            with contextlib.suppress(json.JSONDecodeError, AttributeError):
                silent_report_root = (json.loads(smp.stdout).get("root_cause") or {}).get("code")
            smp.stdout = ""
            s_silent.add(smp)

        # --- step 6: the table ----------------------------------------------------------------
        t = Table()
        t.series("3", "/bin/true (the harness' own spawn + wait cost)", s_true, "wall")
        t.series("3a", "doctor check", s_doc, "wall")
        t.series("3a", "doctor check", s_doc, "rss", TARGET_RSS_MIB)
        t.series("3a", "doctor check", s_doc, "cpu")
        t.series("3b", "consul members", s_mem, "wall")
        t.series("3b", "consul members", s_mem, "rss")
        t.series("3b", "consul members", s_mem, "cpu")
        t.series("3c", "curl script (10 requests, one curl each)", s_curl, "wall")
        t.series("3c", "curl script (10 requests, one curl each)", s_curl, "rss")
        t.series("3c", "curl script (10 requests, one curl each)", s_curl, "cpu")
        doc_w, mem_w, curl_w = s_doc.wall_ms()[0], s_mem.wall_ms()[0], s_curl.wall_ms()[0]
        # The target is the measure: the fastest doctor run against the fastest `consul
        # members` run of the same interleaved series (what each costs without the machine's
        # other load); the medians and the run-by-run ratios are shown beside it.
        doc_min, mem_min = min(s_doc.values("wall_s")), min(s_mem.values("wall_s"))
        ratio_min = doc_min / mem_min
        paired = sorted(d / m for d, m in zip(s_doc.values("wall_s"), s_mem.values("wall_s")))
        t.value("3", "ratio doctor / consul members, min wall (minimum over the interleaved runs)",
                f"{ratio_min:.2f}", f"≤ {TARGET_RATIO_MEMBERS}", ratio_min <= TARGET_RATIO_MEMBERS)
        t.value("3", "ratio doctor / consul members, median wall", f"{doc_w / mem_w:.2f}")
        t.value("3", "ratio doctor / consul members, run by run (run k of each): median, min",
                f"{statistics.median(paired):.2f}, {paired[0]:.2f}")
        t.value("3", "ratio doctor / curl script, median wall", f"{doc_w / curl_w:.2f}")
        t.value("3", "doctor peak RSS, median (MiB)", fmt(s_doc.rss_mib()[0], "MiB"), f"≤ {TARGET_RSS_MIB:g} MiB",
                s_doc.rss_mib()[0] <= TARGET_RSS_MIB)
        for n, runs, s, nbytes, cs, _reg, _st, _rep in scale_results:
            tag = f"4 N={n:,}"
            note = f" (median of {runs})" if runs < 20 else ""
            is_target = n == TARGET_SCALE_N
            t.series(tag, f"doctor check, {n:,} instances{note}", s, "wall",
                     TARGET_SCALE_WALL_S * 1000 if is_target else None)
            t.series(tag, f"doctor check, {n:,} instances{note}", s, "rss",
                     TARGET_SCALE_RSS_MIB if is_target else None)
            t.series(tag, f"doctor check, {n:,} instances{note}", s, "cpu")
            t.series(tag, f"curl GET /v1/health/service/web ({nbytes / 2**20:.1f} MiB body)", cs, "wall")
        cap = doctor_body_cap()
        if cap and scale_results:
            n, _r, _s, nbytes, *_ = scale_results[-1]
            t.value(f"4 N={n:,}", "/v1/health/service/web body vs. the doctor's response cap (MAX_STREAMED_BODY in src/consul.rs)",
                    f"{nbytes / 2**20:.1f} of {cap / 2**20:.0f} MiB ({100 * nbytes / cap:.0f}%)")
        by_n = {n: s for n, _r, s, *_ in scale_results}
        if 500 in by_n and 20000 in by_n:
            gw = by_n[20000].wall_ms()[0] / by_n[500].wall_ms()[0]
            gr = by_n[20000].rss_mib()[0] / by_n[500].rss_mib()[0]
            gc = by_n[20000].cpu_ms()[0] / by_n[500].cpu_ms()[0]
            t.value("4", "growth 20,000 / 500 instances (40× the data): wall", f"{gw:.1f}×")
            t.value("4", "growth 20,000 / 500 instances: peak RSS", f"{gr:.1f}×")
            t.value("4", "growth 20,000 / 500 instances: CPU", f"{gc:.1f}×")
        t.series("5", "doctor check --timeout 2s vs. a silent listener", s_silent, "wall", TARGET_SILENT_WALL_S * 1000)
        t.series("5", "doctor check --timeout 2s vs. a silent listener", s_silent, "rss")

        # per-stage table (from the doctor's JSON elapsed_ms)
        stage_names = []
        for runs_list in [doc_stage_runs] + [r[6] for r in scale_results]:
            for d in runs_list:
                for k in d:
                    if k not in stage_names:
                        stage_names.append(k)
        cols = [("3a (no instances)", doc_stage_runs)] + [(f"N={r[0]:,}", r[6]) for r in scale_results]
        st_lines = ["| Stage | " + " | ".join(c for c, _ in cols) + " |", "|---|" + "---|" * len(cols)]
        for name in stage_names:
            cells = []
            for _c, runs_list in cols:
                vals = [d.get(name, 0) for d in runs_list]
                cells.append(f"{statistics.median(vals):.0f}" if vals else "")
            st_lines.append(f"| {name} | " + " | ".join(cells) + " |")
        stage_table = "\n".join(st_lines)

        elapsed = time.time() - started
        load_end = os.getloadavg()
        built = datetime.datetime.fromtimestamp(doctor.stat().st_mtime, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
        rss_how = ("GNU time (`/usr/bin/time -f %M`: max RSS of the command and its waited-for children), because a "
                   "child spawned straight from Python inherits Python's RSS as its starting ru_maxrss"
                   if runner.rss_exact else "APPROXIMATE polling of /proc VmHWM every 1 ms (no GNU time found)")
        verdicts = "\n".join(f"- {'PASS' if ok else '**FAIL**'}: {what}" for what, ok in t.verdicts)
        header = f"""# consul-doctor benchmark results

Reproduce from the repository root with:

```
{REPRO}
```

- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; harness run time {elapsed:.0f} s
- Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}; load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end (other work on the machine shows here)
- consul-doctor: {' '.join(versions['doctor'])}, `{os.path.relpath(doctor, ROOT)}` built {built}; HEAD {git}{' (the working tree had uncommitted changes under src/ or Cargo.toml)' if dirty else ''}
- Consul: {' '.join(versions['consul'])} (`consul agent -dev`, loopback, log_level debug); {' '.join(versions['curl'])}
- Each sample is two runs of the command. Wall time, CPU (user+sys, including waited-for children) and exit code come from a direct `posix_spawn` + `wait4` (the /bin/true row is that cost alone); peak RSS comes from a second run under {rss_how}.
- Step 3 samples are interleaved round-robin (doctor, consul members, curl script, true), {args.runs} each, after one warm-up run of each command.
- Step 4 registers instances with PUT /v1/catalog/register on fake nodes `bench-node-<k/{INSTANCES_PER_NODE}>` (Address 127.0.0.1, port 10000+k, one check each, every {CRITICAL_EVERY}th critical); the doctor's service `web-bench` is not among them.
- Doctor sanity run: exit {first.code}, status `{report.get('status')}`, summary {json.dumps(report.get('summary'))}; silent-agent root cause `{silent_report_root}`.
- Doctor status by catalog size (last run; exit codes over all runs): {'; '.join(f"N={r[0]:,}: `{(r[7] or {}).get('status')}`{' (' + ((r[7] or {}).get('root_cause') or {}).get('code', '') + ')' if (r[7] or {}).get('root_cause') else ''}, exit {dict(r[2].codes)}" for r in scale_results)}
- Requests the doctor made in one run (from the agent's debug log; plus one GET of the health URL): {', '.join(f'`{r}`' for r in doctor_reqs)}{chr(10) + '- ' + request_note if request_note else ''}

Commands measured:

- 3a: `consul-doctor check --http-addr 127.0.0.1:<http> --service-file <web.json> --format json`
- 3b: `consul members -http-addr=127.0.0.1:<http>`
- 3c: `bash benches/curl_requests.sh 127.0.0.1:<http> http://127.0.0.1:<port>/health web`
- 4: the 3a command after registering N instances of `web`; beside it one `curl -s -o /dev/null http://127.0.0.1:<http>/v1/health/service/web` (first 5 runs)
- 5: `consul-doctor check --http-addr 127.0.0.1:<silent> --timeout 2s --format json`

## Results

{t.markdown()}

## Targets

{verdicts}

## Per-stage time inside the doctor (median elapsed_ms from its JSON report)

Stages run concurrently where the dependency table allows, so these do not add up to the wall time.

{stage_table}
"""
        print()
        print(header)
        Path(args.results).write_text(header)
        log(f"wrote {args.results}")
        failed = [w for w, ok in t.verdicts if not ok]
        return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nbench: interrupted; the Consul agent and listeners were stopped", file=sys.stderr)
        sys.exit(130)
