#!/usr/bin/env bash
# Measures how long a leftover probe registration lives on a real Consul agent when the doctor
# dies before cleaning up (kill -9): registers a service exactly as `check --probe-register` does
# (its TTL check created critical, TTL and DeregisterCriticalServiceAfter as in
# src/check/stages/probe.rs), never deregisters it, and polls the catalog until the agent's reaper
# has removed it. Loopback only; the dev agent and its data dir are removed at the end.
# Usage: benches/probe_leftover.sh   (uses $CONSUL_BIN, or scripts/install-consul.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
consul=${CONSUL_BIN:-$(bash scripts/install-consul.sh)}
ttl=$(sed -n 's/^pub const PROBE_TTL: &str = "\(.*\)";/\1/p' src/check/stages/probe.rs)
after=$(sed -n 's/^pub const PROBE_REAP_AFTER: &str = "\(.*\)";/\1/p' src/check/stages/probe.rs)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(free_port); dns=$(free_port); serf=$(free_port); wan=$(free_port); server=$(free_port)
data=$(mktemp -d)
"$consul" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -http-port "$http" -dns-port "$dns" \
  -serf-lan-port "$serf" -serf-wan-port "$wan" -server-port "$server" -grpc-port -1 \
  -data-dir "$data" >"$data/agent.log" 2>&1 &
agent=$!
trap 'kill $agent 2>/dev/null; wait $agent 2>/dev/null; rm -rf "$data"' EXIT
base="http://127.0.0.1:$http"
for _ in $(seq 100); do curl -sf "$base/v1/status/leader" | grep -q ':' && break; sleep 0.1; done
id="consul-doctor-probe-bench$$"
start=$(date +%s.%N)
curl -sf -X PUT "$base/v1/agent/service/register" -d "{\"ID\":\"$id\",\"Name\":\"$id\",\"Meta\":{\"consul_doctor\":\"probe\"},
  \"Check\":{\"CheckID\":\"$id:ttl\",\"TTL\":\"$ttl\",\"Status\":\"critical\",\"DeregisterCriticalServiceAfter\":\"$after\"}}"
while :; do
  now=$(date +%s.%N)
  if [ "$(curl -sf "$base/v1/catalog/service/$id")" = "[]" ]; then
    printf 'probe leftover (TTL %s, DeregisterCriticalServiceAfter %s) reaped %.1f s after registration\n' \
      "$ttl" "$after" "$(echo "$now - $start" | bc)"
    exit 0
  fi
  if [ "$(echo "$now - $start > 400" | bc)" = 1 ]; then echo "still registered after 400 s"; exit 1; fi
  sleep 1
done
