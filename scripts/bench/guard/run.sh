#!/usr/bin/env bash
# Guard vs nginx (issue 3, "Benchmarks"): builds wg-ollama, then runs scripts/bench/guard/bench.mjs,
# which starts the simulator, the guard (1 process), nginx (worker_processes 1) and the load
# generator as separate processes on 127.0.0.1, and kills all of them by PID at the end.
#   sudo scripts/bench/guard/run.sh                  # full run, 10-12 min (not timed since issue 13)
#   BENCH_QUICK=1 sudo -E scripts/bench/guard/run.sh # smoke test, ~1.5 min
#   flock /tmp/wgo-bench.lock scripts/bench/guard/run.sh   # on a shared machine: one benchmark at a time
# Results: $BENCH_OUT/guard.json (every repetition) and guard.md (the tables; again from the json
# with `node scripts/bench/guard/summary.mjs FILE`); default BENCH_OUT=/tmp/wgo-bench-results.
# Knobs: GB_ONLY (rps,streams,legs,handshakes,rss), GB_REPS (3), GB_CONC (1,16,64),
# GB_RPS_SECONDS (2.5), GB_PROBES (30), GB_HOLD_STEPS (1000,5000), GB_HOLD_REPS (2),
# GB_DEADLINE_S (840), GB_KEEP_DIR=1. A busy machine: GB_MAX_LOAD (1.0, load average when the run
# starts), GB_MAX_FOREIGN_PCT (15, other processes' CPU during a phase, % of one core),
# GB_MAX_STEAL_PCT (5), GB_WAIT_QUIET_S (0: seconds to wait for the load average to drop first),
# GB_BUSY=mark (busy phases marked in the tables) or refuse (no figures, exit 4).
# GB_BASELINE_DIST=DIR: another build's dist/ runs as a second guard, target "guard-base" (rps,
# streams); GB_PROFILE_DIR=DIR: the guard runs under --cpu-prof (read it with profile.mjs).
# The CPU on the CPU: scripts/bench/guard/perf.sh.
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ "$(id -u)" != 0 ]; then echo "run as root: sudo scripts/bench/guard/run.sh" >&2; exit 2; fi
command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install nginx-light or nginx)" >&2; exit 2; }
# 5,000 open streams: 5,000 client sockets in the generator, 10,000 in the proxy, 5,000 in the simulator.
# Needs CAP_SYS_RESOURCE past the hard limit; otherwise take the hard limit (≥ 16384 is enough).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 16384 ]; then
  echo "ulimit -n is $(ulimit -n): 5,000 open streams need at least 16384 descriptors per process" >&2; exit 2
fi
export BENCH_OUT=${BENCH_OUT:-/tmp/wgo-bench-results}
mkdir -p "$BENCH_OUT"

npm run build --silent

pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true   # bench.mjs kills its own children by PID on SIGTERM
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

node scripts/bench/guard/bench.mjs &
pid=$!
wait "$pid"
