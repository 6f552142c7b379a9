import { describe, expect, test } from 'vitest';
import type { DesiredPeer } from '../../../src/core/desired.js';
import { isDeltaEmpty, planDelta } from '../../../src/core/delta.js';

const peer = (id: number, o: Partial<DesiredPeer> = {}): DesiredPeer => ({
  id, name: `p${id}`, publicKey: `key${id}`, presharedKey: `psk${id}`, presharedKeyFile: `/s/psk/${id}.psk`,
  address: `10.66.0.${id + 1}`, expiresAt: null, ...o,
});
const NOW = 1_000_000;

describe('planDelta', () => {
  test('a new peer: WireGuard and the set, nothing removed or cut', () => {
    const p = planDelta(new Map(), new Map([[1, peer(1)]]), NOW);
    expect(p).toEqual({ wgUpsert: [peer(1)], wgRemove: [], setAdd: [['10.66.0.2', { name: 'p1', timeout: null }]], setDel: [], cut: [] });
  });

  test('a peer that left (disabled, revoked, expired): out of both, flows cut', () => {
    const p = planDelta(new Map([[1, peer(1)]]), new Map([[1, null]]), NOW);
    expect(p).toEqual({ wgUpsert: [], wgRemove: ['key1'], setAdd: [], setDel: ['10.66.0.2'], cut: ['10.66.0.2'] });
  });

  test('a rotation: new key in, old key out, the address stays in the set, its flows are cut', () => {
    const p = planDelta(new Map([[1, peer(1)]]), new Map([[1, peer(1, { publicKey: 'new', presharedKey: 'psk-new' })]]), NOW);
    expect(p.wgUpsert.map((x) => x.publicKey)).toEqual(['new']);
    expect(p.wgRemove).toEqual(['key1']);
    expect(p.setAdd).toEqual([]);
    expect(p.setDel).toEqual([]);
    expect(p.cut).toEqual(['10.66.0.2']);
  });

  test('a new expiry re-adds the set entry with its timeout, and touches nothing else', () => {
    const p = planDelta(new Map([[1, peer(1)]]), new Map([[1, peer(1, { expiresAt: NOW + 90_000 })]]), NOW);
    expect(p).toEqual({ wgUpsert: [], wgRemove: [], setAdd: [['10.66.0.2', { name: 'p1', timeout: 90 }]], setDel: [], cut: [] });
  });

  test('an unchanged peer (e.g. a bookkeeping update) plans nothing', () => {
    expect(isDeltaEmpty(planDelta(new Map([[1, peer(1)]]), new Map([[1, peer(1)]]), NOW))).toBe(true);
    expect(isDeltaEmpty(planDelta(new Map(), new Map([[1, null]]), NOW))).toBe(true);
  });

  test('an address passed from a removed peer to a new one stays in the set but its old flows are cut', () => {
    const p = planDelta(new Map([[1, peer(1)]]), new Map([[1, null], [2, peer(2, { address: '10.66.0.2' })]]), NOW);
    expect(p.setDel).toEqual([]);
    expect(p.setAdd).toEqual([['10.66.0.2', { name: 'p2', timeout: null }]]);
    expect(p.cut).toEqual(['10.66.0.2']);
    expect(p.wgRemove).toEqual(['key1']);
  });
});
