import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { openDatabase } from '../../../src/db/open.js';
import { requestRepository } from '../../../src/db/requests.js';
import { waitFor } from '../../support/wait.js';

/**
 * `wg-ollama logs requests --follow --json` is how request records are
 * shipped (README "Logs"): the built CLI, reading a real state directory
 * (made by `init`) while records are stored, prints one JSON object per line
 * and writes each line as it comes, not when it exits.
 */

const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = join(ROOT, 'bin/wg-ollama.js');

let dir: string;
let configFile: string;

function rec(seq: number, o: Partial<RequestRecord> = {}): RequestRecord {
  return {
    seq, at: Date.now(), peer: null, certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
    model: 'llama3.2:latest', promptSha256: 'ef'.repeat(32), promptLength: 10, promptText: null, status: 200, bytesIn: 50,
    bytesOut: 900, promptTokens: 11, evalTokens: 22, ttfbMs: 12, durationMs: 345.6, refusal: null, ...o,
  };
}

function store(records: RequestRecord[]): void {
  const db = openDatabase(loadConfig(configFile).paths.db);
  try {
    requestRepository(db).insertBatch('gpu1', records);
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-logs-follow-'));
  configFile = join(dir, 'config.json');
  const init = await execa('node', [BIN, '--config', configFile, 'init', '--endpoint', 'vpn.example.com:51820', '--ollama-host', '192.168.1.10', '--state-dir', join(dir, 'state')], { reject: false });
  expect(init.exitCode, init.stderr).toBe(0);
  store([rec(1, { model: 'before:latest' })]);
}, 30_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('logs requests --follow --json: one JSON object per line, new records while following, each line written at once', async () => {
  const chunks: string[] = [];
  const p = execa('node', [BIN, '--config', configFile, 'logs', 'requests', '--follow', '--json'], { reject: false, stripFinalNewline: false });
  p.stdout!.on('data', (d: Buffer) => chunks.push(String(d)));
  const text = (): string => chunks.join('');
  await waitFor(() => text().includes('before:latest'), 10_000, 'the stored record');

  store([rec(2, { model: 'second:latest', status: 429, refusal: 'rate_limited', promptTokens: null, evalTokens: null })]);
  await waitFor(() => text().includes('second:latest'), 5000, 'a record stored while following');
  store([rec(3, { model: 'third\nline:latest' }), rec(4, { model: 'fourth:latest' })]);
  await waitFor(() => text().includes('fourth:latest'), 5000, 'two more records');
  // Seen while the process still runs: each line reached the pipe when it was made.
  expect(p.exitCode).toBeNull();

  p.kill('SIGTERM');
  const r = await p;
  expect(r.exitCode).toBe(0);
  expect(r.stderr).toBe('');
  const out = text();
  expect(out.endsWith('\n')).toBe(true);
  const lines = out.slice(0, -1).split('\n');
  const rows = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(rows.map((row) => row.model)).toEqual(['before:latest', 'second:latest', 'third\nline:latest', 'fourth:latest']);
  // Exactly the fields the README documents for shipping ("A row has ...").
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const sentence = /A row has ([\s\S]*?)\n\n/.exec(readme.slice(readme.indexOf('\n## Logs\n')))![1]!;
  const documented = [...sentence.matchAll(/`([a-z][A-Za-z0-9]*)`/g)].map((m) => m[1]!).filter((f) => f !== 'logPrompts');
  for (const row of rows) {
    expect(Object.keys(row).sort()).toEqual([...new Set(documented)].sort());
    expect(typeof row.id).toBe('number');
    expect(new Date(row.at as string).toISOString()).toBe(row.at);
  }
  expect(rows[1]).toMatchObject({ status: 429, refusal: 'rate_limited' });
  expect(new Set(rows.map((row) => row.id)).size).toBe(4);
}, 30_000);
