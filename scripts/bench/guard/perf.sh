#!/usr/bin/env bash
# Where the guard's CPU goes, on the CPU: `perf record` of the benchmark's guard (guard-server.mjs,
# node --perf-basic-prof for JavaScript names) while load.mjs sends keep-alive requests through it.
# Unlike a V8 --cpu-prof profile (GB_PROFILE_DIR + profile.mjs), perf samples only while the guard
# runs on a core, so time spent descheduled inside a write to a loopback peer is not charged to it.
#
#   sudo scripts/bench/guard/perf.sh [version|embed] [seconds] [concurrency]
# Prints requests/s, the share of samples by object (node, kernel, …), by area (perf-areas.mjs:
# OpenSSL, V8, the guard's JavaScript, …) and the top symbols. `npm run build` first; on a
# shared machine wrap it in `flock /tmp/wgo-bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/../../.."
REQUEST=${1:-version}
SECONDS_=${2:-3}
CONC=${3:-16}
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
D=$(mktemp -d /tmp/wgo-perf-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$D"; rm -f /tmp/perf-"${GUARD:-none}".map; }
trap cleanup EXIT
node -e "import('$PWD/scripts/bench/guard/common.mjs').then((m) => m.makeCertificates('$D'))"
wait_line() { for _ in $(seq 100); do grep -q '"listening"' "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "no listening line in $1" >&2; exit 1; }
node scripts/bench/guard/sim.mjs --listen 127.0.0.1:0 --ctl 127.0.0.1:0 --token-rate 50 --tokens 50 >"$D/sim.out" 2>"$D/sim.err" &
PIDS+=($!)
wait_line "$D/sim.out"
SIM_PORT=$(grep -o '"listening":[0-9]*' "$D/sim.out" | cut -d: -f2)
# GUARD_NODE_FLAGS: extra node flags for the guard only (e.g. --max-semi-space-size=32).
# shellcheck disable=SC2086
# Run from the temporary dir: --perf-basic-prof leaves isolate-*.log files in the working directory.
(cd "$D" && exec node --perf-basic-prof ${GUARD_NODE_FLAGS:-} "$OLDPWD/scripts/bench/guard/guard-server.mjs" --dir "$D" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$SIM_PORT" >"$D/guard.out" 2>"$D/guard.err") &
GUARD=$!
PIDS+=("$GUARD")
wait_line "$D/guard.out"
URL="https://127.0.0.1:$(grep -o '"listening":[0-9]*' "$D/guard.out" | cut -d: -f2)"
load() { node scripts/bench/guard/load.mjs --tls-dir "$D" --mode rps --target "$URL" --concurrency "$CONC" --warmup 0 --duration "$1" --request "$REQUEST"; }
load 2 >/dev/null # warm: JIT, connection pools
perf record -F 1999 -g -p "$GUARD" -o "$D/perf.data" -- sleep "$SECONDS_" 2>/dev/null &
PERF=$!
sleep 0.2
load "$SECONDS_" | tail -1 | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{const r=JSON.parse(s);console.log(`${r.request} at concurrency ${r.concurrency}: ${r.rps} requests/s, p50 ${r.p50Ms} ms`)})'
wait "$PERF" || true
echo
echo "## by object"
perf report -i "$D/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
echo
echo "## by area"
perf report -i "$D/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | node scripts/bench/guard/perf-areas.mjs
echo
echo "## top symbols"
perf report -i "$D/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
