/**
 * Revoke and disable on a full disk (issue 12, item 3): the peer service on a
 * real SQLite that cannot grow (full-db.ts), a real PSK directory and a real
 * denial journal file. Add and rotate fail with DISK_FULL and leave nothing;
 * revoke and disable keep the denial in the pre-allocated journal (the
 * daemon then takes the peer out of the kernel) and are saved once there is room.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { DENIAL_SLOTS, DENIAL_SLOT_BYTES } from '../../../src/core/denials.js';
import { denialJournal, saveDenials, type DenialJournal } from '../../../src/gateway/denials.js';
import { peerService } from '../../../src/gateway/peer-service.js';
import { isWgoError } from '../../../src/errors.js';
import { testCaStore } from '../../support/ca.js';
import { fillDatabase } from '../../support/full-db.js';
import { T0, WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';

let env: PeerEnv;
let journal: DenialJournal;
const denial = (peerId: number, action: 'revoke' | 'disable' = 'revoke') => ({
  action, peerId, name: `p${peerId}`, publicKey: 'A'.repeat(43) + '=', address: '10.66.0.9', actor: 'root', source: 'cli', at: T0,
});

beforeEach(() => {
  env = peerEnv();
  journal = denialJournal(join(env.dir, 'denials'));
  expect(journal.ensure()).toBe(true);
  env.svc = peerService({ db: env.db, config: env.config, serverPublicKey: env.server.publicKey, psk: env.psk, ca: testCaStore(), denials: journal, clock: () => env.now });
});
afterEach(() => env.close());

describe('the denial journal', () => {
  test('a disable turned into a revoke while the disable is being saved stays pending (the save does not clear it)', () => {
    journal.add(denial(1, 'disable'));
    const saved: string[] = [];
    const left = saveDenials(journal, (d) => {
      saved.push(d.action);
      if (d.action === 'disable') journal.add(denial(1, 'revoke')); // the CLI, at that moment
    });
    expect(saved).toEqual(['disable']);
    expect(left).toBe(0);
    expect(journal.pending().map((p) => [p.denial.peerId, p.denial.action])).toEqual([[1, 'revoke']]);
  });


  test('is created once at its full size and never grows', () => {
    const size = DENIAL_SLOTS * DENIAL_SLOT_BYTES;
    expect(statSync(journal.path).size).toBe(size);
    for (let i = 1; i <= 5; i++) journal.add(denial(i));
    expect(statSync(journal.path).size).toBe(size);
    expect(journal.pending().map((p) => p.denial.peerId)).toEqual([1, 2, 3, 4, 5]);
    expect(journal.deniedIds()).toEqual(new Set([1, 2, 3, 4, 5]));
    journal.clear(journal.pending()[0]!.slot);
    expect(journal.deniedIds()).toEqual(new Set([2, 3, 4, 5]));
    writeFileSync(journal.path, readFileSync(journal.path)); // rewritten as it is: still the same
    expect(denialJournal(journal.path).deniedIds()).toEqual(new Set([2, 3, 4, 5]));
  });

  test("one slot per peer; a revoke wins over a disable; no free slot is DISK_FULL", () => {
    journal.add(denial(3, 'disable'));
    journal.add(denial(3, 'revoke'));
    journal.add(denial(3, 'disable'));
    expect(journal.pending().map((p) => [p.denial.peerId, p.denial.action])).toEqual([[3, 'revoke']]);
    for (let i = 100; i < 100 + DENIAL_SLOTS - 1; i++) journal.add(denial(i));
    expect(() => journal.add(denial(999))).toThrow(expect.objectContaining({ code: 'DISK_FULL' }));
  });

  test('without its file nothing is pending, and nothing can be kept', () => {
    const none = denialJournal(join(env.dir, 'nope', 'denials'));
    expect(none.pending()).toEqual([]);
    expect(() => none.add(denial(1))).toThrow(expect.objectContaining({ code: 'DISK_FULL' }));
  });
});

describe('the peer service on a full disk', () => {
  test('add fails with DISK_FULL and leaves no row, no key file, no audit record', () => {
    env.svc.add({ name: 'alice' }, WHO);
    const [rows, files] = [env.rows(), env.pskFiles()];
    const full = fillDatabase(env.db);
    const audit = env.audit().length;
    let err: unknown;
    try {
      env.svc.add({ name: 'carol' }, WHO);
    } catch (e) {
      err = e;
    }
    expect(isWgoError(err, 'DISK_FULL')).toBe(true);
    expect((err as Error).message).toMatch(/^the disk is full \(database or disk is full\): nothing was changed; free some space and try again$/);
    expect(env.rows()).toEqual(rows);
    expect(env.pskFiles()).toEqual(files);
    expect(env.audit()).toHaveLength(audit);
    full.room();
    expect(env.svc.add({ name: 'carol' }, WHO).peer.name).toBe('carol');
  });

  test('rotate fails the same way: the old keys stay', () => {
    const alice = env.svc.add({ name: 'alice' }, WHO).peer;
    const files = env.pskFiles();
    fillDatabase(env.db);
    expect(() => env.svc.rotate('alice', {}, WHO)).toThrow(expect.objectContaining({ code: 'DISK_FULL' }));
    expect(env.svc.show('alice').publicKey).toBe(alice.publicKey);
    expect(env.pskFiles()).toEqual(files);
  });

  test('revoke and disable are kept in the journal (saved: false) and saved, under who asked, once there is room', () => {
    const bob = env.svc.add({ name: 'bob' }, WHO).peer;
    const dave = env.svc.add({ name: 'dave' }, WHO).peer;
    const full = fillDatabase(env.db);
    env.now += 1000;
    expect(env.svc.revoke('bob', { actor: 'alice-admin', source: '192.0.2.5' })).toMatchObject({ peer: { name: 'bob', status: 'revoked' }, changed: true, saved: false });
    expect(env.svc.disable('dave', WHO)).toMatchObject({ peer: { name: 'dave', status: 'disabled' }, saved: false });
    expect(journal.deniedIds()).toEqual(new Set([bob.id, dave.id]));
    expect(env.svc.show('bob').status).toBe('active'); // the database could not say otherwise yet
    const save = () => saveDenials(journal, (d) => env.svc.saveDenial(d));
    expect(save()).toBe(2);
    full.room();
    env.now += 5000;
    expect(save()).toBe(0);
    expect(journal.pending()).toEqual([]);
    expect([env.svc.show('bob').status, env.svc.show('dave').status]).toEqual(['revoked', 'disabled']);
    const late = env.audit().filter((a) => a.action === 'peer.revoke' || a.action === 'peer.disable');
    expect(late.map((a) => [a.action, a.actor, a.source])).toEqual([
      ['peer.revoke', 'alice-admin', `192.0.2.5 (saved late: the disk was full at ${new Date(T0 + 1000).toISOString()})`],
      ['peer.disable', 'root', `cli (saved late: the disk was full at ${new Date(T0 + 1000).toISOString()})`],
    ]);
    expect(env.pskFiles()).toHaveLength(1); // bob's key file went with the saved revoke
  });

  test('a denial of keys rotated away since, or of a peer revoked since, saves nothing', () => {
    const bob = env.svc.add({ name: 'bob' }, WHO).peer;
    journal.add({ ...denial(bob.id, 'disable'), publicKey: 'B'.repeat(43) + '=' });
    saveDenials(journal, (d) => env.svc.saveDenial(d));
    expect(env.svc.show('bob').status).toBe('active');
    expect(journal.pending()).toEqual([]);
  });

  test('with no journal to keep it in, a revoke on a full disk fails and says access was not removed', () => {
    env.svc.add({ name: 'bob' }, WHO);
    const plain = peerService({ db: env.db, config: env.config, serverPublicKey: env.server.publicKey, psk: env.psk, ca: testCaStore(), clock: () => env.now });
    fillDatabase(env.db);
    expect(() => plain.revoke('bob', WHO)).toThrow(expect.objectContaining({ code: 'DISK_FULL' }));
    const full = denialJournal(join(env.dir, 'denials'));
    for (let i = 100; i < 100 + DENIAL_SLOTS; i++) full.add(denial(i));
    expect(() => env.svc.revoke('bob', WHO)).toThrow(/could not be kept aside either .*nothing was changed, the peer still has access/);
  });
});
