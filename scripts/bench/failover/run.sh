#!/usr/bin/env bash
# Two gateways, active/standby (issue 14, item 5; docs/gpu-pool.md "Beyond one gateway"): how long a
# peer is cut off when the active gateway dies, and why.
#
#   sudo scripts/bench/failover/run.sh          (~8 min; FO_REPS, default 5 per variant)
#
# Namespaces (prefix "fo"): a switch (fo-net: the "internet" and LAN bridges), gateways A and B
# (fo-a, fo-b), the GPU host (fo-gpu: the real guard and the Ollama-API simulator) and a laptop
# (fo-c1: wg-quick with the peer's config, and probe.mjs). keepalived (VRRP, advert every 1 s)
# floats the WireGuard endpoint 192.0.2.1 and the LAN address 198.51.100.1 (the guard's sync URL
# and the GPU host's route back to the tunnel) between A (priority 150) and B (100). Both run
# `serve` with the same state: B's is a copy of A's made after setup (same WireGuard server key,
# peers, preshared keys, CA, sync certificate) — the stand-in for the shared PostgreSQL of the
# design; wg-ollama does no replication. Their WireGuard interfaces have different names only
# because wireguard-go's control socket (/var/run/wireguard/NAME.sock) is shared by namespaces.
#
# Each repetition builds everything afresh, waits until the peer's requests succeed through A and
# A's connection monitor has stored the peer's endpoint, then kills every process of A and downs
# its links (a power cut). probe.mjs in the laptop sends GET /api/version on a new mTLS connection
# every 100 ms; the outage is from the kill to the first request sent after it that succeeds.
# Two variants, alternating:
#   plain    B takes the addresses and waits for the laptop to handshake again;
#   promote  keepalived's notify_master on B also sets each active peer's last endpoint (read from
#            A's database: the shared state) with a persistent keepalive, so B starts the handshake.
# Results: $BENCH_OUT/failover.json and failover.md (default /tmp/wgo-bench-results).
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
command -v keepalived >/dev/null || { echo "keepalived is not installed (apt-get install keepalived)" >&2; exit 2; }
REPS=${FO_REPS:-5}
export BENCH_OUT=${BENCH_OUT:-/tmp/wgo-bench-results}
mkdir -p "$BENCH_OUT"
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go
P=fo
NSS="net a b gpu c1"
S=""
log() { echo "[$(date +%T)] $*" >&2; }
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

down() {
  local n pids
  for n in $NSS; do
    pids=$(ip netns pids "$P-$n" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  done
  sleep 0.3
  for n in $NSS; do ip netns del "$P-$n" 2>/dev/null || true; done
  rm -f /var/run/wireguard/wgofa.sock /var/run/wireguard/wgofb.sock /var/run/wireguard/wgfoc.sock
  [ -n "$S" ] && rm -rf "$S"
  S=""
}
trap down EXIT

veth() { # veth NS IF BRIDGE: an interface IF in NS on the switch's BRIDGE
  ip -n "$P-net" link add "v-$1-$2" type veth peer name "$2" netns "$P-$1"
  ip -n "$P-net" link set "v-$1-$2" master "$3" up
  ip -n "$P-$1" link set "$2" up
}

net_up() {
  for n in $NSS; do ip netns add "$P-$n"; ip -n "$P-$n" link set lo up; done
  ip -n "$P-net" link add br-inet type bridge
  ip -n "$P-net" link add br-lan type bridge
  ip -n "$P-net" link set br-inet up
  ip -n "$P-net" link set br-lan up
  veth a eth-i br-inet; veth a eth-l br-lan
  veth b eth-i br-inet; veth b eth-l br-lan
  veth gpu eth0 br-lan; veth c1 eth0 br-inet
  ip -n "$P-a" addr add 192.0.2.2/24 dev eth-i; ip -n "$P-a" addr add 198.51.100.2/24 dev eth-l
  ip -n "$P-b" addr add 192.0.2.3/24 dev eth-i; ip -n "$P-b" addr add 198.51.100.3/24 dev eth-l
  ip -n "$P-gpu" addr add 198.51.100.10/24 dev eth0
  ip -n "$P-gpu" route add 10.66.0.0/16 via 198.51.100.1
  ip -n "$P-c1" addr add 192.0.2.10/24 dev eth0
  ip -n "$P-c1" route add default via 192.0.2.1
  # Both gateways bind the floating addresses before they hold them (as with any keepalived pair).
  for g in a b; do nsx "$g" sysctl -qw net.ipv4.ip_nonlocal_bind=1; done
}

keepalived_conf() { # NAME PRIORITY [NOTIFY]
  cat <<EOF
global_defs {
  router_id fo_$1
  enable_script_security
  script_user root
}
vrrp_instance gateway {
  state BACKUP
  interface eth-i
  virtual_router_id 51
  priority $2
  advert_int 1
  virtual_ipaddress {
    192.0.2.1/24 dev eth-i
    198.51.100.1/24 dev eth-l
  }
${3:+  notify_master "$3"}
}
EOF
}

diag() {
  { echo "--- wg in a"; nsx a wg show; echo "--- wg in c1"; nsx c1 wg show; echo "--- neigh c1"; nsx c1 ip neigh; echo "--- neigh gpu"; nsx gpu ip neigh
    echo "--- addr a"; nsx a ip -br addr; echo "--- probe"; probe --until $(( $(date +%s%3N) + 1500 )); echo "--- iptables a"; nsx a iptables -S | head -40; } >&2 2>&1
}

wait_for() { # SECONDS WHAT COMMAND...: stops the run when it times out
  local limit=$1 what=$2; shift 2
  local start=$(date +%s%3N)
  until "$@" >/dev/null 2>&1; do
    [ $(( $(date +%s%3N) - start )) -lt $((limit * 1000)) ] || { log "timed out waiting for $what (logs in $S)"; [ -n "${FO_DEBUG:-}" ] && diag; trap - EXIT; exit 1; }
    sleep 0.1
  done
  [ -n "${FO_DEBUG:-}" ] && log "$what: $(( $(date +%s%3N) - start )) ms"
  return 0
}

probe() { nsx c1 node scripts/bench/failover/probe.mjs --url https://198.51.100.10:11434 --ca "$S/out/ca.crt" --cert "$S/out/alice.crt" --key "$S/out/alice.key" "$@"; }
# grep -c reads all of it: grep -q would stop the probe with SIGPIPE, and pipefail would call that a failure.
probe_ok() { [ "$(probe --until $(( $(date +%s%3N) + 300 )) | grep -c '"ok":true')" -gt 0 ]; }
endpoint_known() { [ -n "$(node scripts/bench/failover/endpoints.mjs "$S/a-state/wg-ollama.db")" ]; }

# One repetition: VARIANT plain|promote; prints one JSON row.
rep() {
  local variant=$1 row
  # Under /run: keepalived runs notify scripts only from paths no other user can write.
  S=$(mktemp -d /run/wgo-failover.XXXXXX)
  net_up
  local A=(nsx a node "$ROOT/bin/wg-ollama.js" --config "$S/a.json")
  "${A[@]}" init --endpoint 192.0.2.1:51820 --ollama-host 198.51.100.10 --state-dir "$S/a-state" \
    --sync-listen 198.51.100.1:7443 --interface wgofa >/dev/null
  "${A[@]}" add-guard gpu1 --address 198.51.100.10 --out "$S/guard" >/dev/null
  "${A[@]}" add-peer alice --out "$S/out" >/dev/null
  "${A[@]}" set-policy alice --rate 100000/min --burst 100000 >/dev/null
  # B: the same state (the shared database of the design), its own interface name.
  cp -a "$S/a-state" "$S/b-state"
  node -e 'const fs=require("fs");const c=JSON.parse(fs.readFileSync(process.argv[1]));c.stateDir=process.argv[2];c.interface="wgofb";fs.writeFileSync(process.argv[3],JSON.stringify(c,null,2))' "$S/a.json" "$S/b-state" "$S/b.json"
  cat >"$S/promote.sh" <<EOF
#!/bin/sh
# notify_master on B: B starts the handshake with each active peer at its last endpoint.
node "$ROOT/scripts/bench/failover/endpoints.mjs" "$S/a-state/wg-ollama.db" | while read -r key endpoint; do
  wg set wgofb peer "\$key" endpoint "\$endpoint" persistent-keepalive 25
done
date +%s%3N >"$S/promoted"
EOF
  chmod 0700 "$S/promote.sh"
  nsx gpu node scripts/lab/ollama-sim.mjs --listen 127.0.0.1:11434 >"$S/sim.log" 2>&1 &
  nsx gpu node "$ROOT/bin/wg-ollama.js" guard --config "$S/guard/guard.json" >"$S/guard.log" 2>&1 &
  nsx a node "$ROOT/bin/wg-ollama.js" --config "$S/a.json" serve >"$S/a-serve.log" 2>&1 &
  nsx b node "$ROOT/bin/wg-ollama.js" --config "$S/b.json" serve >"$S/b-serve.log" 2>&1 &
  keepalived_conf a 150 >"$S/ka-a.conf"
  keepalived_conf b 100 "$([ "$variant" = promote ] && echo "$S/promote.sh")" >"$S/ka-b.conf"
  for g in a b; do
    nsx "$g" keepalived -n -l -P -f "$S/ka-$g.conf" -p "$S/ka-$g.pid" -r "$S/ka-$g-vrrp.pid" >"$S/ka-$g.log" 2>&1 &
  done
  wait_for 15 "A to hold the addresses" sh -c "ip -n $P-a addr show eth-i | grep -q 192.0.2.1/24"
  wait_for 15 "both serves" sh -c "grep -q sync-api.start '$S/a-serve.log' && grep -q sync-api.start '$S/b-serve.log'"
  wait_for 15 "the guard" sh -c "grep -q peers.updated '$S/guard.log'"
  cp "$S/out/alice.conf" "$S/wgfoc.conf"
  nsx c1 wg-quick up "$S/wgfoc.conf" >"$S/wg-quick.log" 2>&1
  wait_for 20 "a request through A" probe_ok
  wait_for 20 "A's monitor to store the peer's endpoint" endpoint_known
  # The laptop probes from 2 s before the cut to 40 s after it.
  local t0=$(( $(date +%s%3N) + 2000 ))
  probe --until $((t0 + 40000)) >"$S/probe.ndjson" 2>"$S/probe.err" &
  local probe_pid=$!
  sleep 2
  t0=$(date +%s%3N)
  for pid in $(ip netns pids "$P-a"); do kill -9 "$pid" 2>/dev/null || true; done
  ip -n "$P-a" link set eth-i down; ip -n "$P-a" link set eth-l down
  local t_vip="" t_hs="" hs0
  hs0=$(nsx b wg show wgofb latest-handshakes | awk '{print $2}')
  while [ -z "$t_hs" ] && [ $(( $(date +%s%3N) - t0 )) -lt 40000 ]; do
    [ -z "$t_vip" ] && ip -n "$P-b" addr show eth-i | grep -q 192.0.2.1/24 && t_vip=$(date +%s%3N)
    local hs
    hs=$(nsx b wg show wgofb latest-handshakes | awk '{print $2}')
    [ "$hs" != "$hs0" ] && [ "$hs" != 0 ] && t_hs=$(date +%s%3N)
    sleep 0.05
  done
  wait "$probe_pid" || true
  row=$(node -e '
    const fs = require("fs");
    const [file, t0, vip, hs, variant, promoted] = process.argv.slice(1);
    const lines = fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const after = lines.filter((l) => l.t >= Number(t0));
    const first = after.find((l) => l.ok);
    const lastBefore = lines.filter((l) => l.t < Number(t0) && l.ok).at(-1);
    const ms = (t) => (t ? Number(t) - Number(t0) : null);
    console.log(JSON.stringify({ variant, vipMs: ms(vip), promotedMs: ms(promoted), handshakeMs: ms(hs), outageMs: first ? first.t - Number(t0) : null,
      lastOkBeforeMs: lastBefore ? lastBefore.t - Number(t0) : null, attempts: after.length, failedAfter: after.filter((l) => !l.ok && (!first || l.t < first.t)).length }));
  ' "$S/probe.ndjson" "$t0" "$t_vip" "$t_hs" "$variant" "$(cat "$S/promoted" 2>/dev/null || true)")
  nsx c1 wg-quick down "$S/wgfoc.conf" >/dev/null 2>&1 || true
  down
  echo "$row"
}

npm run -s build >/dev/null
down
out=$BENCH_OUT/failover.ndjson
: >"$out"
for i in $(seq 0 $((REPS - 1))); do
  if [ $((i % 2)) = 0 ]; then order="plain promote"; else order="promote plain"; fi
  for v in $order; do
    r=$(rep "$v")
    log "rep $i $v: $r"
    echo "$r" >>"$out"
  done
done
node -e '
  const fs = require("fs");
  const rows = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const med = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null; };
  const fmt = (a) => (a.length ? `${(med(a) / 1000).toFixed(2)} s (${(Math.min(...a) / 1000).toFixed(2)}–${(Math.max(...a) / 1000).toFixed(2)})` : "—");
  const lines = ["| variant | n | addresses on B | B handshaken | first 200 after the cut |", "|---|---|---|---|---|"];
  const summary = {};
  for (const v of ["plain", "promote"]) {
    const r = rows.filter((x) => x.variant === v);
    const pick = (k) => r.map((x) => x[k]).filter((x) => x !== null);
    summary[v] = { n: r.length, vipMs: med(pick("vipMs")), handshakeMs: med(pick("handshakeMs")), outageMs: med(pick("outageMs")), outageRange: [Math.min(...pick("outageMs")), Math.max(...pick("outageMs"))], neverRecovered: r.filter((x) => x.outageMs === null).length };
    lines.push(`| ${v} | ${r.length} | ${fmt(pick("vipMs"))} | ${fmt(pick("handshakeMs"))} | ${fmt(pick("outageMs"))} |`);
  }
  fs.writeFileSync(process.argv[2], JSON.stringify({ rows, summary }, null, 2) + "\n");
  fs.writeFileSync(process.argv[3], lines.join("\n") + "\n");
  console.log(lines.join("\n"));
' "$out" "$BENCH_OUT/failover.json" "$BENCH_OUT/failover.md"
