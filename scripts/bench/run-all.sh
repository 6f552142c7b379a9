#!/usr/bin/env bash
# Builds wg-ollama and runs every benchmark in the namespace lab (prefix "bn"),
# then prints a summary. Run as root:   sudo scripts/bench/run-all.sh
# Results (JSON) go to $BENCH_OUT (default /tmp/wgo-bench-results).
# BENCH_QUICK=1 runs fewer repetitions (a smoke test).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then echo "run as root: sudo scripts/bench/run-all.sh" >&2; exit 2; fi
export BENCH_OUT=${BENCH_OUT:-/tmp/wgo-bench-results}
rm -rf "$BENCH_OUT"
mkdir -p "$BENCH_OUT"
trap 'scripts/lab.sh down bn >/dev/null 2>&1 || true' EXIT

start=$(date +%s)
npm run build --silent
status=0
for b in bulk-apply noop-reconcile add-peer revoke profile; do
  echo
  echo "== $b ($(date +%T))"
  BENCH_SCRIPT_TIMEOUT_S=${BENCH_SCRIPT_TIMEOUT_S:-240} node "scripts/bench/$b.mjs" || { echo "== $b FAILED"; status=1; }
done
echo
echo "== summary (total $(( $(date +%s) - start )) s)"
node scripts/bench/summary.mjs "$BENCH_OUT"
exit $status
