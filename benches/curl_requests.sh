#!/usr/bin/env bash
# The HTTP requests that one `consul-doctor check --service-file <file>` makes against a plain-HTTP
# Consul agent with ACLs off, for a service that is not registered on that agent yet, made one by
# one with curl. benches/bench.py times this script as the "how fast could it be" baseline and, at
# start-up, compares this list with the requests the doctor really made (from the agent's debug
# log), warning when they differ.
#
# Usage: benches/curl_requests.sh HOST:PORT HEALTH_URL [SERVICE_NAME]
#   e.g. benches/curl_requests.sh 127.0.0.1:8500 http://127.0.0.1:8080/health web
#
# Requests, with the doctor stage that makes them:
#   tcp        GET /v1/status/leader          (raw "sniff" request on the first TCP connection)
#   api        GET /v1/agent/self
#   leader     GET /v1/status/leader, GET /v1/status/peers
#   acl        GET /v1/acl/token/self         (401 "ACL support disabled" here: not a curl error)
#   version    GET /v1/agent/members
#   duplicates GET /v1/agent/services, GET /v1/health/service/<name>
#   sync       GET /v1/agent/checks           (GET /v1/catalog/service/<name> and
#                                              /v1/health/checks/<name> only when the service is
#                                              registered on this agent: it is not, so skipped)
#   health     GET <HEALTH_URL>               (the doctor's own probe of the service's HTTP check)
set -eu
addr=${1:?usage: curl_requests.sh HOST:PORT HEALTH_URL [SERVICE_NAME]}
health=${2:?usage: curl_requests.sh HOST:PORT HEALTH_URL [SERVICE_NAME]}
svc=${3:-web}

c() { curl -s -o /dev/null --noproxy '*' "$@"; }

c "http://$addr/v1/status/leader"
c "http://$addr/v1/agent/self"
c "http://$addr/v1/status/leader"
c "http://$addr/v1/status/peers"
c "http://$addr/v1/acl/token/self"
c "http://$addr/v1/agent/members"
c "http://$addr/v1/agent/services"
c "http://$addr/v1/health/service/$svc"
c "http://$addr/v1/agent/checks"
c "$health"
