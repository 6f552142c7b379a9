#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 clone, as root:
#   sudo scripts/test.sh
# Installs what is needed (scripts/setup.sh), runs every vitest project: the
# unit tests, the lab tests (real network namespaces, wireguard-go, iptables)
# and the browser tests (the admin UI in Chromium), and ends with one line
# "N passed, N failed" counting all of them. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

mkdir -p test-results
rm -f test-results/vitest.json
node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@"
status=$?

node -e '
  const fs = require("fs");
  let passed = 0, failed = 0;
  try {
    const r = JSON.parse(fs.readFileSync("test-results/vitest.json", "utf8"));
    passed = r.numPassedTests;
    failed = r.numFailedTests;
    // A suite that fails in a hook marks its tests skipped: count the suite as a failure.
    if (failed === 0 && r.numFailedTestSuites > 0) failed = r.numFailedTestSuites;
  } catch {}
  if (failed === 0 && Number(process.argv[1]) !== 0) failed = 1;
  if (passed === 0 && failed === 0) failed = 1; // ran no test: that is a failure
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
' "$status"
