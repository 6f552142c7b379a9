import { defineConfig } from 'vitest/config';

// Three projects: fast unit tests of pure logic, lab tests that build network
// namespaces with real WireGuard and iptables (root), and browser tests that
// drive the admin UI in real Chromium.
//
// All three share one pool of worker processes. Vitest sizes it at one worker
// less than the CPUs, which is one on a 2-core CI machine: the whole suite then
// runs file after file. Two workers let a lab file (mostly waiting on
// handshakes, timers and child processes) run next to another file. Lab files
// may run side by side: each builds its own namespaces under its own prefix
// (test/lab/harness.ts) and touches nothing outside them.
export default defineConfig({
  test: {
    maxWorkers: 2,
    minWorkers: 1,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'lab',
          include: ['test/lab/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
