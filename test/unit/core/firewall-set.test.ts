import { describe, expect, test } from 'vitest';
import { diffSet, parseIpsetSave, renderSetRestore, type PeerSet } from '../../../src/core/firewall-plan.js';
import { FakeFirewall } from '../../fakes/firewall.js';

const SET = 'wgo-peers-wgo0';

describe('parseIpsetSave', () => {
  test('reads entries and their comments, ignoring the create line and other sets', () => {
    const text = [
      `create ${SET} hash:ip family inet hashsize 1024 maxelem 1048576 comment`,
      `add ${SET} 10.66.0.2 comment "alice"`,
      `add ${SET} 10.66.0.3 comment "bob.laptop"`,
      `add ${SET} 10.66.0.9`,
      'create other hash:ip family inet hashsize 1024 maxelem 65536',
      'add other 10.66.0.4 comment "mallory"',
      `add ${SET}x 10.66.0.5 comment "prefix-of-name"`,
      '',
    ].join('\n');
    expect([...parseIpsetSave(text, SET)]).toEqual([
      ['10.66.0.2', 'alice'],
      ['10.66.0.3', 'bob.laptop'],
      ['10.66.0.9', ''],
    ]);
  });

  test('a missing set (empty output) has no entries', () => {
    expect(parseIpsetSave('', SET).size).toBe(0);
  });
});

describe('diffSet', () => {
  const set = (...entries: [string, string][]): PeerSet => new Map(entries);

  test.each<[string, PeerSet, PeerSet, ReturnType<typeof diffSet>]>([
    ['equal sets', set(['10.66.0.2', 'a']), set(['10.66.0.2', 'a']), { add: [], del: [] }],
    ['new peer', set(['10.66.0.2', 'a'], ['10.66.0.3', 'b']), set(['10.66.0.2', 'a']), { add: [['10.66.0.3', 'b']], del: [] }],
    ['removed peer', set(['10.66.0.2', 'a']), set(['10.66.0.2', 'a'], ['10.66.0.3', 'b']), { add: [], del: ['10.66.0.3'] }],
    ['renamed comment is re-added', set(['10.66.0.2', 'a2']), set(['10.66.0.2', 'a']), { add: [['10.66.0.2', 'a2']], del: [] }],
    ['all at once', set(['10.66.0.4', 'd']), set(['10.66.0.2', 'a'], ['10.66.0.3', 'b']), { add: [['10.66.0.4', 'd']], del: ['10.66.0.2', '10.66.0.3'] }],
  ])('%s', (_what, want, have, diff) => {
    expect(diffSet(want, have)).toEqual(diff);
  });
});

describe('renderSetRestore', () => {
  test('creates the set if missing, then adds, then deletes', () => {
    expect(renderSetRestore(SET, { add: [['10.66.0.4', 'dave'], ['10.66.0.5', 'eve']], del: ['10.66.0.2'] })).toBe(
      `create ${SET} hash:ip family inet hashsize 1024 maxelem 1048576 comment -exist
add ${SET} 10.66.0.4 comment "dave" -exist
add ${SET} 10.66.0.5 comment "eve" -exist
del ${SET} 10.66.0.2 -exist
`,
    );
  });

  test('an empty diff only ensures the set exists', () => {
    expect(renderSetRestore(SET, { add: [], del: [] })).toBe(
      `create ${SET} hash:ip family inet hashsize 1024 maxelem 1048576 comment -exist\n`,
    );
  });

  test('round trip through ipset: save → diff → restore reaches the wanted set and is idempotent', async () => {
    const fw = new FakeFirewall();
    await fw.restoreSet(renderSetRestore(SET, { add: [['10.66.0.2', 'a'], ['10.66.0.3', 'b']], del: [] }));
    const want: PeerSet = new Map([['10.66.0.3', 'b'], ['10.66.0.4', 'c']]);
    const diff = diffSet(want, parseIpsetSave(await fw.saveSet(SET), SET));
    await fw.restoreSet(renderSetRestore(SET, diff));
    expect(parseIpsetSave(await fw.saveSet(SET), SET)).toEqual(want);
    expect(diffSet(want, parseIpsetSave(await fw.saveSet(SET), SET))).toEqual({ add: [], del: [] });
  });
});
