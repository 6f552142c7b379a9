import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { WgDump, WgPeerState } from '../../../src/core/wg-dump.js';
import { connectionRepository } from '../../../src/db/connections.js';
import { createMonitor } from '../../../src/gateway/monitor.js';
import { peerEnv, T0, WHO, type PeerEnv } from '../../support/peer-env.js';
import { fillDatabase } from '../../support/full-db.js';

let env: PeerEnv;
let table: WgPeerState[];
let alice: string;
let bob: string;

beforeEach(() => {
  env = peerEnv();
  alice = env.svc.add({ name: 'alice' }, WHO).peer.publicKey;
  bob = env.svc.add({ name: 'bob' }, WHO).peer.publicKey;
  table = [];
});
afterEach(() => env.close());

const entry = (publicKey: string, o: Partial<WgPeerState> = {}): WgPeerState => ({
  publicKey, presharedKey: null, endpoint: '203.0.113.7:40000', allowedIps: [], latestHandshake: 0,
  rxBytes: 0, txBytes: 0, persistentKeepalive: 0, ...o,
});

const monitor = () =>
  createMonitor({
    db: env.db,
    dump: async (): Promise<WgDump> => ({
      iface: { privateKey: null, publicKey: null, listenPort: 51820, fwmark: 'off' },
      peers: table,
    }),
    settings: { handshakeTimeoutSec: 180, trafficIntervalMs: 60_000 },
    log: pino({ level: 'silent' }),
    clock: () => env.now,
  });

const events = () =>
  connectionRepository(env.db)
    .list({ since: 0 })
    .map((e) => [e.peer, e.kind, e.rxBytes] as const);

describe('createMonitor', () => {
  test('a tick whose write fails (a full disk) loses nothing: the next one writes the same events', async () => {
    const m = monitor();
    table = [entry(alice, { latestHandshake: T0 / 1000 - 2, rxBytes: 100, txBytes: 10 })];
    const full = fillDatabase(env.db);
    await expect(m.tick()).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    env.now += 1000;
    await expect(m.tick()).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    full.room();
    env.now += 1000;
    expect(await m.tick()).toBe(1);
    expect(events()).toEqual([['alice', 'handshake', null]]);
    expect(connectionRepository(env.db).links().get(1)).toMatchObject({ connected: true, rxTotal: 100, txTotal: 10 });
  });

  test('records a handshake once, with time, peer and endpoint', async () => {
    const m = monitor();
    table = [entry(alice, { latestHandshake: T0 / 1000 - 2 }), entry(bob)];
    expect(await m.tick()).toBe(1);
    env.now += 5000;
    expect(await m.tick()).toBe(0);
    expect(connectionRepository(env.db).list({ since: 0 })).toEqual([
      {
        id: 1, at: T0, peerId: 1, peer: 'alice', kind: 'handshake', endpoint: '203.0.113.7:40000',
        oldEndpoint: null, rxBytes: null, txBytes: null,
      },
    ]);
  });

  test('link state survives a restart: no second handshake event, traffic keeps counting', async () => {
    table = [entry(alice, { latestHandshake: T0 / 1000, rxBytes: 100, txBytes: 10 })];
    await monitor().tick();
    env.now += 60_000;
    table = [entry(alice, { latestHandshake: T0 / 1000 + 50, rxBytes: 250, txBytes: 20 })];
    expect(await monitor().tick()).toBe(1);
    expect(events()).toEqual([
      ['alice', 'handshake', null],
      ['alice', 'traffic', 250],
    ]);
    expect(connectionRepository(env.db).links().get(1)).toMatchObject({ connected: true, rxTotal: 250, txTotal: 20 });
  });

  test('a disabled peer gone from the table loses its handshake', async () => {
    const m = monitor();
    table = [entry(alice, { latestHandshake: T0 / 1000 })];
    await m.tick();
    env.svc.disable('alice', WHO);
    table = [];
    env.now += 1000;
    expect(await m.tick()).toBe(1);
    expect(events()).toEqual([
      ['alice', 'handshake', null],
      ['alice', 'handshake_lost', null],
    ]);
  });

  test('a revoked peer’s open connection is closed out, pending traffic first', async () => {
    const m = monitor();
    table = [entry(alice, { latestHandshake: T0 / 1000, rxBytes: 500, txBytes: 50 })];
    await m.tick();
    env.svc.revoke('alice', WHO);
    table = [];
    env.now += 1000;
    expect(await m.tick()).toBe(2);
    expect(events()).toEqual([
      ['alice', 'handshake', null],
      ['alice', 'traffic', 500],
      ['alice', 'handshake_lost', null],
    ]);
    env.now += 1000;
    expect(await m.tick()).toBe(0);
  });

  test('a failing dump rejects and records nothing', async () => {
    const m = createMonitor({
      db: env.db,
      dump: () => Promise.reject(new Error('wg show failed')),
      settings: { handshakeTimeoutSec: 180, trafficIntervalMs: 60_000 },
      log: pino({ level: 'silent' }),
    });
    await expect(m.tick()).rejects.toThrow('wg show failed');
    expect(events()).toEqual([]);
  });
});
