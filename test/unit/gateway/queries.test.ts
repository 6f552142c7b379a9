import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { RequestRecord } from '../../../src/core/request-record.js';
import type { LinkState } from '../../../src/core/monitor.js';
import { auditRepository } from '../../../src/db/audit.js';
import { connectionRepository } from '../../../src/db/connections.js';
import { requestRepository } from '../../../src/db/requests.js';
import { ensureClosedFirewall } from '../../../src/gateway/firewall.js';
import { ensureIngressBarrier } from '../../../src/gateway/ingress.js';
import { guardUrl, parseLogFilters, queryService, type QueryService } from '../../../src/gateway/queries.js';
import { FakeFirewall } from '../../fakes/firewall.js';
import { FakeIngress } from '../../fakes/ingress.js';
import { FakeWireguard } from '../../fakes/wireguard.js';
import { expectWgoError } from '../../support/errors.js';
import { DAY, peerEnv, T0, WHO, type PeerEnv } from '../../support/peer-env.js';

const HOUR = 3_600_000;
const cliLabel = (f: string): string => `--${f}`;

function rec(seq: number, o: Partial<RequestRecord>): RequestRecord {
  return {
    seq, at: T0, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
    model: 'llama3.2:latest', promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 1, bytesOut: 1,
    promptTokens: 3, evalTokens: 4, ttfbMs: 1, durationMs: 2, refusal: null, ...o,
  };
}
const link = (publicKey: string, o: Partial<LinkState> = {}): LinkState => ({
  publicKey, endpoint: '203.0.113.5:5000', latestHandshake: T0 / 1000 - 10, connected: true, rxSeen: 0, txSeen: 0,
  rxPending: 0, txPending: 0, rxTotal: 100, txTotal: 200, trafficAt: T0, ...o,
});

describe('parseLogFilters: one schema for the CLI and the web pages', () => {
  test('normalises the model as the guard records it, and turns text into numbers', () => {
    expect(parseLogFilters('requests', { model: 'LLAMA3.2', status: '429', since: '90m', limit: '5', before: '12' })).toEqual({
      kind: 'requests', model: 'llama3.2:latest', status: 429, since: 90 * 60_000, limit: 5, before: 12,
    });
    expect(parseLogFilters('audit', {})).toEqual({ kind: 'audit', limit: 1000 });
    expect(parseLogFilters('connections', { peer: 'alice', since: undefined, after: 3 })).toEqual({ kind: 'connections', peer: 'alice', after: 3, limit: 1000 });
  });

  test.each([
    ['requests', { status: '1000' }, '--status must be an HTTP status code such as 200 or 429'],
    ['requests', { status: ' 200' }, '--status must be an HTTP status code such as 200 or 429'],
    ['requests', { status: '' }, '--status must be an HTTP status code such as 200 or 429'],
    ['requests', { since: 'yesterday' }, '--since "yesterday" is not a duration like 30d, 12h, 1h30m or 90s'],
    ['requests', { limit: '0' }, '--limit must be a whole number from 1 to 100000'],
    ['requests', { limit: '100001' }, '--limit must be a whole number from 1 to 100000'],
    ['requests', { limit: '1e3' }, '--limit must be a whole number from 1 to 100000'],
    ['audit', { before: '-1' }, '--before must be a row id (a whole number from 1)'],
    ['connections', { model: 'llama3.2' }, '--model applies to request logs only'],
    ['audit', { status: '200' }, '--status applies to request logs only'],
    ['audit', { peer: 'alice' }, '--peer applies to request and connection logs only'],
    ['requests', { match: 'peer.' }, '--match applies to the audit log only'],
    ['requests', { colour: 'red' }, '--colour is not a filter of the requests log'],
    ['requests', { model: 'x'.repeat(201) }, '--model is longer than 200 characters'],
    ['sessions', {}, 'unknown log "sessions": use connections, requests or audit'],
  ] as const)('%s %j is BAD_INPUT', (kind, input, message) => {
    expect(expectWgoError(() => parseLogFilters(kind, input, cliLabel), 'BAD_INPUT').message).toBe(message);
  });

  test('the web names the field without dashes', () => {
    expect(expectWgoError(() => parseLogFilters('requests', { status: 'abc' }), 'BAD_INPUT').message).toBe('status must be an HTTP status code such as 200 or 429');
  });
});

describe('queryService', () => {
  let env: PeerEnv;
  let q: QueryService;
  beforeEach(() => {
    env = peerEnv();
    q = queryService({ db: env.db, config: env.config, clock: () => env.now });
  });
  afterEach(() => env.close());

  test('the guard URL is the GPU host and port peers are let through to', () => {
    expect(q.guardUrl()).toBe('https://192.168.1.10:11434');
    expect(guardUrl(env.config)).toBe(q.guardUrl());
  });

  test('peers: link data only for the current key (not after a rotation), traffic kept, usage of today (UTC)', () => {
    const alice = env.svc.add({ name: 'alice' }, WHO);
    const bob = env.svc.add({ name: 'bob' }, WHO);
    const a = env.svc.show('alice');
    connectionRepository(env.db).saveTick(env.now, [
      { peerId: a.id, state: link(a.publicKey), events: [] },
      { peerId: env.svc.show('bob').id, state: link(bob.peer.publicKey, { connected: false, endpoint: '198.51.100.9:7' }), events: [] },
    ]);
    const midnight = Math.floor(T0 / DAY) * DAY;
    requestRepository(env.db).insertBatch('g', [
      rec(1, { at: midnight - 1, certSerial: alice.certificate.serial }),
      rec(2, { at: midnight, certSerial: alice.certificate.serial }),
      rec(3, { at: T0, certSerial: alice.certificate.serial, estimatedTokens: 50 }),
    ]);
    const before = q.peers();
    expect(before.map((p) => p.name)).toEqual(['alice', 'bob']);
    expect(before[0]).toMatchObject({ endpoint: '203.0.113.5:5000', latestHandshake: new Date(T0 - 10_000).toISOString(), connected: true, rxBytes: 100, txBytes: 200, requestsToday: 2, tokensToday: 57 });
    expect(before[1]).toMatchObject({ endpoint: '198.51.100.9:7', connected: false, requestsToday: 0, tokensToday: 0 });
    env.svc.rotate('alice', {}, WHO);
    const [after] = q.peers();
    expect(after).toMatchObject({ endpoint: null, latestHandshake: null, connected: false, rxBytes: 100, txBytes: 200 });
    expect(q.peer('alice').peer).toMatchObject({ endpoint: null, latestHandshake: null, connected: false });
    env.svc.revoke('bob', WHO);
    expect(q.peers().map((p) => p.name)).toEqual(['alice']);
    expect(q.peers({ includeRevoked: true }).map((p) => `${p.name} ${p.status}`)).toEqual(['alice active', 'bob revoked']);
  });

  test('one peer: NOT_FOUND when unknown; its timeline merges connection events and requests, newest first', () => {
    const alice = env.svc.add({ name: 'alice' }, WHO);
    const id = env.svc.show('alice').id;
    connectionRepository(env.db).saveTick(T0 - 3000, [{ peerId: id, state: link(alice.peer.publicKey), events: [{ kind: 'handshake', endpoint: '203.0.113.5:5000', oldEndpoint: null, rxBytes: null, txBytes: null }] }]);
    requestRepository(env.db).insertBatch('g', [rec(1, { at: T0 - 2000, certSerial: alice.certificate.serial }), rec(2, { at: T0 - 4000, certSerial: alice.certificate.serial })]);
    const d = q.peer('alice');
    expect(d.timeline.map((e) => `${e.kind} ${T0 - e.at}`)).toEqual(['request 2000', 'connection 3000', 'request 4000']);
    expect(d.apiToken).toMatchObject({ name: 'alice', state: 'none' });
    expect(expectWgoError(() => q.peer('nobody'), 'NOT_FOUND').message).toBe('no peer named "nobody"');
  });

  test('logs: filters and paging; an unknown peer is NOT_FOUND, not an empty log', () => {
    const alice = env.svc.add({ name: 'alice' }, WHO).certificate.serial;
    const bob = env.svc.add({ name: 'bob' }, WHO).certificate.serial;
    requestRepository(env.db).insertBatch('g', [
      rec(1, { at: T0 - 30 * HOUR, certSerial: alice }),
      rec(2, { at: T0 - 3 * HOUR, certSerial: alice }),
      rec(3, { at: T0 - 2 * HOUR, certSerial: bob, peer: 'bob', model: 'qwen2.5:7b' }),
      rec(4, { at: T0 - HOUR, certSerial: alice, status: 429 }),
    ]);
    const seqs = (input: Record<string, unknown>): number[] => q.log(parseLogFilters('requests', input)).map((r) => r.guardSeq);
    expect(seqs({})).toEqual([1, 2, 3, 4]);
    expect(seqs({ since: '24h' })).toEqual([2, 3, 4]);
    expect(seqs({ model: 'llama3.2' })).toEqual([1, 2, 4]);
    expect(seqs({ peer: 'bob' })).toEqual([3]);
    expect(seqs({ status: '429', peer: 'alice' })).toEqual([4]);
    // Newest first page, then back with before; forward with after (oldest first).
    const page = q.log(parseLogFilters('requests', { limit: 2 }));
    expect(page.map((r) => r.guardSeq)).toEqual([3, 4]);
    expect(seqs({ limit: 2, before: page[0]!.id })).toEqual([1, 2]);
    expect(seqs({ limit: 2, after: page[0]!.id - 2 })).toEqual([2, 3]);
    expect(expectWgoError(() => q.log(parseLogFilters('requests', { peer: 'nobody' })), 'NOT_FOUND').message).toBe('no peer named "nobody"');
    expect(expectWgoError(() => q.log(parseLogFilters('connections', { peer: 'nobody' })), 'NOT_FOUND').code).toBe('NOT_FOUND');
    auditRepository(env.db).record({ actor: 'root', source: 'cli', action: 'peer.revoke', target: 'bob' }, T0);
    expect(q.log(parseLogFilters('audit', { match: 'peer.rev' })).map((r) => r.target)).toEqual(['bob']);
    expect(q.log(parseLogFilters('audit', { match: 'bob' })).map((r) => r.action)).toEqual(['peer.add', 'peer.revoke']);
  });

  test('status reads the kernel: interface absent, down, up; firewall and tc barrier; the peer set against the database', async () => {
    env.svc.add({ name: 'alice' }, WHO);
    const wg = new FakeWireguard();
    const fw = new FakeFirewall();
    const tc = new FakeIngress((i) => wg.ifaces.has(i));
    const daemon = { running: false };
    const status = () => q.status({ kernel: { wg, fw, tc }, daemon: async () => daemon });
    const absent = await status();
    expect(absent.interface).toEqual({ name: 'wgo0', exists: false, up: false, addresses: [], peers: 0 });
    expect(absent.firewall).toEqual({ ipv4InSync: false, ipv6InSync: false, barrierInSync: null, setEntries: 0, setMatchesDatabase: false });
    expect(absent.daemon).toBe(daemon);
    expect(absent.peers).toEqual({ active: 1 });
    const spec = { iface: 'wgo0', ollamaHost: '192.168.1.10', ollamaPort: 11434 };
    await ensureClosedFirewall(fw, spec);
    await wg.create('wgo0', 'auto');
    await wg.addAddress('wgo0', '10.66.0.1/24');
    const down = await status();
    expect(down.interface).toMatchObject({ exists: true, up: false, addresses: ['10.66.0.1/24'] });
    expect(down.firewall).toMatchObject({ ipv4InSync: true, ipv6InSync: true, barrierInSync: false, setMatchesDatabase: false });
    await wg.setUp('wgo0', true);
    await ensureIngressBarrier(tc, spec);
    await fw.restoreSet(`add wgo-peers-wgo0 ${env.svc.show('alice').address} -exist\n`);
    const up = await status();
    expect(up.interface).toMatchObject({ exists: true, up: true });
    expect(up.firewall).toEqual({ ipv4InSync: true, ipv6InSync: true, barrierInSync: true, setEntries: 1, setMatchesDatabase: true });
  });

  test('guards and certificates that run out within a window', () => {
    env.svc.add({ name: 'alice', expiresInMs: 10 * DAY }, WHO);
    env.svc.add({ name: 'bob' }, WHO);
    expect(q.expiringCertificates(30 * DAY).map((c) => c.name)).toEqual(['alice']);
    expect(q.expiringCertificates(5 * DAY)).toEqual([]);
    expect(q.guards()).toEqual([]);
  });
});
