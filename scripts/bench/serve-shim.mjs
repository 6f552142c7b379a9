#!/usr/bin/env node
// `wg-ollama serve` exactly as bin/wg-ollama.js runs it (same config loading,
// same pino logger, same dist/daemon/serve.js), with two optional changes in
// the Runner it hands to serve(), for the benchmarks only:
//
//   BENCH_SYNCCONF_FILE=1  `wg syncconf IFACE /dev/stdin` is run with the text
//       in a 0600 file in the state directory instead. Node gives a child's
//       stdin as a unix socketpair, and open("/dev/stdin") on a socket fails
//       with ENXIO, so as shipped every reconcile with more than 200 changed
//       peers fails ("fopen: No such device or address"). This simulates the
//       proposed fix (see BENCHMARKS.md) without touching src/.
//   BENCH_EXEC_LOG=FILE    one JSON line per external program: start (epoch
//       ms), duration, program, its first arguments (never stdin), stdin size.
//
//   node scripts/bench/serve-shim.mjs --config FILE serve
import { appendFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

const ROOT = new URL('../../', import.meta.url).pathname;
const { loadConfig } = await import(join(ROOT, 'dist/config.js'));
const { serve } = await import(join(ROOT, 'dist/daemon/serve.js'));
const { execRunner } = await import(join(ROOT, 'dist/system/exec.js'));
const { default: pino } = await import('pino');

const argv = process.argv.slice(2);
const ci = argv.indexOf('--config');
if (ci < 0 || argv[ci + 2] !== 'serve') {
  console.error('usage: serve-shim.mjs --config FILE serve');
  process.exit(2);
}
process.umask(0o077);
const config = loadConfig(argv[ci + 1]);
const execLog = process.env.BENCH_EXEC_LOG;
const fixSyncconf = process.env.BENCH_SYNCCONF_FILE === '1';

const timed = async (file, args, options = {}) => {
  const start = performance.timeOrigin + performance.now();
  try {
    return await execRunner(file, args, options);
  } finally {
    if (execLog) {
      const ms = performance.timeOrigin + performance.now() - start;
      appendFileSync(execLog, JSON.stringify({ start, ms, file, args: args.slice(0, 3).map((a) => String(a).slice(0, 60)), argc: args.length, inputBytes: options.input?.length ?? 0 }) + '\n');
    }
  }
};

const runner = async (file, args, options = {}) => {
  if (fixSyncconf && file === 'wg' && args[0] === 'syncconf' && args[2] === '/dev/stdin') {
    const tmp = join(config.stateDir, `syncconf-${randomBytes(6).toString('hex')}.conf`);
    writeFileSync(tmp, options.input ?? '', { mode: 0o600, flag: 'wx' });
    try {
      return await timed(file, [args[0], args[1], tmp], { ...options, input: '' });
    } finally {
      unlinkSync(tmp);
    }
  }
  return timed(file, args, options);
};

const log = pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, redact: ['*.privateKey', '*.presharedKey', 'privateKey', 'presharedKey'] });
await serve(config, log, runner);
