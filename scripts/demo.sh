#!/usr/bin/env bash
# The wg-ollama demo on one Linux box, as root:  sudo scripts/demo.sh
#
# Installs what is needed, builds, and brings up the lab (network namespaces
# demo-c1 = a staff laptop, demo-gw = the gateway, demo-gpu = the GPU host,
# demo-other = another LAN host), then: init the gateway (with its CA and the
# guard sync API), start `serve`, set up the guard on the GPU host in front of
# "Ollama", add a first peer (its config and QR code are printed, with its
# client certificate and .p12), bring the laptop's tunnel up with exactly that
# config (wg-quick), stream a generation through tunnel + mTLS, and again
# through the connector (wg-ollama connect) with no certificate options, show
# what is refused and blocked, change the peer's policy, and revoke it
# mid-stream.
#
# "Ollama" is the Ollama-API simulator, unless a real Ollama answers on this
# host at OLLAMA_URL (default http://127.0.0.1:11434): then the guard proxies
# to it (through a unix-socket bridge into the GPU namespace).
# Everything is removed at the end; KEEP=1 leaves the lab running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "setup: the Debian packages and npm dependencies this needs, and the build (their output only if something fails)"
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

step "lab: namespaces demo-c1 (laptop), demo-gw (gateway), demo-gpu (GPU host), demo-other"
scripts/lab.sh up "$P"
ip netns exec "$P-other" node scripts/lab/listener.mjs other 11434 >"$STATE/other.log" 2>&1 &
pids+=($!)

OLLAMA_URL=${OLLAMA_URL:-http://127.0.0.1:11434}
MODEL=llama3.2
if curl -sf -m 2 "$OLLAMA_URL/api/version" >/dev/null 2>&1; then
  step "a real Ollama answers at $OLLAMA_URL: the guard will proxy to it"
  hostport=${OLLAMA_URL#http://}
  node scripts/lab/ns-bridge.mjs unix-to-tcp "$STATE/ollama.sock" "$hostport" >"$STATE/bridge-host.log" 2>&1 &
  pids+=($!)
  sleep 0.3
  ip netns exec "$P-gpu" node scripts/lab/ns-bridge.mjs tcp-to-unix 127.0.0.1:11434 "$STATE/ollama.sock" >"$STATE/bridge-ns.log" 2>&1 &
  pids+=($!)
  MODEL=$(curl -s "$OLLAMA_URL/api/tags" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s).models;console.log(m.length?m[0].name:"llama3.2")})')
  echo "  using model $MODEL"
else
  step "no Ollama at $OLLAMA_URL: the GPU host runs the Ollama-API simulator on 127.0.0.1:11434"
  ip netns exec "$P-gpu" node scripts/lab/ollama-sim.mjs --listen 127.0.0.1:11434 --token-rate 15 --tokens 40 --record "$STATE/ollama-requests.ndjson" >"$STATE/sim.log" 2>&1 &
  pids+=($!)
fi
sleep 0.5

step "gateway: wg-ollama init (WireGuard key, CA, guard sync API on the LAN)"
"${WGO[@]}" init --endpoint 192.0.2.1:51820 --ollama-host 198.51.100.10 --state-dir "$STATE/state" --sync-listen 198.51.100.1:7443

step "gateway: wg-ollama serve (log in $STATE/serve.log)"
"${WGO[@]}" serve >"$STATE/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do "${WGO[@]}" status >/dev/null 2>&1 && grep -q '"event":"sync-api.start"' "$STATE/serve.log" && break; sleep 0.2; done
"${WGO[@]}" status

step "gateway: wg-ollama add-guard gpu1 --address 198.51.100.10 --out DIR (everything the GPU host needs)"
"${WGO[@]}" add-guard gpu1 --address 198.51.100.10 --out "$STATE/guard"

step "GPU host: wg-ollama guard --config DIR/guard.json (log in $STATE/guard.log)"
ip netns exec "$P-gpu" node "$ROOT/bin/wg-ollama.js" guard --config "$STATE/guard/guard.json" >"$STATE/guard.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '"event":"guard.start"' "$STATE/guard.log" && break; sleep 0.2; done
ip netns exec "$P-gpu" node "$ROOT/bin/wg-ollama.js" doctor --guard --config "$STATE/guard/guard.json" || true

step "wg-ollama add-peer alice --qr --out DIR   (shown once: scan it with the WireGuard app)"
"${WGO[@]}" add-peer alice --qr --out "$STATE/out" | tee "$STATE/add-peer.txt"
PASS=$(sed -n 's/^PKCS#12 passphrase for alice.p12 (shown once): //p' "$STATE/add-peer.txt")
echo "  the .p12 opens with that passphrase:"
P12PASS=$PASS openssl pkcs12 -in "$STATE/out/alice.p12" -passin env:P12PASS -nokeys 2>/dev/null | grep '^subject' | sed 's/^/    /'

step "laptop: wg-quick up with exactly that config"
cp "$STATE/out/alice.conf" "$STATE/wgdemo.conf"
ip netns exec "$P-c1" wg-quick up "$STATE/wgdemo.conf" >"$STATE/wg-quick.log" 2>&1
ip netns exec "$P-c1" wg show wgdemo | sed 's/^/  /'

TLS=(--cacert "$STATE/out/ca.crt" --cert "$STATE/out/alice.crt" --key "$STATE/out/alice.key")
G=https://198.51.100.10:11434
step "laptop -> guard (tunnel + mTLS): stream a generation, token by token"
ip netns exec "$P-c1" curl -sS -N -m 30 "${TLS[@]}" "$G/api/generate" -d "{\"model\":\"$MODEL\",\"prompt\":\"Why is the sky blue?\",\"options\":{\"num_predict\":20}}" |
  node -e 'const rl=require("readline").createInterface({input:process.stdin});rl.on("line",l=>{const j=JSON.parse(l);if(j.done)console.log(`\n  [done: ${j.prompt_eval_count} prompt + ${j.eval_count} eval tokens]`);else process.stdout.write(j.response)})'

step "laptop: the GPU as a local Ollama for any tool: node wg-ollama-connect.mjs alice.connect.json (as an ordinary user)"
LAPTOP=$(mktemp -d /tmp/wg-ollama-demo-laptop.XXXXXX)
cp "$STATE/out/alice.connect.json" "$STATE/out/wg-ollama-connect.mjs" "$LAPTOP/"
chown -R nobody "$LAPTOP"
ip netns exec "$P-c1" setpriv --reuid=nobody --regid=nogroup --clear-groups node "$LAPTOP/wg-ollama-connect.mjs" "$LAPTOP/alice.connect.json" >"$STATE/connect.log" 2>&1 &
cpid=$!
pids+=($cpid)
for _ in $(seq 50); do grep -q 'can now use' "$STATE/connect.log" && break; sleep 0.1; done
sed 's/^/  /' "$STATE/connect.log"
echo "  curl with no certificate options, on Ollama's default address:"
ip netns exec "$P-c1" curl -sS -N -m 30 http://127.0.0.1:11434/api/generate -d "{\"model\":\"$MODEL\",\"prompt\":\"Why is the sky blue?\",\"options\":{\"num_predict\":12}}" |
  node -e 'const rl=require("readline").createInterface({input:process.stdin});process.stdout.write("  ");rl.on("line",l=>{const j=JSON.parse(l);if(j.done)console.log(`\n  [done: ${j.eval_count} tokens, through the connector]`);else process.stdout.write(j.response)})'
kill "$cpid" 2>/dev/null || true
wait "$cpid" 2>/dev/null || true
rm -rf "$LAPTOP"

step "what the guard refuses (answers like Ollama, nothing reaches Ollama)"
show() { printf '  %-44s ' "$1"; shift; ip netns exec "$P-c1" curl -sS -m 5 -o - -w '  -> %{http_code}\n' "$@"; }
show "no client certificate" --cacert "$STATE/out/ca.crt" "$G/api/tags"
show "POST /api/pull (not allowed by default)" "${TLS[@]}" "$G/api/pull" -d '{"model":"x"}'
show "path trick /api/%70ull" "${TLS[@]}" "$G/api/%70ull" -d '{"model":"x"}'
"${WGO[@]}" set-policy alice --models qwen2.5:0.5b --rate 120/min
show "a model outside alice's new allowlist" "${TLS[@]}" "$G/api/chat" -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

step "what the tunnel does not reach at all (a client that routes everything into it)"
GWKEY=$(awk '/^\[Peer\]/{p=1} p && /^PublicKey/{print $3; exit}' "$STATE/wgdemo.conf")
ip netns exec "$P-c1" wg set wgdemo peer "$GWKEY" allowed-ips 0.0.0.0/0
ip netns exec "$P-c1" ip route add 198.51.100.20/32 dev wgdemo
ip netns exec "$P-c1" ip route add 10.66.0.1/32 dev wgdemo
for url in http://198.51.100.10:22/ http://198.51.100.20:11434/ https://198.51.100.1:7443/ http://10.66.0.1:8080/; do
  if ip netns exec "$P-c1" curl -sk -m 2 "$url" >/dev/null; then echo "  REACHED $url (this must not happen)"; exit 1
  else echo "  blocked  $url"; fi
done

step "wg-ollama revoke-peer alice in the middle of a stream: tunnel, firewall and guard cut it"
"${WGO[@]}" set-policy alice --reset >/dev/null
ip netns exec "$P-c1" curl -sS -N -m 30 "${TLS[@]}" "$G/api/generate" -d "{\"model\":\"$MODEL\",\"prompt\":\"Tell me a long story\",\"options\":{\"num_predict\":400}}" >"$STATE/stream.ndjson" 2>/dev/null &
spid=$!
sleep 2
echo "  streamed $(wc -l <"$STATE/stream.ndjson") chunks so far; revoking"
"${WGO[@]}" revoke-peer alice
wait "$spid" || true
n=$(wc -l <"$STATE/stream.ndjson")
sleep 1
echo "  the stream stopped at $n chunks (now $(wc -l <"$STATE/stream.ndjson"))"

sleep 1.5
step "wg-ollama logs requests (one row per request, refusals included; prompts only as SHA-256)"
"${WGO[@]}" logs requests --since 5m

step "metrics: guard and gateway"
ip netns exec "$P-gpu" curl -s 127.0.0.1:9478/metrics | grep -E '^wgo_guard_(requests_total|refusals_total|tls_auth)' | head -8 | sed 's/^/  /'
"${WGO[@]}" list-guards

step "serve's and the guard's own logs: one JSON object per line, for journald, Promtail or Vector (README \"Logs\")"
lastlines() { tail -n "$2" "$1" | node -e 'require("readline").createInterface({input:process.stdin}).on("line",(l)=>{const j=JSON.parse(l);console.log(`  ${j.time}  ${j.level.padEnd(5)}  ${j.event.padEnd(16)}  ${j.msg}`)})'; }
echo "  serve ($STATE/serve.log):"; lastlines "$STATE/serve.log" 3
echo "  guard ($STATE/guard.log):"; lastlines "$STATE/guard.log" 3
echo "  the first line as it is:"; head -n 1 "$STATE/guard.log" | sed 's/^/  /'

step "admin web UI (https://127.0.0.1:8443 in $P-gw): wg-ollama admin add, then sign in with password + TOTP"
ADMIN_PW="demo admin passphrase"
uri=$(printf '%s\n' "$ADMIN_PW" | "${WGO[@]}" admin add demo --password-stdin --json | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>console.log(JSON.parse(s).totpUri))')
echo "  TOTP enrolment (an authenticator app scans it as the QR code 'admin add' prints): $uri"
code=$(cd "$ROOT" && node -e 'require("otplib").generate({ secret: new URL(process.argv[1]).searchParams.get("secret") }).then((c) => console.log(c))' "$uri")
UI=(ip netns exec "$P-gw" curl -sS --cacert "$STATE/state/ca.crt" -b "$STATE/ui.jar" -c "$STATE/ui.jar")
token=$("${UI[@]}" https://127.0.0.1:8443/login | sed -n 's/.*name="_csrf" value="\([^"]*\)".*/\1/p' | head -1)
"${UI[@]}" -o /dev/null -w '  sign-in: HTTP %{http_code} -> %{redirect_url}\n' -H 'Origin: https://127.0.0.1:8443' \
  --data-urlencode "_csrf=$token" --data-urlencode name=demo --data-urlencode "password=$ADMIN_PW" --data-urlencode "code=$code" https://127.0.0.1:8443/login
echo "  the peers page lists:"
"${UI[@]}" https://127.0.0.1:8443/peers | grep -o 'data-peer="[^"]*"' | sed 's/^/    /'
echo "  (with KEEP=1, a browser in the namespace reaches it: ip netns exec $P-gw chromium --no-sandbox https://127.0.0.1:8443)"

step "audit log"
"${WGO[@]}" logs audit --since 5m
echo
echo "demo finished: the lab is removed on exit (KEEP=1 keeps it)."
