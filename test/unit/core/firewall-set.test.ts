import { describe, expect, test } from 'vitest';
import { MAX_SET_TIMEOUT, diffSet, parseIpsetSave, renderSetRestore, setEntryFor, type PeerSet, type SetEntry } from '../../../src/core/firewall-plan.js';
import { FakeFirewall } from '../../fakes/firewall.js';

const SET = 'wgo-peers-wgo0';
const e = (name: string, timeout: number | null = null): SetEntry => ({ name, timeout });

describe('parseIpsetSave', () => {
  test('reads entries and their comments, ignoring the create line and other sets', () => {
    const text = [
      `create ${SET} hash:ip family inet hashsize 1024 maxelem 1048576 comment`,
      `add ${SET} 10.66.0.2 timeout 0 comment "alice"`,
      `add ${SET} 10.66.0.3 timeout 3600 comment "bob.laptop"`,
      `add ${SET} 10.66.0.9`,
      'create other hash:ip family inet hashsize 1024 maxelem 65536',
      'add other 10.66.0.4 comment "mallory"',
      `add ${SET}x 10.66.0.5 comment "prefix-of-name"`,
      '',
    ].join('\n');
    expect([...parseIpsetSave(text, SET)]).toEqual([
      ['10.66.0.2', { name: 'alice', timeout: null }],
      ['10.66.0.3', { name: 'bob.laptop', timeout: 3600 }],
      ['10.66.0.9', { name: '', timeout: null }],
    ]);
  });

  test('a missing set (empty output) has no entries', () => {
    expect(parseIpsetSave('', SET).size).toBe(0);
  });
});

describe('diffSet', () => {
  const set = (...entries: [string, string][]): PeerSet => new Map(entries.map(([ip, name]) => [ip, { name, timeout: null }]));

  test.each<[string, PeerSet, PeerSet, ReturnType<typeof diffSet>]>([
    ['equal sets', set(['10.66.0.2', 'a']), set(['10.66.0.2', 'a']), { add: [], del: [] }],
    ['new peer', set(['10.66.0.2', 'a'], ['10.66.0.3', 'b']), set(['10.66.0.2', 'a']), { add: [['10.66.0.3', e('b')]], del: [] }],
    ['removed peer', set(['10.66.0.2', 'a']), set(['10.66.0.2', 'a'], ['10.66.0.3', 'b']), { add: [], del: ['10.66.0.3'] }],
    ['renamed comment is re-added', set(['10.66.0.2', 'a2']), set(['10.66.0.2', 'a']), { add: [['10.66.0.2', e('a2')]], del: [] }],
    ['all at once', set(['10.66.0.4', 'd']), set(['10.66.0.2', 'a'], ['10.66.0.3', 'b']), { add: [['10.66.0.4', e('d')]], del: ['10.66.0.2', '10.66.0.3'] }],
  ])('%s', (_what, want, have, diff) => {
    expect(diffSet(want, have)).toEqual(diff);
  });

  test.each<[string, SetEntry, SetEntry, boolean]>([
    ['same timeout, a few seconds later', e('a', 600), e('a', 597), false],
    ['an expiry was extended', e('a', 3600), e('a', 597), true],
    ['an expiry was added', e('a', 600), e('a'), true],
    ['an expiry was removed', e('a'), e('a', 600), true],
    ['a capped long expiry, an hour into it', e('a', MAX_SET_TIMEOUT), e('a', MAX_SET_TIMEOUT - 3600), false],
    ['a capped long expiry, a day into it', e('a', MAX_SET_TIMEOUT), e('a', MAX_SET_TIMEOUT - 86400), true],
  ])('timeouts: %s → re-add %s', (_what, want, have, readd) => {
    const d = diffSet(new Map([['10.66.0.2', want]]), new Map([['10.66.0.2', have]]));
    expect(d.add.length > 0).toBe(readd);
  });
});

describe('setEntryFor', () => {
  test('seconds left, rounded up, at least 1, at most what ipset accepts; none without expiry', () => {
    expect(setEntryFor('a', null, 1000)).toEqual({ name: 'a', timeout: null });
    expect(setEntryFor('a', 61_500, 1000)).toEqual({ name: 'a', timeout: 61 });
    expect(setEntryFor('a', 500, 1000)).toEqual({ name: 'a', timeout: 1 });
    expect(setEntryFor('a', 1000 + 40 * 86_400_000, 1000)).toEqual({ name: 'a', timeout: MAX_SET_TIMEOUT });
  });
});

describe('renderSetRestore', () => {
  test('creates the set if missing, then adds, then deletes', () => {
    expect(renderSetRestore(SET, { add: [['10.66.0.4', e('dave')], ['10.66.0.5', e('eve', 90)]], del: ['10.66.0.2'] })).toBe(
      `create ${SET} hash:ip family inet hashsize 1024 maxelem 1048576 timeout 0 comment -exist
add ${SET} 10.66.0.4 timeout 0 comment "dave" -exist
add ${SET} 10.66.0.5 timeout 90 comment "eve" -exist
del ${SET} 10.66.0.2 -exist
`,
    );
  });

  test('an empty diff only ensures the set exists', () => {
    expect(renderSetRestore(SET, { add: [], del: [] })).toBe(
      `create ${SET} hash:ip family inet hashsize 1024 maxelem 1048576 timeout 0 comment -exist\n`,
    );
  });

  test('round trip through ipset: save → diff → restore reaches the wanted set and is idempotent', async () => {
    const fw = new FakeFirewall();
    await fw.restoreSet(renderSetRestore(SET, { add: [['10.66.0.2', e('a')], ['10.66.0.3', e('b')]], del: [] }));
    const want: PeerSet = new Map([['10.66.0.3', e('b')], ['10.66.0.4', e('c', 300)]]);
    const diff = diffSet(want, parseIpsetSave(await fw.saveSet(SET), SET));
    await fw.restoreSet(renderSetRestore(SET, diff));
    expect(parseIpsetSave(await fw.saveSet(SET), SET)).toEqual(want);
    expect(diffSet(want, parseIpsetSave(await fw.saveSet(SET), SET))).toEqual({ add: [], del: [] });
    // A second pass changes nothing in the set: only the create -exist line is fed again.
    const again = renderSetRestore(SET, diffSet(want, parseIpsetSave(await fw.saveSet(SET), SET)));
    expect(again.split('\n').filter((l) => /^(add|del) /.test(l))).toEqual([]);
    await fw.restoreSet(again);
    expect(parseIpsetSave(await fw.saveSet(SET), SET)).toEqual(want);
  });
});
