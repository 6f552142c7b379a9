#!/usr/bin/env bash
# The wg-ollama demo on one Linux box, as root:  sudo scripts/demo.sh
#
# Installs what is needed, builds, and brings up the lab (network namespaces
# demo-c1 = a staff laptop, demo-gw = the gateway, demo-gpu = the GPU host,
# demo-other = another LAN host), then: init the gateway, start `serve`, add a
# first peer (its config and QR code are printed), bring the laptop's tunnel up
# with exactly that config (wg-quick), send a request through the tunnel to the
# GPU host's port 11434, show what is blocked, and revoke the peer.
# Everything is removed at the end; KEEP=1 leaves the lab running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

scripts/setup.sh

P=demo
STATE=$(mktemp -d /tmp/wg-ollama-demo.XXXXXX)
CONF=$STATE/config.json
pids=()
WGO=(ip netns exec "$P-gw" node "$ROOT/bin/wg-ollama.js" --config "$CONF")
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go

cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo
    echo "KEEP=1: the lab stays up. Try:  ${WGO[*]} status"
    echo "Remove it with:  scripts/lab.sh down $P; rm -rf $STATE"
    return
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/lab.sh down "$P"
  rm -rf "$STATE"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "lab: namespaces demo-c1 (laptop), demo-gw (gateway), demo-gpu (GPU host), demo-other"
scripts/lab.sh up "$P"
ip netns exec "$P-gpu" node scripts/lab/listener.mjs gpu 11434 22 >"$STATE/gpu.log" 2>&1 &
pids+=($!)
ip netns exec "$P-other" node scripts/lab/listener.mjs other 11434 >"$STATE/other.log" 2>&1 &
pids+=($!)
sleep 0.5

step "gateway: wg-ollama init"
"${WGO[@]}" init --endpoint 192.0.2.1:51820 --ollama-host 198.51.100.10 --state-dir "$STATE/state"

step "gateway: wg-ollama serve (log in $STATE/serve.log)"
"${WGO[@]}" serve >"$STATE/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do "${WGO[@]}" status >/dev/null 2>&1 && grep -q '"serving"' "$STATE/serve.log" && break; sleep 0.2; done
"${WGO[@]}" status

step "wg-ollama add-peer alice --qr --out $STATE/out   (shown once: scan it with the WireGuard app)"
"${WGO[@]}" add-peer alice --qr --out "$STATE/out"

step "laptop: wg-quick up with exactly that config"
cp "$STATE/out/alice.conf" "$STATE/wgdemo.conf"
ip netns exec "$P-c1" wg-quick up "$STATE/wgdemo.conf" >"$STATE/wg-quick.log" 2>&1
ip netns exec "$P-c1" wg show wgdemo | sed 's/^/  /'

step "laptop -> GPU host :11434 through the tunnel"
ip netns exec "$P-c1" curl -sS -m 5 http://198.51.100.10:11434/api/version; echo
ip netns exec "$P-c1" curl -sS -m 5 http://198.51.100.10:11434/; echo "   (the GPU host sees the tunnel address: no NAT)"

step "what the tunnel does not reach (a client that routes everything into it)"
GWKEY=$(awk '/^\[Peer\]/{p=1} p && /^PublicKey/{print $3; exit}' "$STATE/wgdemo.conf")
ip netns exec "$P-c1" wg set wgdemo peer "$GWKEY" allowed-ips 0.0.0.0/0
ip netns exec "$P-c1" ip route add 198.51.100.20/32 dev wgdemo
ip netns exec "$P-c1" ip route add 10.66.0.1/32 dev wgdemo
for url in http://198.51.100.10:22/ http://198.51.100.20:11434/ http://10.66.0.1:8080/; do
  if ip netns exec "$P-c1" curl -s -m 2 "$url" >/dev/null; then echo "  REACHED $url (this must not happen)"; exit 1
  else echo "  blocked  $url"; fi
done

sleep 1
step "wg-ollama list-peers / logs connections"
"${WGO[@]}" list-peers
"${WGO[@]}" logs connections --since 5m || true

step "wg-ollama revoke-peer alice: the tunnel goes dead"
"${WGO[@]}" revoke-peer alice
if ip netns exec "$P-c1" curl -s -m 2 http://198.51.100.10:11434/ >/dev/null; then echo "  still reachable (this must not happen)"; exit 1
else echo "  blocked  http://198.51.100.10:11434/ after revocation"; fi

step "audit log"
"${WGO[@]}" logs audit --since 5m
echo
echo "demo finished: the lab is removed on exit (KEEP=1 keeps it)."
