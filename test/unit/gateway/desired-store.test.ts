import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config.js';
import { generateKeyPair } from '../../../src/core/keys.js';
import { createDesiredStore, type GatewayContext } from '../../../src/gateway/context.js';
import { openDatabase } from '../../../src/db/open.js';
import { peerService } from '../../../src/gateway/peer-service.js';
import { pskStore } from '../../../src/gateway/psk-store.js';
import { testCaStore } from '../../support/ca.js';
import { testDir } from '../../support/temp.js';

function setup() {
  const dir = testDir('store');
  const config = parseConfig({ stateDir: dir, interface: 'wgo0', listenPort: 51820, subnet: '10.66.0.0/24', endpoint: 'vpn.example.com:51820', ollamaHost: '192.168.1.50', ollamaPort: 11434 }, 'test');
  const db = openDatabase(':memory:');
  const psk = pskStore(join(dir, 'psk'));
  let now = 1_000_000;
  const clock = () => now;
  const server = generateKeyPair();
  const peers = peerService({ db, config, serverPublicKey: server.publicKey, psk, ca: testCaStore(), clock });
  const ctx = { config, db, psk, peers, privateKey: server.privateKey, serverPublicKey: server.publicKey, close: () => db.close() } as GatewayContext;
  let version = 0;
  const errors: string[] = [];
  const store = createDesiredStore(ctx, (m) => errors.push(m), clock, () => version);
  return { peers, store, bump: () => version++, advance: (ms: number) => (now += ms), errors };
}
const who = { actor: 't', source: 'test' };

describe('desired store', () => {
  it('has no fast path before the first full load', () => {
    const { store } = setup();
    expect(store.changes()).toBeNull();
  });

  it('changes() returns exactly the peers committed since the last load, before and after', () => {
    const { peers, store, bump } = setup();
    peers.add({ name: 'a' }, who);
    peers.add({ name: 'b' }, who);
    expect(store.full().peers.map((p) => p.name).sort()).toEqual(['a', 'b']);
    peers.add({ name: 'c' }, who);
    peers.disable('a', who);
    bump();
    const ch = store.changes()!;
    expect([...ch.after.entries()].map(([, d]) => d?.name ?? null)).toEqual(['c', null]); // in commit order
    expect([...ch.before.values()].map((d) => d.name)).toEqual(['a']);
    expect(ch.state.peers.map((p) => p.name).sort()).toEqual(['b', 'c']);
    // Nothing new: empty, and full() reuses the state without reading.
    expect(store.changes()!.after.size).toBe(0);
    expect(store.full()).toBe(ch.state);
  });

  it('a rotation shows the old key before and the new key after', () => {
    const { peers, store, bump } = setup();
    const first = peers.add({ name: 'a' }, who);
    store.full();
    const rotated = peers.rotate('a', {}, who);
    bump();
    const ch = store.changes()!;
    expect([...ch.before.values()][0]!.publicKey).toBe(first.peer.publicKey);
    expect([...ch.after.values()][0]!.publicKey).toBe(rotated.peer.publicKey);
  });

  it('full() reloads after a change, and once the first peer has expired', () => {
    const { peers, store, bump, advance } = setup();
    peers.add({ name: 'a', expiresInMs: 5000 }, who);
    const s1 = store.full();
    expect(store.full()).toBe(s1);
    advance(6000);
    expect(store.full().peers).toEqual([]);
    peers.add({ name: 'b' }, who);
    expect(store.full().peers).toEqual([]); // same version: cached
    bump();
    expect(store.full().peers.map((p) => p.name)).toEqual(['b']);
  });
});
