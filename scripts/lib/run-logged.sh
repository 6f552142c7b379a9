# shellcheck shell=bash
# Sourced by scripts/setup.sh. Keeps a noisy step (apt-get, npm ci, the build)
# out of the terminal: its output goes to a log file; on success one line is
# printed, on failure what went wrong (the log's error lines and its last
# lines) and where the whole log is.

# run_logged LOG OK_LINE CMD [ARG...]
#   Runs CMD with stdout and stderr appended to LOG and stdin closed. Exit 0:
#   prints OK_LINE on stdout. Otherwise prints, on stderr, the error lines of
#   LOG (at most 25), its last 20 lines and its path, and returns CMD's status.
run_logged() {
  local log=$1 ok=$2 status=0
  shift 2
  "$@" >>"$log" 2>&1 </dev/null || status=$?
  if [ "$status" -eq 0 ]; then
    printf '%s\n' "$ok"
    return 0
  fi
  {
    printf 'setup: "%s" failed (exit %d)\n' "$*" "$status"
    if [ "$(wc -l <"$log")" -le 45 ]; then
      sed 's/^/  | /' "$log" || true
    else
      # apt-get ("E: ..."), npm ("npm error ...") and tsc ("error TS...") say what went wrong
      # near the top; npm then prints its usage text, which would fill a plain tail.
      # grep -m, not `| head`: under `set -o pipefail` a grep cut off by head's exit (SIGPIPE)
      # or one that finds nothing (status 1) would end the script before it names the log.
      grep -m 25 -iE '^(E|W): |^npm (error|ERR!)|error' "$log" | sed 's/^/  | /' || true
      printf '  | ...\n'
      tail -n 20 "$log" | sed 's/^/  | /' || true
    fi
    printf 'setup: the whole log is %s\n' "$log"
  } >&2
  return "$status"
}
