/**
 * The peer set a guard saved in its spool is read back with the wire schema
 * (core/wire.ts): a guard restarted on a newer release while the gateway is
 * unreachable enforces a set saved by the release before, which lacks the
 * policy fields added since. Those take their defaults, as the same set sent
 * by an older gateway would, instead of reaching the policy code as undefined.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { DEFAULT_POLICY } from '../../../src/core/policy.js';
import { openSpool } from '../../../src/guard/spool.js';
import { isWgoError } from '../../../src/errors.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-saved-set-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `set` as the saved peer set of a spool at `path`, as a guard of any release did. */
function saveRaw(path: string, value: string): void {
  openSpool(path).close();
  const db = new Database(path);
  db.prepare(`INSERT INTO kv (key, value) VALUES ('peerSet', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(value);
  db.close();
}

const { apiTokens: _gatewayOnly, ...requestPolicy } = DEFAULT_POLICY;

test('a set saved by an older release (no writeModels, options, optionLimits, maxTokensPerRequest) is read with their defaults', () => {
  const path = join(dir, 'spool.db');
  const older = { endpoints: ['chat', 'tags'], models: ['llama3.2'], requestsPerMinute: 30, burst: 5, maxStreams: 2, tokensPerDay: null, maxKeepAliveSec: null, maxNumCtx: null };
  saveRaw(path, JSON.stringify({ version: '3.abc', peers: [{ name: 'alice', address: '10.66.0.2', serial: 'ab', expiresAt: null, policy: older }], logPrompts: false, tokensToday: {}, day: '2026-12-03' }));
  const spool = openSpool(path);
  try {
    const set = spool.loadPeerSet()!;
    expect(set.peers[0]!.policy).toEqual({ ...requestPolicy, ...older });
    expect(set.peers[0]!.policy.options).toEqual(DEFAULT_POLICY.options);
    expect(set.peers[0]!.policy.writeModels).toEqual([]);
  } finally {
    spool.close();
  }
});

test('a set this release saved reads back unchanged', () => {
  const spool = openSpool(join(dir, 'spool.db'));
  try {
    const set = { version: '9.abc', peers: [{ name: 'alice', address: '10.66.0.2', serial: 'ab', expiresAt: 5, policy: requestPolicy, tokenSha256: null }], logPrompts: true, tokensToday: { alice: 4 }, day: '2026-12-04', recordFields: ['auth'] };
    spool.savePeerSet(set);
    expect(spool.loadPeerSet()).toEqual(set);
  } finally {
    spool.close();
  }
});

test('a saved set that does not fit is a clear error naming the spool and the field', () => {
  const path = join(dir, 'spool.db');
  saveRaw(path, JSON.stringify({ version: '3.abc', peers: [{ name: 'alice', address: '10.66.0.2', serial: 'XY', expiresAt: null, policy: {} }], logPrompts: false, tokensToday: {}, day: '2026-12-03' }));
  const spool = openSpool(path);
  try {
    let err: unknown;
    try {
      spool.loadPeerSet();
    } catch (e) {
      err = e;
    }
    expect(isWgoError(err)).toBe(true);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain('peers.0.serial: ');
  } finally {
    spool.close();
  }
});
