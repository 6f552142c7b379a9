import { describe, expect, test } from 'vitest';
import { DENIAL_SLOT_BYTES, decodeDenial, emptySlot, encodeDenial, withoutDenied, type Denial } from '../../../src/core/denials.js';

const D: Denial = { action: 'revoke', peerId: 7, name: 'bob', publicKey: 'A'.repeat(43) + '=', address: '10.66.0.3', actor: 'root', source: 'cli', at: 1_700_000_000_000 };

describe('denial slots', () => {
  test('a denial fills exactly one slot and reads back the same', () => {
    const slot = encodeDenial(D);
    expect(slot).toHaveLength(DENIAL_SLOT_BYTES);
    expect(slot.at(-1)).toBe(0x0a);
    expect(decodeDenial(slot)).toEqual(D);
  });

  test('an empty slot, a torn one and a foreign one hold nothing', () => {
    expect(emptySlot()).toHaveLength(DENIAL_SLOT_BYTES);
    expect(decodeDenial(emptySlot())).toBeNull();
    const torn = encodeDenial(D);
    torn[40] = torn[40]! ^ 1; // one bit of the JSON: the digest no longer matches
    expect(decodeDenial(torn)).toBeNull();
    const half = Buffer.concat([encodeDenial(D).subarray(0, 100), emptySlot().subarray(100)]);
    expect(decodeDenial(half)).toBeNull();
    expect(decodeDenial(Buffer.from('0123456789abcdef {"action":"enable","peerId":1}'.padEnd(DENIAL_SLOT_BYTES)))).toBeNull();
  });

  test('long actor and source are cut so that the slot always fits', () => {
    const d = decodeDenial(encodeDenial({ ...D, actor: 'é'.repeat(500), source: 's'.repeat(500) }))!;
    expect(d.actor).toBe('é'.repeat(96));
    expect(d.source).toBe('s'.repeat(96));
  });

  test('withoutDenied leaves the named peers out of a desired state, and nothing else', () => {
    const state = { iface: 'wgo0', peers: [{ id: 1 }, { id: 7 }, { id: 9 }] };
    expect(withoutDenied(state, new Set([7]))).toEqual({ iface: 'wgo0', peers: [{ id: 1 }, { id: 9 }] });
    expect(withoutDenied(state, new Set())).toBe(state);
  });
});
