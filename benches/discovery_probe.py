#!/usr/bin/env python3
"""Cost of the discovery stage and of `check --probe-register`, against a real local Consul agent.

    python3 benches/discovery_probe.py [--runs 10] [--no-build]

Reuses benches/bench.py's agent, runner and statistics (loopback only, its own `consul agent -dev`
on free ports, killed at the end). Measures, interleaved round-robin, --runs runs each of
  a. check --service web (one passing instance registered): the discovery stage on (default)
  b. the same with --skip discovery: the difference is what discovery costs
  c. the same with --probe-register: one canary registration, catalog wait, deregistration
and reports the probe's register-to-catalog latency (probe.catalog evidence latency_ms) and the
discovery stage's own time from the JSON report. Then registers 5,000 instances of "web" (every
10th critical, as bench.py does) and times a again, with --skip discovery beside it.
Prints a Markdown table; no targets of its own (bench.py's 15 MiB / 64 MiB budgets apply).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def stage_ms(stdout: str, stage: str) -> int:
    try:
        return bench.stage_times(json.loads(stdout)).get(stage, 0)
    except (ValueError, KeyError):
        return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    doctor = str(bench.build_doctor(args.no_build))
    consul = bench.find_consul()
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp:
        tmp = Path(tmp)
        agent = bench.ConsulAgent(consul, tmp)
        agent.start()
        try:
            body = json.dumps({"Name": "web", "ID": "web-1", "Port": 8080, "Tags": ["v1"]}).encode()
            status, _ = bench.http_call(agent.http, "PUT", "/v1/agent/service/register", body)
            assert status == 200
            runner = bench.Runner(tmp)
            base = [doctor, "check", "--format", "json", "--http-addr", f"127.0.0.1:{agent.http}",
                    "--service", "web", "--service-id", "web-1", "--service-port", "8080"]
            variants = {
                "check, discovery on (default)": base,
                "check --skip discovery": base + ["--skip", "discovery"],
                "check --probe-register": base + ["--probe-register"],
            }
            series = {k: bench.Series(k) for k in variants}
            disc_ms, latency = [], []
            for _ in range(args.runs):
                for name, argv in variants.items():
                    s = runner.run(argv, capture=True)
                    series[name].add(s)
                    if name.startswith("check, discovery"):
                        disc_ms.append(stage_ms(s.stdout, "discovery"))
                    if "probe" in name:
                        for c in json.loads(s.stdout)["checks"]:
                            if c["id"] == "probe.catalog" and "latency_ms" in c["evidence"]:
                                latency.append(int(c["evidence"]["latency_ms"]))
            bench.log("registering 5,000 instances of web ...")
            bench.register_instances(agent.http, 0, 5000, 8080)
            big = {
                "N=5000: check, discovery on": base,
                "N=5000: check --skip discovery": base + ["--skip", "discovery"],
            }
            big_series = {k: bench.Series(k) for k in big}
            big_disc = []
            for _ in range(args.runs):
                for name, argv in big.items():
                    s = runner.run(argv, capture=True)
                    big_series[name].add(s)
                    if "on" in name:
                        big_disc.append(stage_ms(s.stdout, "discovery"))
        finally:
            agent.stop()
    print("| command | wall median (min-max) ms | peak RSS median MiB | exit codes |")
    print("|---|---|---|---|")
    for s in list(series.values()) + list(big_series.values()):
        w, lo, hi = s.wall_ms()
        r, _, _ = s.rss_mib()
        print(f"| {s.name} | {w:.1f} ({lo:.1f}-{hi:.1f}) | {r:.1f} | {s.codes} |")
    print()
    print(f"discovery stage (1 instance): median {statistics.median(disc_ms)} ms")
    print(f"discovery stage (5,000 instances): median {statistics.median(big_disc)} ms")
    if latency:
        print(f"probe register-to-catalog latency: median {statistics.median(latency)} ms "
              f"(min {min(latency)}, max {max(latency)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
