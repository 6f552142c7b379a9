import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { showLogs } from '../../../src/cli/logs.js';
import { table, type Io } from '../../../src/cli/output.js';
import { type Config } from '../../../src/config.js';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { auditRepository } from '../../../src/db/audit.js';
import { openDatabase } from '../../../src/db/open.js';
import { requestRepository } from '../../../src/db/requests.js';
import { gatewayState, type GatewayState } from '../../support/gateway-state.js';

// What a client can put in a model name or the sign-in name field: a newline
// followed by a forged log line, an OSC 8 hyperlink, a bidi override.
const FORGED = '\n2026-01-01T00:00:00.000Z  root@cli  admin.add  mallory fake line';
const OSC8 = '\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\';
const EVIL = `x${FORGED}${OSC8}\u202e\u2028`;

let state: GatewayState;
let config: Config;

beforeAll(() => {
  state = gatewayState({ name: 'logs-esc', keys: false });
  config = state.config;
  const now = Date.now();
  const db = openDatabase(config.paths.db);
  try {
    const rec: RequestRecord = {
      seq: 1, at: now - 1000, peer: null, certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
      model: EVIL, promptSha256: 'ef'.repeat(32), promptLength: 10, promptText: null, status: 404, bytesIn: 50,
      bytesOut: 90, promptTokens: null, evalTokens: null, ttfbMs: 12, durationMs: 3, refusal: null,
    };
    requestRepository(db).insertBatch('gpu1', [rec]);
    auditRepository(db).record({ actor: EVIL, source: '192.0.2.1', action: 'admin.login.failed', target: EVIL, details: { note: EVIL } }, now - 1000);
  } finally {
    db.close();
  }
});
afterAll(() => state.cleanup());

async function run(kind: string, json: boolean): Promise<string> {
  const out: string[] = [];
  const io: Io = { out: (t) => void out.push(t), err: () => undefined, env: {} };
  await showLogs(config, kind, { json }, io);
  return out.join('');
}

/** Nothing a terminal acts on: no C0 but the final newline, no DEL, C1, line separators or bidi controls. */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe.each(['requests', 'audit'])('logs %s with client-chosen control characters', (kind) => {
  test('text: one line, the control characters shown escaped', async () => {
    const text = await run(kind, false);
    expect(text.split('\n').filter((l) => l.length > 0)).toHaveLength(1);
    expect(text).not.toMatch(CONTROL);
    expect(text).toContain('x\\x0a2026-01-01T00:00:00.000Z  root@cli');
    expect(text).toContain('\\x1b]8;;http://evil\\x1b\\click');
    expect(text).toContain('\\u202e\\u2028');
  });

  test('--json: one JSON line that gives the string back exactly', async () => {
    const text = await run(kind, true);
    const lines = text.split('\n').filter((l) => l.length > 0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\u0000-\u001f]/);
    const row = JSON.parse(lines[0]!) as { model?: string; actor?: string };
    expect(kind === 'requests' ? row.model : row.actor).toBe(EVIL);
  });
});

describe('table', () => {
  test('cells are escaped, and the columns are aligned on what is printed', () => {
    const out = table([['NAME', 'FROM'], [`a${OSC8}`, 'b\nc'], ['zz', 'd']]);
    expect(out).not.toMatch(CONTROL);
    const lines = out.split('\n').filter((l) => l.length > 0);
    expect(lines).toHaveLength(3);
    const col = lines[0]!.indexOf('FROM');
    expect(lines[1]!.slice(col)).toBe('b\\x0ac');
    expect(lines[2]!.slice(col)).toBe('d');
  });
});
