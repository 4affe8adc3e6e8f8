#!/usr/bin/env bash
# The by-hand equivalent of `consul-doctor scan`: fetch the same data with curl (the member list
# and every node with its services and checks from /v1/internal/ui/nodes) and compute per-service
# counts, instances on failed/left or catalog-only nodes, and duplicate address:port with jq.
# benches/scan.py times it beside the doctor.
#
# Usage: benches/scan_curl_jq.sh HOST:PORT
set -euo pipefail
addr=${1:?usage: scan_curl_jq.sh HOST:PORT}
if ! command -v jq >/dev/null; then
  echo "scan_curl_jq.sh: jq is not installed (Debian: apt-get install jq)" >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -sf --noproxy '*' "http://$addr/v1/agent/members" >"$tmp/members.json"
curl -sf --noproxy '*' "http://$addr/v1/internal/ui/nodes" |
  jq -c --slurpfile members "$tmp/members.json" '
    ($members[0] | map({key: .Name, value: .Status}) | from_entries) as $m
    | [ .[] | . as $n
        | ($n.Checks | map(select(.CheckID == "serfHealth")) | first) as $serf
        | ($m[$n.Node]) as $st
        | (if $st == 3 or $st == 4 or ($serf != null and $serf.Status == "critical") then "gone"
           elif $st == null and $serf == null then "catalog-only" else "alive" end) as $state
        | $n.Services[]
        | . as $s
        | { service: $s.Service, id: $s.ID, node: $n.Node, state: $state,
            addr: ((if $s.Address == "" then $n.Address else $s.Address end) + ":" + ($s.Port | tostring)),
            critical: ([$n.Checks[] | select(.ServiceID == $s.ID or .ServiceID == "") | .Status] | index("critical") != null),
            checks: ([$n.Checks[] | select(.ServiceID == $s.ID)] | length) } ]
    | { services: (group_by(.service) | map({ name: .[0].service, instances: length,
                                             critical: map(select(.critical)) | length,
                                             stale: map(select(.state != "alive")) | length,
                                             unchecked: map(select(.checks == 0)) | length })),
        duplicates: (group_by(.service + " " + .addr) | map(select(length > 1)) | map({ service: .[0].service, addr: .[0].addr, ids: map(.id) })) }'
