#!/usr/bin/env python3
"""consul-doctor wait benchmark: reaction time, requests while idle, peak RSS and CPU.

    python3 benches/wait.py [--runs 20] [--idle-seconds 60] [--instances 5000] [--no-build]

Uses the helpers of benches/bench.py (its own `consul agent -dev` on loopback with free ports,
killed at the end; release build first). All traffic stays on 127.0.0.1.

  1. Reaction: --runs times, starts `consul-doctor wait --service react-<k>`, lets it reach its
     blocking query (1 s), registers react-<k> (no check, so passing) with
     PUT /v1/agent/service/register, and measures from the PUT's answer to the process exit.
     Target: median <= 50 ms.
  2. Idle: registers "idle" with a critical check through the catalog, runs
     `wait --service idle --deadline <idle-seconds>s` and counts, from the agent's debug log,
     the /v1/health/service/idle requests it made. Target: <= 3 in 60 s. Also reports the
     process's CPU time (user+sys, from GNU time) over the whole run.
  3. Memory: registers --instances instances of "web" (fake nodes, every 10th critical, as
     bench.py does) and runs `wait --service web --min-passing <instances+1> --deadline 10s`,
     which reads the whole list on every answer; reports peak RSS (GNU time).
     Target: <= 15 MiB.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def spawn(binary: Path, args: list[str], measure: Path | None = None) -> subprocess.Popen:
    # GNU time reports the doctor's own peak RSS (wait4 on a child forked from Python would
    # count the pages of the Python process it was forked from).
    prefix = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(measure)] if measure else []
    return subprocess.Popen(
        [*prefix, str(binary), "wait", *args],
        env=bench.child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=bench._die_with_parent,
    )


def reap(proc: subprocess.Popen, measure: Path) -> tuple[int, float, float, bytes]:
    """(exit code, CPU seconds, peak RSS MiB, stdout), as GNU time measured them."""
    out = proc.stdout.read() if proc.stdout else b""
    proc.wait()
    rss_kib, user, system = measure.read_text().split()[-3:]
    return proc.returncode, float(user) + float(system), int(rss_kib) / 1024.0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--instances", type=int, default=5000)
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    binary = bench.build_doctor(a.no_build)
    consul = bench.find_consul()
    with tempfile.TemporaryDirectory(prefix="wait-bench-") as tmp:
        agent = bench.ConsulAgent(consul, Path(tmp))
        try:
            agent.start()
            addr = f"127.0.0.1:{agent.http}"

            bench.log(f"reaction: {a.runs} runs")
            reactions = []
            for k in range(a.runs):
                name = f"react-{k}"
                p = spawn(binary, ["--http-addr", addr, "--service", name, "--deadline", "30s", "--format", "json"])
                time.sleep(1.0)
                body = json.dumps({"Name": name, "ID": f"{name}-1", "Port": 20000 + k}).encode()
                st, _ = bench.http_call(agent.http, "PUT", "/v1/agent/service/register", body)
                t0 = time.perf_counter()
                if st != 200:
                    raise RuntimeError(f"register {name}: {st}")
                p.wait()
                reactions.append((time.perf_counter() - t0) * 1000)
                if p.returncode != 0:
                    raise RuntimeError(f"wait for {name} exited {p.returncode}")

            bench.log(f"idle: {a.idle_seconds} s")
            check = {"Node": agent.node, "Address": "127.0.0.1",
                     "Service": {"ID": "idle-1", "Service": "idle", "Port": 20999},
                     "Check": {"CheckID": "idle-1-check", "Name": "idle", "ServiceID": "idle-1",
                               "Status": "critical", "Output": "not ready"}}
            st, _ = bench.http_call(agent.http, "PUT", "/v1/catalog/register", json.dumps(check).encode())
            assert st == 200
            offset = agent.log_size()
            m = Path(tmp) / "idle.time"
            p = spawn(binary, ["--http-addr", addr, "--service", "idle", "--deadline", f"{a.idle_seconds}s", "--format", "json"], m)
            code, idle_cpu, idle_rss, out = reap(p, m)
            report = json.loads(out)
            waited = report["waited_ms"]
            # The agent logs a blocking query when its handler ends: up to wait/16 (Consul's jitter)
            # after the doctor stopped listening at its deadline.
            time.sleep(a.idle_seconds / 16 + 1)
            reqs = agent.requests_since(offset)
            # Queries during the wait; the diagnosis after the deadline asks once more.
            health = [r for r in reqs if "/v1/health/service/idle" in r]
            during = max(len(health) - 1, 0)

            bench.log(f"memory: registering {a.instances} instances")
            bench.register_instances(agent.http, 0, a.instances, 0)
            m = Path(tmp) / "big.time"
            p = spawn(binary, ["--http-addr", addr, "--service", "web", "--min-passing", str(a.instances + 1),
                               "--deadline", "10s", "--format", "json"], m)
            code, big_cpu, big_rss, out = reap(p, m)
            big = json.loads(out)
        finally:
            agent.stop()

    med = statistics.median(reactions)
    print("consul-doctor wait benchmark (Consul dev agent on loopback)")
    print(f"  reaction, registration answered -> exit: median {med:.1f} ms, p90 "
          f"{sorted(reactions)[int(len(reactions) * 0.9) - 1]:.1f} ms, max {max(reactions):.1f} ms over {len(reactions)} runs "
          f"(target median <= 50 ms: {'ok' if med <= 50 else 'MISSED'})")
    print(f"  idle {waited / 1000:.1f} s wait, no change: {during} health queries during the wait "
          f"(+1 by the diagnosis), {report['requests']} requests in all; CPU {idle_cpu * 1000:.0f} ms, "
          f"peak RSS {idle_rss:.1f} MiB (target <= 3 queries: {'ok' if during <= 3 else 'MISSED'})")
    print(f"  {a.instances} instances, 10 s wait: peak RSS {big_rss:.1f} MiB, CPU {big_cpu * 1000:.0f} ms, "
          f"{big['requests']} requests, matching {big['matching']} (target <= 15 MiB: {'ok' if big_rss <= 15 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
