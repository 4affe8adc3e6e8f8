#!/usr/bin/env bash
# Makes a Consul 1.8.7 binary available for the real-Consul test lab and prints its path.
#
# Order of preference (the first that works wins):
#   1. $CONSUL_BIN, or a `consul` already on PATH;
#   2. the project-local cache .cache/consul/usr/bin/consul;
#   3. ../shared/consul/*.deb (kept beside the checkout for CI), checked against its SHA256SUMS;
#   4. Debian bullseye's `consul` package, downloaded from the mirror this machine's own apt sources
#      name (or $CONSUL_DEBIAN_MIRROR), through a private sources list so the system's apt state is
#      never touched.
# Whatever package is used (3 or 4) must match the SHA-256 pinned in scripts/consul.sha256 before
# it is unpacked: the tests execute what it contains.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/.cache/consul"
bin="$cache/usr/bin/consul"

say() { printf 'install-consul: %s\n' "$*" >&2; }

other_ways() {
  say "either point the lab at a Consul 1.8.7 binary: CONSUL_BIN=/path/to/consul cargo test"
  say "  (HashiCorp's release archive has consul_1.8.7_linux_<arch>.zip; unzip it anywhere),"
  say "or set CONSUL_DEBIAN_MIRROR to a Debian mirror that still carries bullseye (Debian's archive"
  say "  mirror keeps it after it leaves the regular mirrors)."
}

# Refuses a package whose SHA-256 is not the one pinned in the repository.
verify() {
  local file=$1 name want got
  name=$(basename "$file")
  want=$(awk -v n="$name" '$2 == n {print $1}' "$root/scripts/consul.sha256")
  if [ -z "$want" ]; then
    say "no SHA-256 pinned for $name in scripts/consul.sha256 (only Debian bullseye's amd64 package is);"
    say "refusing to execute an unverified package"
    other_ways
    exit 1
  fi
  got=$(sha256sum "$file" | awk '{print $1}')
  if [ "$got" != "$want" ]; then
    say "SHA-256 mismatch for $file:"
    say "  expected $want (scripts/consul.sha256)"
    say "  got      $got"
    say "refusing to unpack it; delete it (and .cache/consul) and try again, or use CONSUL_BIN"
    exit 1
  fi
}

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
  mirror="${CONSUL_DEBIAN_MIRROR:-}"
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  if [ -z "$mirror" ] || ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    say "no consul binary, and no way to fetch Debian's package here (it needs apt-get, dpkg and a"
    say "Debian mirror in this machine's apt sources)"
    other_ways
    exit 1
  fi
  apt_dir="$cache/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
  printf 'deb [trusted=yes] %s bullseye main\n' "$mirror" > "$apt_dir/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
        -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  say "downloading Debian bullseye's consul package from $mirror"
  log="$apt_dir/apt.log"
  # apt-get update only warns about a suite the mirror does not have; the download then fails.
  if ! apt-get "${opts[@]}" -qq update >"$log" 2>&1 \
     || grep -q "bullseye.*\(Release\|not have a Release file\|404\)" "$log" \
     || ! (cd "$apt_dir" && apt-get "${opts[@]}" -qq download consul >>"$log" 2>&1); then
    say "Debian bullseye's consul package is not on $mirror: bullseye has probably moved to"
    say "Debian's archive (apt's own words are in $log)."
    other_ways
    exit 1
  fi
  deb=$(ls "$apt_dir"/consul_*.deb | head -n 1)
fi

verify "$deb"

say "unpacking $(basename "$deb")"
dpkg -x "$deb" "$cache"
[ -x "$bin" ] || { say "no consul binary in $deb"; exit 1; }
printf '%s\n' "$bin"
