#!/usr/bin/env python3
"""Bounded local inputs: wall time, peak memory and report size of consul-doctor given paths and
values it does not control. No agent is needed: the doctor points at a loopback port nothing
listens on, so the network stages stop at TCP-001 at once and the run measures the local reads.

    python3 benches/local_inputs.py [--runs 5] [--no-build]

Cases (each its own temp file, all under one temp directory):
  token-zero    --token-file /dev/zero                 (before: grew to 17 GB)
  service-zero  --service-file /dev/zero               (before: killed for memory)
  fifo          --service-file FIFO, no writer, --deadline 3s   (before: hung past the deadline)
  sparse-200M   --service-file a 200 MB (sparse) file  (before: 1 GB peak RSS)
  name-3M       a 3.5 MiB definition whose name is 3 MiB, plus a 100 KB tag (the largest
                definition accepted; before: the name was echoed into a report 4x its size)
  small         a normal one-service definition, for reference
Targets: every case wall <= 1 s, peak RSS <= 64 MiB, report <= 64 KiB.
Peak RSS comes from GNU time (/usr/bin/time -f %M), wall from a direct run, as benches/bench.py.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import build_doctor, child_env, free_port  # noqa: E402

TARGET_WALL_S = 1.0
TARGET_RSS_KIB = 64 * 1024
TARGET_REPORT = 64 * 1024


def cases(tmp: Path) -> list[tuple[str, list[str]]]:
    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    sparse = tmp / "sparse.json"
    with open(sparse, "wb") as f:
        f.truncate(200 * 1024 * 1024)
    big = tmp / "web.json"
    big.write_text('{"service": {"name": "%s", "port": 8080, "tags": ["%s"]}}' % ("n" * (3 * 1024 * 1024), "t" * 100_000))
    small = tmp / "small.json"
    small.write_text('{"service": {"name": "web", "id": "web-1", "port": 8080}}')
    return [
        ("token-zero", ["--token-file", "/dev/zero"]),
        ("service-zero", ["--service-file", "/dev/zero"]),
        ("fifo", ["--service-file", str(fifo), "--deadline", "3s"]),
        ("sparse-200M", ["--service-file", str(sparse)]),
        ("name-3M", ["--service-file", str(big)]),
        ("small", ["--service-file", str(small)]),
    ]


def measure(cmd: list[str], env: dict[str, str], out: Path) -> tuple[float, int, int, int]:
    """(wall seconds, exit code, report bytes, peak RSS KiB)."""
    with open(out, "wb") as f:
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env, timeout=60)
        wall = time.monotonic() - t0
    size = out.stat().st_size
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, env=env, timeout=60, text=True)
    rss = int(r.stderr.strip().splitlines()[-1])
    return wall, p.returncode, size, rss


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    doctor = build_doctor(args.no_build)
    env = child_env()
    addr = f"127.0.0.1:{free_port()}"
    rows = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-local-") as d:
        tmp = Path(d)
        for name, extra in cases(tmp):
            cmd = [str(doctor), "check", "--format", "json", "--http-addr", addr, "--timeout", "1s", *extra]
            samples = [measure(cmd, env, tmp / "report.json") for _ in range(args.runs)]
            wall = statistics.median(s[0] for s in samples)
            rss = max(s[3] for s in samples)
            size = max(s[2] for s in samples)
            codes = sorted({s[1] for s in samples})
            passed = wall <= TARGET_WALL_S and rss <= TARGET_RSS_KIB and size <= TARGET_REPORT
            ok &= passed
            rows.append(f"| {name} | {args.runs} | {wall * 1000:.0f} ms | {rss / 1024:.1f} MiB | {size / 1024:.1f} KiB "
                        f"| {codes} | {'PASS' if passed else 'FAIL'} |")
    print("| Case | Runs | Median wall | Max peak RSS | Report | Exit | Result |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nTargets: wall <= {TARGET_WALL_S:.0f} s, peak RSS <= {TARGET_RSS_KIB // 1024} MiB, "
          f"report <= {TARGET_REPORT // 1024} KiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
