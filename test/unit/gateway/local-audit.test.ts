/**
 * The single-box guard's records go to the gateway's own database (issue 10, item 10): when that
 * database cannot grow (SQLite's real SQLITE_FULL, made with max_page_count rather than a full
 * file system), guard.auditFailure decides — 'refuse' answers 503 audit_unavailable until one
 * committed write succeeds again, then every buffered record is stored, in order, with no
 * sequence number lost to the failed attempts.
 */
import { Registry } from 'prom-client';
import { afterEach, beforeEach, expect, test } from 'vitest';
import type { DraftRecord } from '../../../src/guard/recorder.js';
import { createAuditTrail, type AuditTrail } from '../../../src/guard/audit.js';
import { guardMetrics } from '../../../src/guard/metrics.js';
import { localAuditSpool } from '../../../src/gateway/local-audit.js';
import { T0, WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';
import { waitFor } from '../../support/wait.js';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const draft = (n: number): DraftRecord => ({
  at: T0 + n, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
  model: 'llama3.2:latest', promptSha256: null, promptLength: null, promptText: 'x'.repeat(2000), status: 200, bytesIn: 10, bytesOut: 20,
  promptTokens: null, evalTokens: null, ttfbMs: 1, durationMs: 2, refusal: null,
});

let env: PeerEnv;
let trail: AuditTrail | null = null;
beforeEach(() => {
  env = peerEnv();
  env.svc.add({ name: 'alice' }, WHO);
});
afterEach(() => {
  trail?.stop();
  trail = null;
  env.db.close();
});

const rows = (): number[] => env.db.prepare(`SELECT guard_seq FROM requests WHERE guard = 'local' ORDER BY guard_seq`).pluck().all() as number[];

test('a database that cannot grow: 503 audit_unavailable, loud, then recovered by the probe with nothing lost', async () => {
  const registry = new Registry();
  trail = createAuditTrail({ spool: localAuditSpool(env.db), mode: 'refuse', metrics: guardMetrics(registry), log: silent, probeMs: 100, intervalMs: 50 });
  trail.record(draft(1));
  expect(trail.flush()).toBe(true);
  expect(rows()).toEqual([1]);

  // The database may not take one more page: a real SQLITE_FULL from SQLite.
  const pages = env.db.pragma('page_count', { simple: true }) as number;
  env.db.pragma(`max_page_count = ${pages}`);
  for (let i = 2; i <= 40; i++) trail.record(draft(i));
  expect(trail.flush()).toBe(false);
  expect(trail.state()).toMatchObject({ ok: false, mode: 'refuse', buffered: 39 });
  expect(trail.state().lastError).toMatch(/SQLITE_FULL|full/);
  expect(trail.admit()).toMatchObject({ status: 503, reason: 'audit_unavailable' });
  expect(await registry.getSingleMetricAsString('wgo_guard_audit_ok')).toMatch(/wgo_guard_audit_ok 0/);
  expect(rows()).toEqual([1]);

  // Room again: the probe notices without a request, and the buffered records are stored in order.
  env.db.pragma('max_page_count = 1073741823');
  await waitFor(() => trail!.state().ok, 2000, 'the audit trail to recover');
  expect(trail.admit()).toBeNull();
  expect(rows()).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
});

test('with nothing buffered, the probe (one committed write to gateway_state) ends the outage', async () => {
  trail = createAuditTrail({ spool: localAuditSpool(env.db), mode: 'refuse', metrics: guardMetrics(new Registry()), log: silent, probeMs: 100 });
  trail.failed(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }), 'request records');
  expect(trail.admit()).toMatchObject({ status: 503 });
  await waitFor(() => trail!.state().ok, 2000, 'the audit trail to recover');
  expect(env.db.prepare(`SELECT key FROM gateway_state`).pluck().all()).toEqual(['write_probe']);
});
