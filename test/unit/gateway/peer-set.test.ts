import { afterEach, describe, expect, test } from 'vitest';
import { generateKeyPair } from '../../../src/core/keys.js';
import { DEFAULT_POLICY, policySchema } from '../../../src/core/policy.js';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { peerRepository } from '../../../src/db/peers.js';
import { requestRepository } from '../../../src/db/requests.js';
import { followPeerSet, peerSetSource } from '../../../src/gateway/peer-set.js';
import type { PeerSet } from '../../../src/core/wire.js';
import { DAY, T0, WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';

let env: PeerEnv | undefined;
afterEach(() => {
  env?.close();
  env = undefined;
});

/** The default policy as guards get it: apiTokens stays at the gateway. */
const { apiTokens: _gatewayOnly, ...GUARD_DEFAULT } = DEFAULT_POLICY;

/** A record as a guard sends it: the peer is known to the gateway by its certificate serial. */
let serials: Record<string, string> = {};
function rec(seq: number, at: number, peer: string, promptTokens: number | null, evalTokens: number | null): RequestRecord {
  return {
    seq, at, peer, certSerial: serials[peer] ?? null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
    model: 'llama3.2:latest', promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 1,
    bytesOut: 1, promptTokens, evalTokens, ttfbMs: 1, durationMs: 1, refusal: null,
  };
}

describe('peerSetSource', () => {
  test('only active, unexpired peers that have a certificate, with their current serial and address', () => {
    env = peerEnv();
    const e = env;
    const alice = e.svc.add({ name: 'alice' }, WHO);
    const bob = e.svc.add({ name: 'bob', expiresInMs: DAY }, WHO);
    e.svc.add({ name: 'carol' }, WHO);
    e.svc.add({ name: 'dave' }, WHO);
    e.svc.disable('carol', WHO);
    e.svc.revoke('dave', WHO);
    // A peer from before certificates existed: active, but nothing the guard could check.
    peerRepository(e.db).insert({ name: 'old', address: '10.66.0.9', addressInt: 0x0a420009, publicKey: generateKeyPair().publicKey, pskRef: null, expiresAt: null, now: T0 });

    const source = peerSetSource(e.db, e.config);
    const set = source.load(T0);
    expect(set.peers).toEqual([
      // A peer without an expiry is still bounded by its certificate's end.
      { name: 'alice', address: alice.peer.address, serial: alice.certificate.serial, expiresAt: Date.parse(alice.certificate.notAfter), policy: GUARD_DEFAULT, tokenSha256: null },
      { name: 'bob', address: bob.peer.address, serial: bob.certificate.serial, expiresAt: T0 + DAY, policy: GUARD_DEFAULT, tokenSha256: null },
    ]);
    expect(set.version).toBe(source.version());
    expect(set.day).toBe('2025-01-01');
    expect(source.load(T0 + DAY).peers.map((p) => p.name)).toEqual(['alice']);
  });

  test('a rotated peer is listed with its new serial', () => {
    env = peerEnv();
    const first = env.svc.add({ name: 'alice' }, WHO).certificate.serial;
    const second = env.svc.rotate('alice', {}, WHO).certificate.serial;
    expect(second).not.toBe(first);
    expect(peerSetSource(env.db, env.config).load(T0).peers.map((p) => p.serial)).toEqual([second]);
  });

  test('effective policy: built-in defaults, then the config default, then the peer overrides', () => {
    env = peerEnv({ policy: { maxStreams: 2, models: ['llama3.2'], tokensPerDay: 5000 } });
    env.svc.add({ name: 'alice' }, WHO);
    env.svc.add({ name: 'bob' }, WHO);
    env.svc.setPolicy('alice', { models: ['qwen2.5:*'], tokensPerDay: null, burst: 3 }, WHO);
    const byName = new Map(peerSetSource(env.db, env.config).load(T0).peers.map((p) => [p.name, p.policy]));
    expect(byName.get('bob')).toEqual({ ...GUARD_DEFAULT, maxStreams: 2, models: ['llama3.2'], tokensPerDay: 5000 });
    expect(byName.get('alice')).toEqual({ ...GUARD_DEFAULT, maxStreams: 2, models: ['qwen2.5:*'], tokensPerDay: null, burst: 3 });
  });

  test('model patterns an older release stored and the name grammar now refuses are dropped, never widened', () => {
    env = peerEnv();
    const alice = env.svc.add({ name: 'alice' }, WHO);
    const bob = env.svc.add({ name: 'bob' }, WHO);
    // Older releases accepted these (read as llama3.2:latest and ns/m:latest); Ollama reads them otherwise or not at all.
    peerRepository(env.db).setPolicy(alice.peer.id, JSON.stringify({ models: ['registry.ollama.ai/llama3.2', 'qwen2.5:*', `x:${'t'.repeat(100)}`] }), T0);
    peerRepository(env.db).setPolicy(bob.peer.id, JSON.stringify({ models: ['registry.ollama.ai/llama3.2'] }), T0);
    const set = peerSetSource(env.db, env.config).load(T0);
    const byName = new Map(set.peers.map((p) => [p.name, p.policy]));
    expect(byName.get('alice')?.models).toEqual(['qwen2.5:*']);
    // an allowlist left empty allows nothing: it does not turn into "every model"
    expect(byName.get('bob')?.models).toEqual([]);
    // and the guard's wire schema accepts the set
    for (const p of set.peers) expect(policySchema.safeParse(p.policy).success).toBe(true);
  });

  test('the version changes on every change a guard must see, and only then', () => {
    env = peerEnv();
    const e = env;
    e.svc.add({ name: 'alice' }, WHO);
    e.svc.add({ name: 'bob' }, WHO);
    e.svc.add({ name: 'carol' }, WHO);
    const source = peerSetSource(e.db, e.config);
    const seen = new Set<string>();
    const step = (what: string, change: () => unknown): void => {
      const before = source.version();
      change();
      const after = source.version();
      expect(after, what).not.toBe(before);
      expect(seen.has(after), `${what}: a version is never reused`).toBe(false);
      seen.add(after);
      expect(source.load(T0).version, what).toBe(after);
    };
    seen.add(source.version());
    step('set-policy', () => e.svc.setPolicy('alice', { maxStreams: 1 }, WHO));
    step('disable', () => e.svc.disable('bob', WHO));
    step('enable', () => e.svc.enable('bob', {}, WHO));
    step('rotate', () => e.svc.rotate('carol', {}, WHO));
    step('revoke', () => e.svc.revoke('carol', WHO));
    step('policy back to default', () => e.svc.setPolicy('alice', null, WHO));

    const v = source.version();
    source.load(T0);
    e.svc.setPolicy('alice', null, WHO); // unchanged
    e.svc.disable('bob', WHO);
    const afterDisable = source.version();
    e.svc.disable('bob', WHO); // already disabled
    expect(source.version()).toBe(afterDisable);
    expect(afterDisable).not.toBe(v);
  });

  test('the configured default policy is part of the version (guards must not keep an old default)', () => {
    env = peerEnv();
    env.svc.add({ name: 'alice' }, WHO);
    const before = peerSetSource(env.db, env.config);
    const after = peerSetSource(env.db, { ...env.config, policy: { maxStreams: 1 } });
    expect(after.version()).not.toBe(before.version());
    expect(after.load(T0).peers[0]!.policy.maxStreams).toBe(1);
  });

  test('logPrompts is part of the set and of the version', () => {
    env = peerEnv();
    env.svc.add({ name: 'alice' }, WHO);
    const off = peerSetSource(env.db, env.config);
    const on = peerSetSource(env.db, { ...env.config, logPrompts: true });
    expect(off.load(T0).logPrompts).toBe(false);
    expect(on.load(T0).logPrompts).toBe(true);
    expect(on.version()).not.toBe(off.version());
  });

  test("tokensToday: today's prompt + eval tokens (UTC day), 0 for a peer without requests", () => {
    env = peerEnv();
    serials = Object.fromEntries(['alice', 'bob', 'carol'].map((n) => [n, env.svc.add({ name: n }, WHO).certificate.serial]));
    const dayStart = Date.UTC(2025, 0, 1);
    requestRepository(env.db).insertBatch('gpu1', [
      rec(1, dayStart - 1, 'alice', 1000, 1000), // yesterday
      rec(2, dayStart, 'alice', 10, 20),
      rec(3, T0, 'alice', 5, null),
      rec(4, T0, 'bob', null, 7),
      rec(5, T0, 'zed', 100, 100), // not a peer of the set
    ]);
    const set = peerSetSource(env.db, env.config).load(T0);
    expect(set.tokensToday).toEqual({ alice: 35, bob: 7, carol: 0 });
    // Just after midnight the new day starts from zero.
    const next = peerSetSource(env.db, env.config).load(dayStart + DAY);
    expect(next.day).toBe('2025-01-02');
    expect(next.tokensToday).toEqual({ alice: 0, bob: 0, carol: 0 });
  });
});

describe('followPeerSet (single-box: the in-process guard follows the database)', () => {
  const set = (version: string): PeerSet => ({ version, peers: [], logPrompts: false, tokensToday: {}, day: '2026-12-04' });

  test('a load that fails does not count as applied: the next change applies the newest set', () => {
    let version = '1';
    let failing = false;
    const applied: string[] = [];
    const errors: string[] = [];
    const source = {
      version: () => version,
      load: (): PeerSet => {
        if (failing) throw new Error('SQLITE_BUSY: database is locked');
        return set(version);
      },
    };
    const changed = followPeerSet(source, (s) => applied.push(s.version), (e) => errors.push(e.message));
    version = '2';
    failing = true;
    changed();
    expect(applied).toEqual([]);
    expect(errors).toEqual(['SQLITE_BUSY: database is locked']);
    // Nothing else changed in the database, but the set at version 2 was never applied: the next poll must try again.
    failing = false;
    changed();
    expect(applied).toEqual(['2']);
    changed();
    expect(applied).toEqual(['2']);
  });
});
