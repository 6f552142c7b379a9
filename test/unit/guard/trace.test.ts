/**
 * The request-leg trace (src/guard/trace.ts): absent unless asked for; when on, one record per
 * request with its marks in the order a request passes, on the clock other processes share.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LEGS } from '../../../src/guard/trace.js';
import { ndjson, startEnv, type GuardEnv } from '../../support/guard-env.js';

describe('off by default', () => {
  let env: GuardEnv;
  beforeAll(async () => {
    env = await startEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  test('a guard created without `trace` keeps nothing and has no trace to drain', async () => {
    const r = await env.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'hi' } });
    expect(r.status).toBe(200);
    expect(env.guard.trace).toBeUndefined();
  });
});

describe('on', () => {
  let env: GuardEnv;
  beforeAll(async () => {
    env = await startEnv({ trace: true, sim: { tokenRate: 50, tokens: 3 }, peers: [{ name: 'alice', address: '127.0.0.1', policy: { models: ['llama3.2'] } }] });
  });
  afterAll(async () => {
    await env?.close();
  });

  test('a streamed request has every leg, in order, between the client sending and receiving', async () => {
    env.guard.trace!.drain();
    const before = Number(process.hrtime.bigint() / 1000n);
    const r = await env.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'hi' }, headers: { 'user-agent': 'trace-test-1' } });
    const after = Number(process.hrtime.bigint() / 1000n);
    expect(r.status).toBe(200);
    expect(ndjson(r.text).at(-1)?.done).toBe(true);
    const { records, dropped } = env.guard.trace!.drain();
    expect(dropped).toBe(0);
    expect(records).toHaveLength(1);
    const t = records[0]!;
    expect(t).toMatchObject({ ua: 'trace-test-1', method: 'POST', path: '/api/generate', nth: 0 });
    const marks = LEGS.map((l) => t.marks[l]);
    expect(marks.every((m) => typeof m === 'number')).toBe(true);
    expect(t.accepted!).toBeGreaterThanOrEqual(before);
    expect(t.accepted!).toBeLessThanOrEqual(t.marks.head!);
    // Non-decreasing in the order of LEGS, all inside the client's own window.
    for (let i = 1; i < marks.length; i++) expect(marks[i]!).toBeGreaterThanOrEqual(marks[i - 1]!);
    expect(marks[0]!).toBeGreaterThanOrEqual(before);
    expect(marks.at(-1)!).toBeLessThanOrEqual(after);
    // The simulator waits one token interval (20 ms) before its first token: it shows between the write and the first byte.
    expect(t.marks.upByte! - t.marks.written!).toBeGreaterThanOrEqual(15_000);
    expect(env.guard.trace!.drain().records).toHaveLength(0);
  });

  test('a refused request is traced up to its end, with no upstream legs; requests on one connection are counted', async () => {
    env.guard.trace!.drain();
    const s = await env.rawTls('alice');
    const body = JSON.stringify({ model: 'not-allowed-model', prompt: 'x' });
    const one = `POST /api/generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    s.write(one + one);
    await new Promise<void>((resolve) => {
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString();
        if ((got.match(/HTTP\/1.1 4\d\d/g) ?? []).length === 2) resolve();
      });
    });
    s.destroy();
    const { records } = env.guard.trace!.drain();
    expect(records.map((r) => r.nth)).toEqual([0, 1]);
    for (const r of records) {
      expect(Object.keys(r.marks).sort()).toEqual(['body', 'end', 'head']);
      expect(r.accepted).toBe(records[0]!.accepted);
    }
  });
});
