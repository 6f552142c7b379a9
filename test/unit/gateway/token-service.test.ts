/**
 * Peer-bound API tokens at the gateway: the service on a real SQLite, the
 * migration's table and triggers, and what the peer set hands to guards.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { tokenHash } from '../../../src/core/api-token.js';
import { exitCodeOf } from '../../../src/core/exit-code.js';
import { tokenRepository } from '../../../src/db/tokens.js';
import { peerSetSource } from '../../../src/gateway/peer-set.js';
import { tokenService, type TokenService } from '../../../src/gateway/token-service.js';
import { expectWgoError } from '../../support/errors.js';
import { DAY, T0, WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';

let env: PeerEnv;
let tokens: TokenService;
afterEach(() => env?.close());

/** alice (tokens allowed), bob (not allowed), carol (allowed); optional config default. */
function setup(policy: Record<string, unknown> = {}): void {
  env = peerEnv({ policy });
  tokens = tokenService({ db: env.db, config: env.config, clock: () => env.now });
  for (const name of ['alice', 'bob', 'carol']) env.svc.add({ name }, WHO);
  env.svc.setPolicy('alice', { apiTokens: true }, WHO);
  env.svc.setPolicy('carol', { apiTokens: true }, WHO);
}
const stored = () => [...tokenRepository(env.db).byPeerId().values()];
const guardPeer = (name: string) => peerSetSource(env.db, env.config).load(env.now).peers.find((p) => p.name === name);
const tokenAudit = () => env.audit().filter((a) => a.action.startsWith('peer.token'));

describe('issue', () => {
  test('gives a 256-bit token once and stores only its SHA-256, bound to the current certificate', () => {
    setup();
    const t = tokens.issue('alice', WHO);
    expect(t).toEqual({ name: 'alice', token: expect.stringMatching(/^wgo_[A-Za-z0-9_-]{43}$/), createdAt: new Date(T0).toISOString(), replaced: false });
    const alice = env.rows().find((p) => p.name === 'alice')!;
    expect(stored()).toEqual([{ peerId: alice.id, tokenSha256: tokenHash(t.token), certSerial: alice.certSerial, createdAt: T0, createdBy: 'root' }]);
    // The plaintext is in no table, the audit log included.
    const image = env.db.serialize().toString('latin1');
    expect(image).not.toContain(t.token);
    expect(image).not.toContain(t.token.slice(4));
    expect(image).toContain(tokenHash(t.token));
    expect(tokenAudit()).toEqual([expect.objectContaining({ actor: 'root', action: 'peer.token.issue', target: 'alice', details: { replaced: false, certificate: alice.certSerial } })]);
    expect(tokens.status('alice')).toEqual({ name: 'alice', allowed: true, state: 'active', createdAt: new Date(T0).toISOString(), createdBy: 'root' });
  });

  test('issuing again replaces the old token (one per peer), audited', () => {
    setup();
    const first = tokens.issue('alice', WHO);
    const second = tokens.issue('alice', WHO);
    expect(second.token).not.toBe(first.token);
    expect(second.replaced).toBe(true);
    expect(stored().map((s) => s.tokenSha256)).toEqual([tokenHash(second.token)]);
    expect(tokenAudit().map((a) => a.details)).toEqual([expect.objectContaining({ replaced: false }), expect.objectContaining({ replaced: true })]);
  });

  test.each([
    ['a peer whose policy does not allow tokens', 'bob', 'BAD_INPUT', /policy of peer "bob" does not allow API tokens; run "set-policy bob --api-tokens on" first/],
    ['an unknown peer', 'nobody', 'NOT_FOUND', /no peer named "nobody"/],
    ['a bad name', 'Bad Name!', 'BAD_INPUT', /name/],
  ] as const)('refuses %s (exit 2), and nothing changes', (_what, name, code, message) => {
    setup();
    const before = env.db.serialize();
    const e = expectWgoError(() => tokens.issue(name, WHO), code);
    expect(e.message).toMatch(message);
    expect(exitCodeOf(e.kind)).toBe(2);
    expect(stored()).toEqual([]);
    expect(tokenAudit()).toEqual([]);
    expect(env.db.serialize().equals(before)).toBe(true);
  });

  test.each([
    ['disabled', () => env.svc.disable('alice', WHO)],
    ['revoked', () => env.svc.revoke('alice', WHO)],
    ['expired', () => { env.svc.enable('alice', { expiresInMs: DAY }, WHO); env.now = T0 + 2 * DAY; }],
  ])('refuses a %s peer (CONFLICT, exit 2)', (status, change) => {
    setup();
    change();
    const e = expectWgoError(() => tokens.issue('alice', WHO), 'CONFLICT');
    expect(e.message).toBe(`peer "alice" is ${status}; only an active peer can have an API token`);
    expect(exitCodeOf(e.kind)).toBe(2);
    expect(stored()).toEqual([]);
  });

  test('a config default of apiTokens: true allows every peer; a peer override off refuses', () => {
    setup({ apiTokens: true });
    expect(tokens.issue('bob', WHO).name).toBe('bob');
    env.svc.setPolicy('carol', { apiTokens: false }, WHO);
    expectWgoError(() => tokens.issue('carol', WHO), 'BAD_INPUT');
  });
});

describe('revoke and what kills a token', () => {
  test('revoke-token removes it (audited); a second revoke changes nothing', () => {
    setup();
    tokens.issue('alice', WHO);
    expect(tokens.revoke('alice', WHO)).toEqual({ name: 'alice', changed: true });
    expect(stored()).toEqual([]);
    expect(tokens.revoke('alice', WHO)).toEqual({ name: 'alice', changed: false });
    expect(tokenAudit().map((a) => a.action)).toEqual(['peer.token.issue', 'peer.token.revoke']);
    expect(tokens.status('alice').state).toBe('none');
  });

  test('turning apiTokens off deletes the token; turning it on again revives nothing', () => {
    setup();
    tokens.issue('alice', WHO);
    env.svc.setPolicy('alice', { apiTokens: false }, WHO);
    expect(stored()).toEqual([]);
    expect(tokenAudit().at(-1)).toMatchObject({ action: 'peer.token.revoke', target: 'alice', details: { reason: 'policy' } });
    env.svc.setPolicy('alice', { apiTokens: true }, WHO);
    expect(guardPeer('alice')!.tokenSha256).toBeNull();
  });

  test('another policy change keeps the token', () => {
    setup();
    const t = tokens.issue('alice', WHO);
    env.svc.setPolicy('alice', { apiTokens: true, maxStreams: 1 }, WHO);
    expect(guardPeer('alice')!.tokenSha256).toBe(tokenHash(t.token));
  });
});

describe('the peer set guards get', () => {
  test('tokenSha256 only for a peer with a token, allowed, bound to its current certificate; apiTokens itself never leaves the gateway', () => {
    setup();
    const a = tokens.issue('alice', WHO);
    const set = peerSetSource(env.db, env.config).load(env.now);
    expect(set.peers.map((p) => [p.name, p.tokenSha256])).toEqual([['alice', tokenHash(a.token)], ['bob', null], ['carol', null]]);
    for (const p of set.peers) expect(p.policy).not.toHaveProperty('apiTokens');
    expect(JSON.stringify(set)).not.toContain(a.token);
  });

  test('rotate-peer leaves the token bound to the old certificate: dead, and shown as stale', () => {
    setup();
    tokens.issue('alice', WHO);
    env.svc.rotate('alice', {}, WHO);
    expect(guardPeer('alice')!.tokenSha256).toBeNull();
    expect(tokens.status('alice').state).toBe('stale');
    // A new token after the rotation is bound to the new certificate.
    const b = tokens.issue('alice', WHO);
    expect(guardPeer('alice')!.tokenSha256).toBe(tokenHash(b.token));
  });

  test('disable, revoke and expiry take the peer, and so its token, out of the set', () => {
    setup();
    tokens.issue('alice', WHO);
    tokens.issue('carol', WHO);
    env.svc.disable('alice', WHO);
    env.svc.revoke('carol', WHO);
    const names = () => peerSetSource(env.db, env.config).load(env.now).peers.filter((p) => p.tokenSha256).map((p) => p.name);
    expect(names()).toEqual([]);
    env.svc.enable('alice', { expiresInMs: DAY }, WHO);
    expect(names()).toEqual(['alice']);
    env.now = T0 + DAY;
    expect(names()).toEqual([]);
  });

  test('the version changes when a token is issued, replaced, revoked, or the policy turns tokens off — and not on a failed issue', () => {
    setup();
    const source = peerSetSource(env.db, env.config);
    const seen = new Set([source.version()]);
    const step = (what: string, change: () => unknown, changes = true): void => {
      const before = source.version();
      try {
        change();
      } catch {
        /* a refused change */
      }
      const after = source.version();
      if (changes) {
        expect(after, what).not.toBe(before);
        expect(seen.has(after), `${what}: a version seen before`).toBe(false);
      } else expect(after, what).toBe(before);
      seen.add(after);
    };
    step('issue', () => tokens.issue('alice', WHO));
    step('replace', () => tokens.issue('alice', WHO));
    step('revoke', () => tokens.revoke('alice', WHO));
    step('revoke again', () => tokens.revoke('alice', WHO), false);
    step('issue for a peer without permission', () => tokens.issue('bob', WHO), false);
    step('issue for carol', () => tokens.issue('carol', WHO));
    step('policy off', () => env.svc.setPolicy('carol', { apiTokens: false }, WHO));
  });
});

describe('migration 5', () => {
  test('one token per peer, a unique well-formed hash; requests get an auth column that takes only the two methods', () => {
    setup();
    const ids = env.rows().map((p) => p.id);
    const ins = env.db.prepare(`INSERT INTO peer_tokens (peer_id, token_sha256, cert_serial, created_at, created_by) VALUES (?, ?, 'ab', 0, 'x')`);
    ins.run(ids[0], 'a'.repeat(64));
    expect(() => ins.run(ids[0], 'b'.repeat(64))).toThrow(/UNIQUE|PRIMARY/);
    expect(() => ins.run(ids[1], 'a'.repeat(64))).toThrow(/UNIQUE/);
    expect(() => ins.run(ids[1], 'A'.repeat(64))).toThrow(/CHECK/);
    expect(() => ins.run(ids[1], 'a'.repeat(63))).toThrow(/CHECK/);
    expect(() => ins.run(9999, 'c'.repeat(64))).toThrow(/FOREIGN KEY/);
    const cols = env.db.prepare(`SELECT name FROM pragma_table_info('requests')`).pluck().all();
    expect(cols).toContain('auth');
    const rec = env.db.prepare(`INSERT INTO requests (guard, guard_seq, at, source, status, bytes_in, bytes_out, duration_ms, auth) VALUES ('g', ?, 0, 's', 200, 0, 0, 0, ?)`);
    rec.run(1, 'token');
    rec.run(2, 'certificate');
    rec.run(3, null);
    expect(() => rec.run(4, 'password')).toThrow(/CHECK/);
  });
});

describe('a default policy that turns tokens off, then on again', () => {
  test('serve starting with tokens off by default prunes the tokens that rested on the default; turning them on again revives none', () => {
    // dave has no policy of his own: he has tokens through the config's default only.
    setup({ apiTokens: true });
    env.svc.add({ name: 'dave' }, WHO);
    const t = tokens.issue('dave', WHO);
    const kept = tokens.issue('alice', WHO); // alice's own policy allows tokens: not the default's
    // The admin turns the default off (config edit, serve restarted) ...
    const off = tokenService({ db: env.db, config: { ...env.config, policy: { ...env.config.policy, apiTokens: false } }, clock: () => env.now });
    expect(off.prune(WHO)).toEqual(['dave']);
    expect(off.status('dave').state).toBe('none');
    expect(tokenAudit().at(-1)).toMatchObject({ action: 'peer.token.revoke', target: 'dave' });
    // ... and on again: dave's old token stays dead; alice's was never touched.
    expect(tokens.status('dave').state).toBe('none');
    expect(guardPeer('dave')?.tokenSha256 ?? null).toBeNull();
    expect(tokens.status('alice').state).toBe('active');
    expect(guardPeer('alice')?.tokenSha256).toBe(tokenHash(kept.token));
    expect(t.token).not.toBe(kept.token);
    expect(tokens.prune(WHO)).toEqual([]);
  });
});
