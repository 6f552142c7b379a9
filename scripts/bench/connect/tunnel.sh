#!/usr/bin/env bash
# The connector's added cost where people use it: through the real tunnel (issue 9).
# Builds the namespace lab (prefix "cb"): the gateway (serve + guard sync API), the real
# guard and the Ollama-API simulator on the GPU host, one peer whose tunnel is up in the
# laptop namespace with wg-quick, and the shipped connector there. The load generator
# (scripts/bench/guard/load.mjs) runs in the laptop namespace against
#   direct:    https://198.51.100.10:11434 with the peer's certificate (tunnel + mTLS)
#   connector: http://127.0.0.1:11434 (connector → tunnel + mTLS)
# in alternating order, GET /api/version at concurrency 1 and 16.
#   sudo scripts/bench/connect/tunnel.sh       (~2 min; CB_REPS, CB_SECONDS)
# Results: $BENCH_OUT/connect-tunnel.json and .md (default /tmp/wgo-bench-results).
# Everything is removed at the end, also after a failure.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
P=cb
REPS=${CB_REPS:-3}
SECONDS_PER_CELL=${CB_SECONDS:-2.5}
export BENCH_OUT=${BENCH_OUT:-/tmp/wgo-bench-results}
mkdir -p "$BENCH_OUT"
STATE=$(mktemp -d /tmp/wgo-connect-tunnel.XXXXXX)
CONF=$STATE/config.json
WGO=(ip netns exec "$P-gw" node "$ROOT/bin/wg-ollama.js" --config "$CONF")
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/lab.sh down "$P" >/dev/null 2>&1 || true
  rm -rf "$STATE"
}
trap cleanup EXIT
log() { echo "[$(date +%T)] $*" >&2; }

npm run -s build >/dev/null
scripts/lab.sh up "$P"
ip netns exec "$P-gpu" node scripts/lab/ollama-sim.mjs --listen 127.0.0.1:11434 >"$STATE/sim.log" 2>&1 &
pids+=($!)
"${WGO[@]}" init --endpoint 192.0.2.1:51820 --ollama-host 198.51.100.10 --state-dir "$STATE/state" --sync-listen 198.51.100.1:7443 >/dev/null
"${WGO[@]}" serve >"$STATE/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '"event":"sync-api.start"' "$STATE/serve.log" && break; sleep 0.1; done
"${WGO[@]}" add-guard gpu1 --address 198.51.100.10 --out "$STATE/guard" >/dev/null
ip netns exec "$P-gpu" node "$ROOT/bin/wg-ollama.js" guard --config "$STATE/guard/guard.json" >"$STATE/guard.log" 2>&1 &
pids+=($!)
guard_pid=$!
for _ in $(seq 100); do grep -q '"event":"guard.start"' "$STATE/guard.log" && break; sleep 0.1; done
"${WGO[@]}" add-peer alice --out "$STATE/out" --json >/dev/null
# The benchmark must measure forwarding, not the rate limiter: the highest rate a policy allows.
"${WGO[@]}" set-policy alice --rate 100000/min --burst 100000 --streams 1000 >/dev/null
cp "$STATE/out/alice.conf" "$STATE/wgcb.conf"
ip netns exec "$P-c1" wg-quick up "$STATE/wgcb.conf" >"$STATE/wg-quick.log" 2>&1
# load.mjs reads ca.pem, client.pem, client.key from --tls-dir.
mkdir -p "$STATE/tls"
cp "$STATE/out/ca.crt" "$STATE/tls/ca.pem"; cp "$STATE/out/alice.crt" "$STATE/tls/client.pem"; cp "$STATE/out/alice.key" "$STATE/tls/client.key"
ip netns exec "$P-c1" node "$STATE/out/wg-ollama-connect.mjs" "$STATE/out/alice.connect.json" >"$STATE/connect.log" 2>&1 &
pids+=($!)
connector_pid=$!
for _ in $(seq 100); do grep -q 'can now use' "$STATE/connect.log" && break; sleep 0.1; done
ip netns exec "$P-c1" node "$STATE/out/wg-ollama-connect.mjs" "$STATE/out/alice.connect.json" --check >&2

load() { ip netns exec "$P-c1" node scripts/bench/guard/load.mjs --mode rps --tls-dir "$STATE/tls" --request version "$@"; }
# Warm both paths.
load --target https://198.51.100.10:11434 --concurrency 16 --warmup 0 --duration 1 >/dev/null
load --target http://127.0.0.1:11434 --concurrency 16 --warmup 0 --duration 1 >/dev/null
out=$STATE/rows.ndjson
: >"$out"
for rep in $(seq 0 $((REPS - 1))); do
  for c in 1 16; do
    if [ $((rep % 2)) = 0 ]; then order="direct connector"; else order="connector direct"; fi
    for path in $order; do
      if [ "$path" = direct ]; then target=https://198.51.100.10:11434; else target=http://127.0.0.1:11434; fi
      row=$(load --target "$target" --concurrency "$c" --warmup 0.5 --duration "$SECONDS_PER_CELL" --pids "$guard_pid")
      log "rep $rep c=$c $path: $row"
      echo "{\"rep\":$rep,\"path\":\"$path\",\"row\":$row}" >>"$out"
    done
  done
done
# The connector's own CPU per request, in cells of its own.
for rep in $(seq 0 $((REPS - 1))); do
  row=$(load --target http://127.0.0.1:11434 --concurrency 16 --warmup 0.5 --duration "$SECONDS_PER_CELL" --pids "$connector_pid")
  echo "{\"rep\":$rep,\"path\":\"connector-cpu\",\"row\":$row}" >>"$out"
done

node - "$out" "$BENCH_OUT" <<'EOF'
const fs = require('fs');
const [file, dir] = process.argv.slice(2);
const rows = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
fs.writeFileSync(`${dir}/connect-tunnel.json`, JSON.stringify(rows, null, 2));
const med = (xs) => { const a = xs.filter(Number.isFinite).sort((x, y) => x - y); const m = a.length >> 1; return a.length ? (a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2) : NaN; };
const r = (v, d = 2) => Math.round(v * 10 ** d) / 10 ** d;
const get = (path, c, k) => rows.filter((x) => x.path === path && x.row.concurrency === c && !x.row.error).map((x) => x.row[k]);
const L = ['Through the tunnel (wireguard-go on both ends), from the laptop namespace; medians (ranges) of ' + (rows.length ? Math.max(...rows.map((x) => x.rep)) + 1 : 0) + ' repetitions.', '',
  '| GET /api/version | req/s direct | req/s connector | ratio | p50 ms direct | p50 ms connector | p99 ms direct | p99 ms connector | added per-request time | non-200 answers |', '|---|---|---|---|---|---|---|---|---|---|'];
for (const c of [1, 16]) {
  const d = get('direct', c, 'rps'), k = get('connector', c, 'rps');
  const pd = med(get('direct', c, 'p50Ms')), pk = med(get('connector', c, 'p50Ms'));
  const added = c === 1 ? pk / pd - 1 : med(d) / med(k) - 1;
  const errs = [...get('direct', c, 'errors'), ...get('connector', c, 'errors')].reduce((a, b) => a + b, 0);
  L.push(`| concurrency ${c} | ${r(med(d), 0)} (${r(Math.min(...d), 0)}–${r(Math.max(...d), 0)}) | ${r(med(k), 0)} (${r(Math.min(...k), 0)}–${r(Math.max(...k), 0)}) | ${r(med(k) / med(d))} | ${r(pd, 3)} | ${r(pk, 3)} | ${r(med(get('direct', c, 'p99Ms')), 3)} | ${r(med(get('connector', c, 'p99Ms')), 3)} | +${r(added * 100, 0)} % | ${errs} |`);
}
const cc = rows.filter((x) => x.path === 'connector-cpu').map((x) => x.row.proxyCpuUsPerReq);
const gd = get('direct', 16, 'proxyCpuUsPerReq');
L.push('', `CPU per request at concurrency 16: the guard ${r(med(gd), 1)} µs (direct cells), the connector ${r(med(cc), 1)} µs (${r(Math.min(...cc), 1)}–${r(Math.max(...cc), 1)}).`);
fs.writeFileSync(`${dir}/connect-tunnel.md`, L.join('\n') + '\n');
console.log(L.join('\n'));
EOF
