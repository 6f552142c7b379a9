import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../../support/wait.js';
import { parseLogLines } from '../../support/log-line.js';

/**
 * What `serve` and `guard` write is what journald and Promtail/Vector take
 * as it is: the built CLI, run for real (a gateway state made by `init` and
 * `add-guard`, the guard on loopback with no gateway answering), writes only
 * JSON lines on stdout, each with time, level as a label, pid, event, msg.
 */

const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = join(ROOT, 'bin/wg-ollama.js');

let dir: string;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const cli = (...args: string[]) => execa('node', [BIN, '--config', join(dir, 'config.json'), ...args], { reject: false, stripFinalNewline: false });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-daemon-log-'));
  const [guardPort, syncPort] = [await freePort(), await freePort()];
  const init = await cli('init', '--endpoint', 'vpn.example.com:51820', '--ollama-host', '127.0.0.1', '--ollama-port', String(guardPort),
    '--state-dir', join(dir, 'state'), '--sync-listen', `127.0.0.1:${syncPort}`);
  expect(init.exitCode, init.stderr).toBe(0);
  const add = await cli('add-guard', 'gpu1', '--address', '127.0.0.1', '--out', join(dir, 'guard'));
  expect(add.exitCode, add.stderr).toBe(0);
  const file = join(dir, 'guard/guard.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), metricsListen: null }));
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the JSON lines of the guard', () => {
  test('start, the gateway unreachable, stop on SIGTERM: every line JSON with the documented fields', async () => {
    let out = '';
    const guard = execa('node', [BIN, 'guard', '--config', join(dir, 'guard/guard.json')], { reject: false, stripFinalNewline: false });
    guard.stdout!.on('data', (d: Buffer) => (out += String(d)));
    await waitFor(() => out.includes('"sync.unreachable"') && out.includes('"guard.start"'), 15_000, 'the guard to start and try the gateway');
    guard.kill('SIGTERM');
    const r = await guard;
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe('');
    const lines = parseLogLines(r.stdout);
    const events = lines.map((l) => l.event);
    expect(events).toContain('guard.start');
    expect(events.at(-1)).toBe('guard.stop');
    for (const l of lines) expect(l).toMatchObject({ pid: guard.pid, guard: 'gpu1' });
    expect(lines.find((l) => l.event === 'sync.unreachable')).toMatchObject({ level: 'warn', connected: false });
    expect(lines.find((l) => l.event === 'guard.start')).toMatchObject({ level: 'info', listen: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    // The keys it read are in no line.
    const key = readFileSync(join(dir, 'guard/guard.key'), 'utf8').split('\n')[1]!;
    expect(r.stdout).not.toContain(key);
  }, 30_000);

  test('a guard that cannot start: one fatal JSON line (guard.failed), exit 1, nothing on stderr', async () => {
    const r = await execa('node', [BIN, 'guard', '--config', join(dir, 'no-such/guard.json')], { reject: false, stripFinalNewline: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('');
    const [line, ...rest] = parseLogLines(r.stdout);
    expect(rest).toEqual([]);
    expect(line).toMatchObject({ level: 'fatal', event: 'guard.failed', code: 'NOT_INITIALIZED', err: expect.stringContaining('no-such/guard.json') });
  });
});

describe('the JSON lines of serve', () => {
  test('a serve that cannot start: one fatal JSON line (serve.failed) with the code, the exit code of its kind', async () => {
    const r = await execa('node', [BIN, '--config', join(dir, 'nothing-here.json'), 'serve'], { reject: false, stripFinalNewline: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('');
    const [line, ...rest] = parseLogLines(r.stdout);
    expect(rest).toEqual([]);
    expect(line).toMatchObject({ level: 'fatal', event: 'serve.failed', code: 'NOT_INITIALIZED', err: expect.stringContaining('nothing-here.json') });
  });

  test('other verbs keep their one text line on stderr', async () => {
    const r = await execa('node', [BIN, '--config', join(dir, 'nothing-here.json'), 'status'], { reject: false, stripFinalNewline: false });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^wg-ollama: no config at .*nothing-here\.json.*\n?$/);
  });
});
