#!/usr/bin/env bash
# Installs what wg-ollama's lab, demo and tests need on Debian 12 (as root),
# then installs the npm dependencies from the lockfile and builds.
# Idempotent: only what is missing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "setup: run as root (network namespaces, iptables, WireGuard)" >&2; exit 2; }

# Debian packages: WireGuard (userspace wireguard-go where the kernel has no module),
# the firewall tools (iproute2 brings tc for the tunnel's second barrier, which needs
# the kernel's sch_ingress and cls_bpf: built in or modules in Debian's kernels), the lab's tools, zbarimg (QR decoding in tests), openssl (PKCS#12
# checks in tests), python3-httpx (a plain Python client in the lab tests), chromium (the admin UI's browser tests, driven by playwright-core),
# and a toolchain for better-sqlite3's native build.
packages=(wireguard-tools wireguard-go iptables nftables ipset iproute2 conntrack curl zbar-tools openssl chromium python3 python3-httpx make g++)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# apt-get, npm and the build write their output into a log here; on success each says one
# line, on failure the log's errors and where it is (scripts/lib/run-logged.sh).
. scripts/lib/run-logged.sh
logdir=$(mktemp -d "${TMPDIR:-/tmp}/wg-ollama-setup.XXXXXX")

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # (&&: set -e does not hold inside a function run_logged calls with ||.)
  # --no-install-recommends: wireguard-tools would otherwise pull in a kernel image and systemd.
  apt-get update -q && apt-get install -y -q --no-install-recommends "$@"
}
if [ ${#missing[@]} -gt 0 ]; then
  run_logged "$logdir/apt.log" "setup: installed ${#missing[@]} Debian packages (${missing[*]})" apt_install "${missing[@]}"
fi

if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=5)?0:1)'; then
  echo "setup: Node.js >= 20.5 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# npm ci when node_modules does not match the lockfile (a fresh clone, or a changed lockfile).
# Only npm ci: it installs exactly the lockfile, or fails (test/unit/install checks the lockfile).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || ! node -e "require('better-sqlite3')(':memory:')" 2>/dev/null; then
  run_logged "$logdir/npm.log" "setup: npm dependencies installed (npm ci)" npm ci --no-audit --no-fund
fi
run_logged "$logdir/build.log" "setup: built" npm run -s build
rm -rf "$logdir"
