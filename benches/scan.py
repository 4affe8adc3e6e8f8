#!/usr/bin/env python3
"""consul-doctor scan benchmark: wall time and peak RSS of a whole-catalog scan against a real,
local Consul 1.8.7 dev agent, at growing catalog sizes, beside a by-hand curl | jq script that
fetches the same data (benches/scan_curl_jq.sh).

    python3 benches/scan.py [--sizes 2000,20000,50000] [--runs 5] [--no-build]

It reuses benches/bench.py's agent, process and measurement helpers (posix_spawn + wait4 for wall
time, GNU time for peak RSS). The catalog is seeded through PUT /v1/catalog/register: instances
spread over services of 10 instances each (2,000 services for 20,000 instances), 10 instances per
fake node, each node marked external-node (as consul-esm's are) so passing instances are not
findings, one check per instance and every 10th instance critical (each of those is an SCN-002
finding and a prune candidate). All traffic stays on 127.0.0.1.

Targets: 20,000 instances across 2,000 services: scan <= 2 s wall and <= 100 MiB peak RSS, and
scan <= 1.5x the bare curl of /v1/internal/ui/nodes (the median of scan/curl over interleaved
pairs: the doctor's other reads are a few small requests beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ConsulAgent, Runner, build_doctor, find_consul, log  # noqa: E402

BENCHES = Path(__file__).resolve().parent
PER_SERVICE = 10
PER_NODE = 10
CRITICAL_EVERY = 10
THREADS = 6


def payload(k: int) -> bytes:
    node = f"scan-node-{k // PER_NODE}"
    sid = f"svc-{k // PER_SERVICE}-{k}"
    critical = k % CRITICAL_EVERY == 0
    return json.dumps({
        "Node": node,
        "Address": "127.0.0.1",
        "NodeMeta": {"external-node": "true", "external-probe": "true"},
        "Service": {"ID": sid, "Service": f"svc-{k // PER_SERVICE}", "Address": "127.0.0.1",
                    "Port": 10000 + k % 50000, "Tags": ["bench", "v1"]},
        "Check": {"Node": node, "CheckID": f"{sid}-health", "Name": "health", "ServiceID": sid,
                  "Status": "critical" if critical else "passing",
                  "Output": "HTTP GET: connection refused" if critical else "HTTP GET: 200 OK"},
    }).encode()


def register(port: int, start: int, end: int) -> float:
    keys = list(range(start, end))

    def worker(ks: list[int]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for k in ks:
                conn.request("PUT", "/v1/catalog/register", body=payload(k), headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200 or data.strip() != b"true":
                    raise RuntimeError(f"catalog register {k}: {r.status} {data[:200]!r}")
        finally:
            conn.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as ex:
        for f in [ex.submit(worker, keys[i::THREADS]) for i in range(THREADS)]:
            f.result()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,20000,50000")
    ap.add_argument("--runs", type=int, default=5, help="runs of each command at each size")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--results", default=str(BENCHES / "SCAN_RESULTS.md"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    doctor = build_doctor(args.no_build)
    consul = find_consul()
    have_jq = shutil.which("jq") is not None
    if not have_jq:
        log("WARNING: jq not found (apt-get install jq): the curl | jq column is left out")
    rows = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="consul-doctor-scan-bench-")))
        runner = Runner(tmp)
        agent = ConsulAgent(consul, tmp)
        stack.callback(agent.stop)
        agent.start()
        addr = f"127.0.0.1:{agent.http}"
        done = 0
        for n in sizes:
            log(f"registering instances {done}..{n} ...")
            took = register(agent.http, done, n)
            done = n
            log(f"  {took:.1f} s")
            scan_cmd = [str(doctor), "scan", "--http-addr", addr, "--format", "json", "--timeout", "30s"]
            jq_cmd = ["bash", str(BENCHES / "scan_curl_jq.sh"), addr]
            check = runner.run(scan_cmd, capture=True, rss=False)
            report = json.loads(check.stdout)
            assert report["scanned"]["instances"] >= n, report["scanned"]
            row = {"n": n, "services": report["scanned"]["services"], "findings": report["summary"]["findings"],
                   "code": check.code}
            curl_cmd = ["curl", "-s", "-o", "/dev/null", "--noproxy", "*", f"http://{addr}/v1/internal/ui/nodes"]
            # scan and the bare curl interleaved (scan, curl, scan, curl, ...): each pair shares
            # the machine's state, so their ratio holds when the agent's own speed drifts.
            runner.run(scan_cmd, rss=False)
            runner.run(curl_cmd, rss=False)
            pairs = [(runner.run(scan_cmd), runner.run(curl_cmd)) for _ in range(args.runs)]
            ratios = [a.wall_s / b.wall_s for a, b in pairs if b.wall_s > 0]
            row["ratio"] = {"median": statistics.median(ratios), "min": min(ratios)}
            for name, cmd in [("scan", scan_cmd), ("curl", curl_cmd)] + ([("jq", jq_cmd)] if have_jq else []):
                if name == "jq":
                    runner.run(cmd, rss=False)  # warm-up
                    samples = [runner.run(cmd) for _ in range(args.runs)]
                else:
                    samples = [p[0] if name == "scan" else p[1] for p in pairs]
                row[name] = {
                    "wall_ms": statistics.median(s.wall_s for s in samples) * 1000,
                    "wall_max_ms": max(s.wall_s for s in samples) * 1000,
                    "rss_mib": statistics.median(s.rss_kib for s in samples) / 1024,
                    "rss_max_mib": max(s.rss_kib for s in samples) / 1024,
                    "codes": sorted({s.code for s in samples}),
                }
            rows.append(row)
            log(json.dumps(row))
    lines = [
        "# consul-doctor scan benchmark results",
        "",
        "Reproduce with `python3 benches/scan.py` (see its docstring for the catalog it seeds).",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.runs} runs per command and size (median, max)",
        f"- Consul: {subprocess.run([consul, 'version'], capture_output=True, text=True).stdout.splitlines()[0]} (`agent -dev`, loopback)",
        "- scan: `consul-doctor scan --http-addr 127.0.0.1:<http> --format json --timeout 30s`",
        "- curl | jq: `benches/scan_curl_jq.sh 127.0.0.1:<http>` (same endpoints, counts and duplicates in jq)",
        "- curl alone: `curl -s -o /dev/null http://127.0.0.1:<http>/v1/internal/ui/nodes` (the agent's own time to serve the catalog: the floor)",
        f"- load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other builds share the machine)",
        "",
        "| instances | services | findings | scan wall ms (max) | scan peak RSS MiB (max) | curl ui/nodes alone wall ms (max) | scan / curl, paired (median, min) | curl\\|jq wall ms (max) | curl\\|jq peak RSS MiB (max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, j, c = r["scan"], r.get("jq"), r["curl"]
        jq_cells = f"{j['wall_ms']:.0f} ({j['wall_max_ms']:.0f}) | {j['rss_mib']:.1f} ({j['rss_max_mib']:.1f})" if j else "- | -"
        lines.append(f"| {r['n']:,} | {r['services']:,} | {r['findings']:,} | {s['wall_ms']:.0f} ({s['wall_max_ms']:.0f}) | "
                     f"{s['rss_mib']:.1f} ({s['rss_max_mib']:.1f}) | {c['wall_ms']:.0f} ({c['wall_max_ms']:.0f}) | "
                     f"{r['ratio']['median']:.2f}, {r['ratio']['min']:.2f} | {jq_cells} |")
    target = next((r for r in rows if r["n"] == 20000), None)
    if target:
        ok = target["scan"]["wall_ms"] <= 2000 and target["scan"]["rss_max_mib"] <= 100
        lines += ["", f"Target at 20,000 instances (median wall <= 2 s, peak RSS <= 100 MiB in every run): {'PASS' if ok else 'FAIL'}"]
        near = target["ratio"]["median"] <= 1.5
        lines += [f"Target at 20,000 instances (scan <= 1.5x the bare transfer of /v1/internal/ui/nodes, median of paired runs): {'PASS' if near else 'FAIL'}"]
    Path(args.results).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
