#!/usr/bin/env bash
# Makes a Consul 1.8.7 binary available for the real-Consul test lab and prints its path.
#
# Order of preference (the first that works wins):
#   1. $CONSUL_BIN, or a `consul` already on PATH;
#   2. the project-local cache .cache/consul/usr/bin/consul;
#   3. ../shared/consul/*.deb (kept beside the checkout for CI), checked against its SHA256SUMS;
#   4. Debian bullseye's `consul` package, downloaded from the mirror this machine's own apt sources
#      name, through a private sources list so the system's apt state is never touched.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/.cache/consul"
bin="$cache/usr/bin/consul"

say() { printf 'install-consul: %s\n' "$*" >&2; }

if [ -n "${CONSUL_BIN:-}" ] && [ -x "${CONSUL_BIN}" ]; then
  printf '%s\n' "$CONSUL_BIN"; exit 0
fi
if command -v consul >/dev/null 2>&1; then
  command -v consul; exit 0
fi
if [ -x "$bin" ]; then
  printf '%s\n' "$bin"; exit 0
fi

mkdir -p "$cache"
shared="$root/../shared/consul"
deb=""
if [ -d "$shared" ]; then
  for f in "$shared"/consul_*.deb; do
    [ -f "$f" ] || continue
    if [ -f "$shared/SHA256SUMS" ]; then
      (cd "$shared" && sha256sum --check --status --ignore-missing SHA256SUMS) \
        || { say "checksum mismatch for $f"; exit 1; }
    fi
    deb="$f"
  done
fi

if [ -z "$deb" ]; then
  # Derive the Debian mirror from the machine's own apt configuration (deb822 or one-line format).
  mirror=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$mirror" ] || { say "no Debian mirror found in this machine's apt sources"; exit 1; }
  apt_dir="$cache/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
  printf 'deb [trusted=yes] %s bullseye main\n' "$mirror" > "$apt_dir/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
        -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  say "downloading Debian bullseye's consul package"
  apt-get "${opts[@]}" -qq update >&2
  (cd "$apt_dir" && apt-get "${opts[@]}" -qq download consul >&2)
  deb=$(ls "$apt_dir"/consul_*.deb | head -n 1)
fi

say "unpacking $(basename "$deb")"
dpkg -x "$deb" "$cache"
[ -x "$bin" ] || { say "no consul binary in $deb"; exit 1; }
printf '%s\n' "$bin"
