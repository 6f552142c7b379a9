import { describe, expect, test } from 'vitest';
import { DEFAULT_POLICY } from '../../../src/core/policy.js';
import { parseWire, peerSetSchema, pushAnswerSchema, usageSchema } from '../../../src/core/wire.js';
import { isWgoError } from '../../../src/errors.js';

const { apiTokens: _gatewayOnly, ...requestPolicy } = DEFAULT_POLICY;
const peer = { name: 'alice', address: '10.66.0.2', serial: 'ab12', expiresAt: null, policy: requestPolicy, tokenSha256: 'cd'.repeat(32) };
const set = { version: '9.abc', peers: [peer], logPrompts: false, tokensToday: { alice: 3 }, day: '2026-12-04', recordFields: ['auth', 'estimatedTokens'] };

/** The error parseWire throws for `value`, or null when it parses. */
function refusal(schema: Parameters<typeof parseWire>[0], value: unknown): string | null {
  try {
    parseWire(schema, typeof value === 'string' ? value : JSON.stringify(value), 'peer set');
    return null;
  } catch (e) {
    expect(isWgoError(e, 'BAD_INPUT')).toBe(true);
    return (e as Error).message;
  }
}

describe('the peer set on the wire', () => {
  test('a set from this gateway parses to itself', () => {
    expect(parseWire(peerSetSchema, JSON.stringify(set), 'peer set')).toEqual(set);
  });

  test('a set from an older gateway (no tokenSha256, no recordFields) parses; a newer field the guard does not know is dropped', () => {
    const { tokenSha256: _t, ...oldPeer } = peer;
    const { recordFields: _r, ...old } = set;
    const got = parseWire(peerSetSchema, JSON.stringify({ ...old, peers: [oldPeer], comesLater: 1 }), 'peer set');
    expect(got).toEqual({ ...old, peers: [oldPeer] });
    // recordFields absent: the guard sends only the original record fields (recordForGateway).
    expect(got.recordFields).toBeUndefined();
  });

  test('apiTokens in a policy is the gateway\'s: never kept; missing policy fields take the defaults', () => {
    const got = parseWire(peerSetSchema, JSON.stringify({ ...set, peers: [{ ...peer, policy: { apiTokens: true, maxStreams: 1 } }] }), 'peer set');
    expect(got.peers[0]!.policy).toEqual({ ...requestPolicy, maxStreams: 1 });
  });

  test.each<[string, unknown, string]>([
    ['a serial in capitals', { ...set, peers: [{ ...peer, serial: 'AB12' }] }, 'peers.0.serial: '],
    ['a token hash too short', { ...set, peers: [{ ...peer, tokenSha256: 'abc' }] }, 'peers.0.tokenSha256: '],
    ['an unknown policy field', { ...set, peers: [{ ...peer, policy: { ...requestPolicy, teleport: true } }] }, 'peers.0.policy: '],
    ['a model pattern the grammar refuses', { ...set, peers: [{ ...peer, policy: { ...requestPolicy, models: ['a b'] } }] }, 'peers.0.policy.models.0: '],
    ['negative tokens', { ...set, tokensToday: { alice: -1 } }, 'tokensToday.alice: '],
    ['no version', { ...set, version: undefined }, 'version: '],
    ['not an object', [], '(top level): '],
  ])('%s is refused with one line naming the field', (_what, value, field) => {
    const message = refusal(peerSetSchema, value)!;
    expect(message).toMatch(/^malformed peer set: /);
    expect(message).toContain(field);
    expect(message).not.toContain('\n');
  });

  test('text that is not JSON is refused as such', () => {
    expect(refusal(peerSetSchema, '{"version":')).toMatch(/^the peer set is not JSON: /);
  });
});

describe('usage figures and push answers on the wire', () => {
  test('usage: upTo is a sequence number, never missing', () => {
    expect(parseWire(usageSchema, JSON.stringify({ day: '2026-12-04', tokensToday: { alice: 5 }, upTo: 7 }), 'usage')).toEqual({ day: '2026-12-04', tokensToday: { alice: 5 }, upTo: 7 });
    expect(refusal(usageSchema, { day: '2026-12-04', tokensToday: {}, upTo: null })).toContain('upTo: ');
  });

  test('a push answer from a gateway before rejected and usage parses; with them it keeps them', () => {
    expect(parseWire(pushAnswerSchema, JSON.stringify({ received: 2, stored: 2, upTo: 2 }), 'push answer')).toEqual({ received: 2, stored: 2, upTo: 2 });
    const now = { received: 2, stored: 1, upTo: 2, rejected: [{ seq: 2, error: 'auth: Invalid option' }], usage: { day: '2026-12-04', tokensToday: {}, upTo: 2 } };
    expect(parseWire(pushAnswerSchema, JSON.stringify(now), 'push answer')).toEqual(now);
  });
});
