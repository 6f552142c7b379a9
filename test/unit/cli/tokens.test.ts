/**
 * issue-token, revoke-token and set-policy --api-tokens through the real CLI
 * entry (main) on a real gateway state directory: exit codes, what is printed
 * once, and that the token is nowhere in the database files.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { type Config } from '../../../src/config.js';
import { tokenHash } from '../../../src/core/api-token.js';
import { overridesFromFlags } from '../../../src/core/policy-input.js';
import { auditRepository } from '../../../src/db/audit.js';
import { openGateway } from '../../../src/gateway/context.js';
import { expectWgoError } from '../../support/errors.js';
import { gatewayState, type GatewayState } from '../../support/gateway-state.js';

const WHO = { actor: 'root', source: 'cli' };

describe('--api-tokens', () => {
  test.each([['on', true], ['off', false]])('%s → apiTokens %s', (flag, value) => {
    expect(overridesFromFlags({ apiTokens: flag })).toEqual({ apiTokens: value });
  });
  test.each(['yes', 'true', '1', 'ON', ''])('%j is BAD_INPUT', (flag) => {
    expect(expectWgoError(() => overridesFromFlags({ apiTokens: flag }), 'BAD_INPUT').message).toBe(`--api-tokens "${flag}" must be on or off`);
  });
});

describe('the CLI verbs', () => {
  let state: GatewayState;
  let file: string;
  let config: Config;

  beforeAll(() => {
    state = gatewayState({ name: 'tokens' });
    ({ configFile: file, config } = state);
    const ctx = openGateway(config);
    try {
      for (const name of ['alice', 'bob', 'carol']) ctx.peers.add({ name }, WHO);
    } finally {
      ctx.close();
    }
  });
  afterAll(() => state.cleanup());

  /** The SHA-256 stored for a peer's token, or null. */
  function storedHash(name: string): string | null {
    const ctx = openGateway(config);
    try {
      const row = ctx.db.prepare('SELECT t.token_sha256 FROM peer_tokens t JOIN peers p ON p.id = t.peer_id WHERE p.name = ?').pluck().get(name) as string | undefined;
      return row ?? null;
    } finally {
      ctx.close();
    }
  }

  async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => void out.push(t), err: (t) => void err.push(t), env: {} };
    const code = await main(['--config', file, ...argv], io);
    return { code, out: out.join(''), err: err.join('') };
  }
  /** Every byte of the database files (main file, WAL, shared memory). */
  const dbBytes = (): Buffer => Buffer.concat(readdirSync(config.stateDir).filter((f) => f.includes('.db')).map((f) => readFileSync(join(config.stateDir, f))));
  const audit = () => {
    const ctx = openGateway(config);
    try {
      return auditRepository(ctx.db).list({ since: 0 }).filter((a) => a.action.startsWith('peer.token') || a.action === 'peer.policy');
    } finally {
      ctx.close();
    }
  };

  test('a peer whose policy does not allow tokens: exit 2, a message that says what to do, nothing printed on stdout, nothing stored', async () => {
    const before = audit().length;
    const r = await cli('issue-token', 'alice');
    expect(r).toEqual({ code: 2, out: '', err: 'wg-ollama: the policy of peer "alice" does not allow API tokens; run "set-policy alice --api-tokens on" first\n' });
    expect(audit()).toHaveLength(before);
  });

  test('set-policy --api-tokens on, then issue-token prints the token alone on stdout, once; --json gives name, token, createdAt', async () => {
    const p = await cli('set-policy', 'alice', '--api-tokens', 'on', '--json');
    expect(p.code).toBe(0);
    expect(JSON.parse(p.out)).toMatchObject({ overrides: { apiTokens: true }, effective: { apiTokens: true } });
    expect((await cli('set-policy', 'alice', '--api-tokens', 'maybe')).code).toBe(2);

    const text = await cli('issue-token', 'alice');
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^wgo_[A-Za-z0-9_-]{43}\n$/);
    expect(text.err).toContain('shown once');
    expect(text.err).toContain('from 10.66.0.2');
    expect(text.err).not.toContain(text.out.trim());

    const j = await cli('issue-token', 'alice', '--json');
    expect(j.code).toBe(0);
    const issued = JSON.parse(j.out) as { name: string; token: string; createdAt: string; replaced: boolean };
    expect(issued).toEqual({ name: 'alice', token: expect.stringMatching(/^wgo_[A-Za-z0-9_-]{43}$/), createdAt: expect.any(String), replaced: true });
    expect(issued.token).not.toBe(text.out.trim());

    // Neither token is in any database file, in any encoding a dump could show; the hash of the live one is.
    const bytes = dbBytes();
    for (const t of [text.out.trim(), issued.token]) {
      expect(bytes.includes(Buffer.from(t))).toBe(false);
      expect(bytes.includes(Buffer.from(t.slice(4)))).toBe(false);
      expect(bytes.includes(Buffer.from(t.slice(4), 'base64url'))).toBe(false);
    }
    expect(bytes.includes(Buffer.from(tokenHash(issued.token)))).toBe(true);
    expect(JSON.stringify(audit())).not.toContain(issued.token);
    expect(audit().map((a) => a.action)).toEqual(['peer.policy', 'peer.token.issue', 'peer.token.issue']);
  });

  test('show-peer says whether the peer has a token in force: active, stale after a rotation, none', async () => {
    const state = async (name: string) => (JSON.parse((await cli('show-peer', name, '--json')).out) as { apiToken: string }).apiToken;
    expect(await state('alice')).toBe('active');
    expect(await state('bob')).toBe('none');
    // Through the service: rotate-peer without a daemon would apply the removal to this machine's kernel.
    const ctx = openGateway(config);
    try {
      ctx.peers.rotate('alice', {}, WHO);
    } finally {
      ctx.close();
    }
    expect(await state('alice')).toBe('stale');
    expect((await cli('show-peer', 'alice')).out).toMatch(/^apiToken {9}stale$/m);
  });

  test('revoke-token: exit 0, says so; again: "had no API token"; an unknown peer: exit 2', async () => {
    await cli('set-policy', 'bob', '--api-tokens', 'on');
    expect((await cli('issue-token', 'bob')).code).toBe(0);
    expect(await cli('revoke-token', 'bob')).toEqual({ code: 0, out: 'bob: API token revoked\n', err: '' });
    expect(JSON.parse((await cli('revoke-token', 'bob', '--json')).out)).toEqual({ name: 'bob', changed: false });
    expect((await cli('revoke-token', 'nobody')).code).toBe(2);
    expect((await cli('issue-token', 'nobody')).code).toBe(2);
  });

  test('a token that cannot be printed (stdout full) is not issued: exit 1, the previous token stays in force', async () => {
    await cli('set-policy', 'bob', '--api-tokens', 'on');
    const first = await cli('issue-token', 'bob');
    expect(first.code).toBe(0);
    const before = storedHash('bob');
    expect(before).toBe(tokenHash(first.out.trim()));
    const err: string[] = [];
    const full: Io = {
      out: () => {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
      err: (t) => void err.push(t),
      env: {},
    };
    expect(await main(['--config', file, 'issue-token', 'bob'], full)).toBe(1);
    expect(err.join('')).toMatch(/ENOSPC/);
    expect(err.join('')).not.toMatch(/shown once/);
    expect(storedHash('bob')).toBe(before);
  });

  test('a disabled peer cannot get a token (exit 2)', async () => {
    await cli('set-policy', 'carol', '--api-tokens', 'on');
    // Through the service: disable-peer without a daemon would apply the removal to this machine's kernel.
    const ctx = openGateway(config);
    try {
      ctx.peers.disable('carol', WHO);
    } finally {
      ctx.close();
    }
    const r = await cli('issue-token', 'carol');
    expect(r.code).toBe(2);
    expect(r.err).toBe('wg-ollama: peer "carol" is disabled; only an active peer can have an API token\n');
  });
});
