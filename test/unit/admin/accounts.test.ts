import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'otplib';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { accountService, SESSION_IDLE_MS, SESSION_MAX_MS, THROTTLE, type AccountService, type NewAdmin } from '../../../src/admin/accounts.js';
import { createSecretBox, type SecretBox } from '../../../src/admin/secret-box.js';
import { auditRepository } from '../../../src/db/audit.js';
import { openDatabase, type Db } from '../../../src/db/open.js';

// scrypt costs ~50-100 ms per add or login attempt: tests keep to a few dozen.
const WHO = { actor: 'root', source: 'cli' };
const IP = '192.0.2.10';
const PASSWORD = 'correct horse battery staple';
/** Mid-way through a 30 s TOTP step, so ±30 s reaches exactly one step either side. */
const T0 = Date.UTC(2025, 0, 1, 12, 0, 15);
const MIN = 60_000;

let db: Db;
let box: SecretBox;
let now: number;
let svc: AccountService;
beforeEach(() => {
  db = openDatabase(':memory:');
  box = createSecretBox(randomBytes(32));
  now = T0;
  svc = accountService({ db, box: () => box, clock: () => now });
});
afterEach(() => db.close());

const secretOf = (a: NewAdmin): string => new URL(a.totpUri).searchParams.get('secret')!;
/** The code for the step `steps` away from the injected clock (otplib takes seconds). */
const code = (secret: string, steps = 0): Promise<string> => generate({ secret, epoch: Math.floor(now / 1000) + steps * 30 });
/** A 6-digit code that is valid in none of the accepted steps. */
async function wrongCode(secret: string): Promise<string> {
  const valid = new Set(await Promise.all([-1, 0, 1].map((s) => code(secret, s))));
  let c = 0;
  while (valid.has(String(c).padStart(6, '0'))) c++;
  return String(c).padStart(6, '0');
}
const audit = (action?: string) => auditRepository(db).list({ since: 0 }).filter((r) => action === undefined || r.action === action);
const sessionRows = (): { adminId: number }[] => db.prepare('SELECT admin_id AS adminId FROM admin_sessions').all() as { adminId: number }[];
const addAlice = (role = 'admin') => svc.add({ name: 'alice', role, password: PASSWORD }, WHO);
async function loginAlice(a: NewAdmin, source = IP, steps = 0) {
  return svc.login({ name: 'alice', password: PASSWORD, code: await code(secretOf(a), steps) }, source);
}
async function okLogin(p: Promise<Awaited<ReturnType<AccountService['login']>>>) {
  const r = await p;
  if (!r.ok) throw new Error(`login failed: ${JSON.stringify(r)}`);
  return r;
}

describe('add', () => {
  test('returns the view, the otpauth URI and its secret; the account is listed', async () => {
    const a = await svc.add({ name: 'alice', password: PASSWORD }, WHO);
    expect(a).toMatchObject({ name: 'alice', role: 'admin', createdAt: '2025-01-01T12:00:15.000Z' });
    const uri = new URL(a.totpUri);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe('/wg-ollama:alice');
    expect(uri.searchParams.get('issuer')).toBe('wg-ollama');
    expect(uri.searchParams.get('secret')).toBe(a.totpSecret);
    expect(a.totpSecret).toMatch(/^[A-Z2-7]{32}$/);
    expect(svc.list()).toEqual([{ name: 'alice', role: 'admin', createdAt: '2025-01-01T12:00:15.000Z' }]);
  });

  test.each([
    ['upper case', 'Alice'],
    ['empty', ''],
    ['leading dash', '-alice'],
    ['a slash', 'al/ice'],
    ['a space', 'al ice'],
    ['33 characters', 'a'.repeat(33)],
    ['reserved', 'admin'],
    ['reserved', 'root'],
  ])('a bad name (%s: %j) is BAD_INPUT and nothing is written', async (_what, name) => {
    await expect(svc.add({ name, password: PASSWORD }, WHO)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect(svc.list()).toEqual([]);
    expect(audit()).toEqual([]);
  });

  test('role: admin or viewer, anything else is BAD_INPUT', async () => {
    await expect(svc.add({ name: 'carol', role: 'root', password: PASSWORD }, WHO)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(svc.add({ name: 'carol', role: 'Admin', password: PASSWORD }, WHO)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect((await svc.add({ name: 'vic', role: 'viewer', password: PASSWORD }, WHO)).role).toBe('viewer');
    expect(svc.list().map((a) => [a.name, a.role])).toEqual([['vic', 'viewer']]);
  });

  test('a password the rules refuse is BAD_INPUT and nothing is written', async () => {
    for (const password of ['short', 'a'.repeat(1025), 'with a\nnewline in it', undefined as unknown as string]) {
      await expect(svc.add({ name: 'alice', password }, WHO)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    }
    expect(svc.list()).toEqual([]);
  });

  test('a second account of the same name is CONFLICT; the first stays as it was', async () => {
    const first = await addAlice();
    await expect(svc.add({ name: 'alice', role: 'viewer', password: 'another password!' }, WHO)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(svc.list()).toEqual([{ name: 'alice', role: 'admin', createdAt: first.createdAt }]);
    expect(audit('admin.add')).toHaveLength(1);
    // the first account's credentials still work
    await okLogin(loginAlice(first));
  });

  test('writes an audit row with the actor and source of the caller, and no secret', async () => {
    await svc.add({ name: 'vic', role: 'viewer', password: PASSWORD }, { actor: 'operator', source: 'web:198.51.100.7' });
    expect(audit()).toEqual([
      { id: 1, at: T0, actor: 'operator', source: 'web:198.51.100.7', action: 'admin.add', target: 'vic', details: { role: 'viewer' } },
    ]);
  });

  test('the database holds neither the TOTP secret nor the password, only a scrypt hash and a sealed secret bound to the name', async () => {
    const a = await addAlice();
    const r = await okLogin(loginAlice(a));
    const image = db.serialize();
    for (const s of [a.totpSecret, PASSWORD, r.session.id]) {
      expect(image.includes(Buffer.from(s)), s).toBe(false);
    }
    const row = db.prepare('SELECT password_hash AS hash, totp_secret AS sealed FROM admins').get() as { hash: string; sealed: string };
    expect(row.hash).toMatch(/^scrypt\$/);
    expect(box.open(row.sealed, 'alice')).toBe(a.totpSecret);
    expect(() => box.open(row.sealed, 'bob')).toThrow();
  });
});

describe('login', () => {
  test('the right password and code sign in: a session id and a CSRF token, an audit row', async () => {
    const a = await addAlice();
    // the name is trimmed and lower-cased, spaces in the code are ignored
    const c = await code(secretOf(a));
    const r = await svc.login({ name: ' Alice ', password: PASSWORD, code: `${c.slice(0, 3)} ${c.slice(3)}` }, IP);
    expect(r).toEqual({
      ok: true,
      admin: { name: 'alice', role: 'admin', createdAt: a.createdAt },
      session: { id: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), csrf: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
    });
    if (!r.ok) return;
    expect(r.session.id).not.toBe(r.session.csrf);
    expect(audit('admin.login')).toMatchObject([{ actor: 'alice', source: IP, target: 'alice', at: T0 }]);
  });

  test('the same code twice: the second is refused as invalid and audited as a replay', async () => {
    const a = await addAlice();
    const c = await code(secretOf(a));
    await okLogin(svc.login({ name: 'alice', password: PASSWORD, code: c }, IP));
    now += 5_000; // same step
    expect(await svc.login({ name: 'alice', password: PASSWORD, code: c }, '198.51.100.99')).toStrictEqual({ ok: false, reason: 'invalid' });
    expect(audit('admin.login.replay')).toMatchObject([{ actor: 'alice', source: '198.51.100.99', target: 'alice' }]);
    expect(sessionRows()).toHaveLength(1);
    // the next step's code is fresh
    now += 30_000;
    await okLogin(loginAlice(a));
  });

  test('codes of the previous and the next 30 s step are accepted', async () => {
    const a = await addAlice();
    await okLogin(loginAlice(a, IP, -1));
    await okLogin(loginAlice(a, IP, +1));
  });

  test('codes two steps away are refused', async () => {
    const a = await addAlice();
    expect(await loginAlice(a, IP, -2)).toStrictEqual({ ok: false, reason: 'invalid' });
    expect(await loginAlice(a, IP, +2)).toStrictEqual({ ok: false, reason: 'invalid' });
    expect(audit('admin.login.failed')).toHaveLength(2);
  });

  test('wrong password, wrong code, unknown name, missing fields: all exactly {ok:false, reason:"invalid"}', async () => {
    const a = await addAlice();
    const good = await code(secretOf(a));
    const bad = await wrongCode(secretOf(a));
    const attempts: { name: unknown; password: unknown; code: unknown }[] = [
      { name: 'alice', password: 'wrong password here', code: good },
      { name: 'alice', password: PASSWORD, code: bad },
      { name: 'alice', password: PASSWORD, code: 'abcdef' },
      { name: 'nobody', password: PASSWORD, code: good },
    ];
    const results = [];
    for (const at of attempts) results.push(await svc.login(at, IP));
    // (a fifth failure for 'alice' would lock the account: this one is from another source and name)
    results.push(await svc.login({ name: undefined, password: undefined, code: undefined }, '198.51.100.1'));
    for (const r of results) expect(r).toStrictEqual({ ok: false, reason: 'invalid' });
    expect(audit('admin.login.failed')).toHaveLength(5);
    expect(sessionRows()).toEqual([]);
    // after all that the right code (unused so far) still signs in
    await okLogin(svc.login({ name: 'alice', password: PASSWORD, code: good }, IP));
  });

  test('five failures for a name from one address lock the name there only: its admin still signs in from their own address', async () => {
    const a = await addAlice();
    const ATTACKER = '10.0.0.9';
    for (let i = 0; i < THROTTLE.perNameAndSource; i++) {
      expect(await svc.login({ name: 'alice', password: `wrong password ${i}`, code: await code(secretOf(a)) }, ATTACKER)).toStrictEqual({ ok: false, reason: 'invalid' });
    }
    now += MIN;
    // from the attacker's address even the right credentials are "locked"
    const locked = await loginAlice(a, ATTACKER);
    expect(locked).toEqual({ ok: false, reason: 'locked', retryAfterSec: expect.any(Number) });
    if (locked.ok) return;
    expect(locked.retryAfterSec).toBeGreaterThan(0);
    expect(locked.retryAfterSec).toBeLessThanOrEqual(THROTTLE.lockMs / 1000 - 60);
    expect(audit('admin.login.locked')).toMatchObject([{ actor: 'alice', source: ATTACKER }]);
    // alice, from her own address, with the right password and code
    await okLogin(loginAlice(a, '127.0.0.1'));
    // the lock on the attacker's address passes after 15 minutes
    now += THROTTLE.lockMs;
    await okLogin(loginAlice(a, ATTACKER, 1));
  });

  test(`${THROTTLE.perName} failures for a name, spread over many addresses, lock the name everywhere until the lock passes`, async () => {
    const a = await addAlice();
    const c = await code(secretOf(a));
    let n = 0;
    // each address stays one short of its own lock for the name
    for (let host = 1; n < THROTTLE.perName; host++) {
      for (let i = 0; i < THROTTLE.perNameAndSource - 1 && n < THROTTLE.perName; i++, n++) {
        expect(await svc.login({ name: 'alice', password: `guess ${n}`, code: c }, `198.51.100.${host}`)).toStrictEqual({ ok: false, reason: 'invalid' });
      }
    }
    now += 30_000;
    expect(await loginAlice(a, '127.0.0.1')).toMatchObject({ ok: false, reason: 'locked' });
    expect(await loginAlice(a, '203.0.113.7')).toMatchObject({ ok: false, reason: 'locked' });
    // other names are not affected
    expect(await svc.login({ name: 'bob', password: PASSWORD, code: c }, '127.0.0.1')).toStrictEqual({ ok: false, reason: 'invalid' });
    now += THROTTLE.lockMs;
    await okLogin(loginAlice(a, '127.0.0.1'));
  }, 120_000);

  test('a name that does not exist locks the same way, and only that name', async () => {
    const a = await addAlice();
    for (let i = 0; i < THROTTLE.perNameAndSource; i++) {
      expect(await svc.login({ name: 'ghost', password: PASSWORD, code: '123456' }, IP)).toStrictEqual({ ok: false, reason: 'invalid' });
    }
    expect(await svc.login({ name: 'ghost', password: PASSWORD, code: '123456' }, IP)).toMatchObject({ ok: false, reason: 'locked' });
    await okLogin(loginAlice(a));
  });

  test('a success clears the name\'s failures; failures older than the window do not count', async () => {
    const a = await addAlice();
    const fail = () => svc.login({ name: 'alice', password: 'not the password', code: '000000' }, IP);
    for (let i = 0; i < THROTTLE.perNameAndSource - 1; i++) await fail();
    await okLogin(loginAlice(a));
    await fail(); // 1 since the success, not 5
    now += 30_000;
    await okLogin(loginAlice(a));
    for (let i = 0; i < THROTTLE.perNameAndSource - 1; i++) await fail();
    now += THROTTLE.windowMs + 1;
    await fail(); // a new window: 1, not 5
    await okLogin(loginAlice(a));
  });

  test('concurrent attempts cannot slip past the limit: of eight at once from one address, five are judged and three are locked', async () => {
    const a = await addAlice();
    const c = await code(secretOf(a));
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => svc.login({ name: 'alice', password: `guess number ${i}`, code: c }, IP)),
    );
    expect(results.filter((r) => !r.ok && r.reason === 'invalid')).toHaveLength(THROTTLE.perNameAndSource);
    expect(results.filter((r) => !r.ok && r.reason === 'locked')).toHaveLength(8 - THROTTLE.perNameAndSource);
    expect(await loginAlice(a)).toMatchObject({ ok: false, reason: 'locked' });
  });

  test('twenty failures from one source lock that source for every name; other sources are not affected', async () => {
    const a = await addAlice();
    for (let i = 0; i < THROTTLE.perSource; i++) {
      // a different name each time: no name reaches its own limit
      expect(await svc.login({ name: `user${i}`, password: PASSWORD, code: '123456' }, IP)).toStrictEqual({ ok: false, reason: 'invalid' });
    }
    const locked = await loginAlice(a, IP);
    expect(locked).toMatchObject({ ok: false, reason: 'locked' });
    expect(await svc.login({ name: 'someone-else', password: PASSWORD, code: '123456' }, IP)).toMatchObject({ ok: false, reason: 'locked' });
    await okLogin(loginAlice(a, '198.51.100.200'));
    now += THROTTLE.lockMs + 30_000;
    await okLogin(loginAlice(a, IP));
  });
});

describe('sessions', () => {
  test('valid right after sign-in: the admin, the CSRF token, the creation time', async () => {
    const a = await addAlice();
    const r = await okLogin(loginAlice(a));
    const s = svc.session(r.session.id);
    expect(s).toEqual({ admin: { id: expect.any(Number), name: 'alice', role: 'admin', createdAt: a.createdAt }, csrf: r.session.csrf, createdAt: T0 });
  });

  test('unknown, empty or absurd ids are null', async () => {
    const a = await addAlice();
    const r = await okLogin(loginAlice(a));
    for (const id of [undefined, '', 'nope', r.session.csrf, r.session.id + 'x', 'x'.repeat(10_000)]) expect(svc.session(id)).toBeNull();
    expect(svc.session(r.session.id)).not.toBeNull();
  });

  test('null after 30 minutes without activity', async () => {
    const a = await addAlice();
    const r = await okLogin(loginAlice(a));
    now += SESSION_IDLE_MS + 1;
    expect(svc.session(r.session.id)).toBeNull();
    expect(sessionRows()).toEqual([]);
    // and it does not come back
    now = T0 + 60_000;
    expect(svc.session(r.session.id)).toBeNull();
  });

  test('activity within 30 minutes keeps it alive, but never past 12 hours', async () => {
    const a = await addAlice();
    const r = await okLogin(loginAlice(a));
    const step = 20 * MIN;
    while (now + step - T0 <= SESSION_MAX_MS) {
      now += step;
      expect(svc.session(r.session.id), `${(now - T0) / MIN} min`).not.toBeNull();
    }
    expect(now - T0).toBe(SESSION_MAX_MS);
    now += MIN; // idle for one minute only, but 12 h 1 min old
    expect(svc.session(r.session.id)).toBeNull();
  });

  test('expireSessions drops idle sessions and keeps live ones', async () => {
    const a = await addAlice();
    const old = await okLogin(loginAlice(a));
    now += SESSION_IDLE_MS - MIN;
    const fresh = await okLogin(loginAlice(a));
    now += 2 * MIN;
    expect(svc.expireSessions()).toBe(1);
    expect(svc.session(fresh.session.id)).not.toBeNull();
    expect(svc.session(old.session.id)).toBeNull();
  });

  test('logout ends the session and is audited; logging out an unknown id does nothing', async () => {
    const a = await addAlice();
    const r = await okLogin(loginAlice(a));
    const other = await okLogin(loginAlice(a, IP, 1));
    svc.logout(r.session.id, IP);
    expect(svc.session(r.session.id)).toBeNull();
    expect(svc.session(other.session.id)).not.toBeNull();
    expect(audit('admin.logout')).toMatchObject([{ actor: 'alice', source: IP, target: 'alice' }]);
    svc.logout(r.session.id, IP);
    svc.logout('unknown', IP);
    svc.logout(undefined, IP);
    expect(audit('admin.logout')).toHaveLength(1);
  });
});

describe('resetTotp', () => {
  test('a new secret: sessions end, the old authenticator stops working, the new one works', async () => {
    const a = await addAlice();
    const r = await okLogin(loginAlice(a));
    const n = svc.resetTotp('alice', WHO);
    expect(n).toMatchObject({ name: 'alice', role: 'admin', createdAt: a.createdAt });
    expect(n.totpSecret).not.toBe(a.totpSecret);
    expect(new URL(n.totpUri).searchParams.get('secret')).toBe(n.totpSecret);
    expect(svc.session(r.session.id)).toBeNull();
    expect(sessionRows()).toEqual([]);
    expect(audit('admin.reset-totp')).toMatchObject([{ actor: 'root', source: 'cli', target: 'alice' }]);
    now += 30_000; // a step not used yet
    expect(await loginAlice(a)).toStrictEqual({ ok: false, reason: 'invalid' });
    await okLogin(loginAlice(n));
  });

  test('an unknown name is NOT_FOUND', async () => {
    await addAlice();
    expect(() => svc.resetTotp('bob', WHO)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
  });
});

describe('remove', () => {
  test('the last admin-role account cannot be removed (CONFLICT), a viewer can', async () => {
    await addAlice();
    await svc.add({ name: 'vic', role: 'viewer', password: PASSWORD }, WHO);
    expect(() => svc.remove('alice', WHO)).toThrow(expect.objectContaining({ code: 'CONFLICT' }));
    expect(svc.remove('vic', WHO)).toMatchObject({ name: 'vic', role: 'viewer' });
    expect(svc.list().map((a) => a.name)).toEqual(['alice']);
    expect(audit('admin.remove')).toMatchObject([{ actor: 'root', source: 'cli', target: 'vic' }]);
  });

  test('with two admins one can go, then the other is the last', async () => {
    await addAlice();
    await svc.add({ name: 'bob', password: PASSWORD }, WHO);
    svc.remove('bob', WHO);
    expect(() => svc.remove('alice', WHO)).toThrow(expect.objectContaining({ code: 'CONFLICT' }));
    expect(svc.list().map((a) => a.name)).toEqual(['alice']);
  });

  test('removing an account ends its sessions (the rows go with it) and only its sessions', async () => {
    const a = await addAlice();
    const v = await svc.add({ name: 'vic', role: 'viewer', password: PASSWORD }, WHO);
    const mine = await okLogin(loginAlice(a));
    const theirs = await okLogin(svc.login({ name: 'vic', password: PASSWORD, code: await code(secretOf(v)) }, IP));
    expect(sessionRows()).toHaveLength(2);
    svc.remove('vic', WHO);
    expect(sessionRows()).toEqual([{ adminId: svc.session(mine.session.id)!.admin.id }]);
    expect(svc.session(theirs.session.id)).toBeNull();
    // and the name can sign in no more
    expect(await svc.login({ name: 'vic', password: PASSWORD, code: await code(secretOf(v), 1) }, IP)).toStrictEqual({ ok: false, reason: 'invalid' });
  });

  test('an unknown name is NOT_FOUND', () => {
    expect(() => svc.remove('nobody', WHO)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
  });
});

describe('list', () => {
  test('sorted by name, views only (no hash, no secret)', async () => {
    await svc.add({ name: 'zed', role: 'viewer', password: PASSWORD }, WHO);
    now += MIN;
    await addAlice();
    expect(svc.list()).toEqual([
      { name: 'alice', role: 'admin', createdAt: new Date(T0 + MIN).toISOString() },
      { name: 'zed', role: 'viewer', createdAt: new Date(T0).toISOString() },
    ]);
  });
});

describe('what a failed sign-in stores', () => {
  test('a name that is no account (people type passwords there) is not stored: not in the audit, not in the throttle, not in the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgo-accounts-'));
    try {
      const file = join(dir, 'state.db');
      const fdb = openDatabase(file);
      const fsvc = accountService({ db: fdb, box: () => box, clock: () => now });
      await fsvc.add({ name: 'alice', password: PASSWORD }, WHO);
      for (let i = 0; i < THROTTLE.perNameAndSource + 1; i++) {
        await fsvc.login({ name: 'hunter2-password', password: PASSWORD, code: '123456' }, IP);
      }
      await fsvc.login({ name: 'alice', password: 'hunter2-password', code: '123456' }, IP);
      const rows = auditRepository(fdb).list({ since: 0 }).filter((r) => r.action.startsWith('admin.login'));
      expect(rows.map((r) => r.action)).toEqual([...Array(THROTTLE.perNameAndSource).fill('admin.login.failed'), 'admin.login.locked', 'admin.login.failed']);
      const tag = rows[0]!.actor;
      expect(tag).toMatch(/^unknown:[0-9a-f]{12}$/);
      // the same typed name gives the same tag (attempts can be told apart and counted), and it is the target too
      for (const r of rows.slice(0, -1)) expect(r).toMatchObject({ actor: tag, target: tag });
      // an existing account's name is stored as it is
      expect(rows.at(-1)).toMatchObject({ actor: 'alice', target: 'alice' });
      fdb.close();
      const bytes = readdirSync(dir).map((f) => readFileSync(join(dir, f)).toString('latin1')).join('');
      expect(bytes).toContain('alice');
      expect(bytes).not.toContain('hunter2-password');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the tag depends on admin.key: a copy of the database alone cannot confirm a guess', async () => {
    await svc.login({ name: 'hunter2-password', password: PASSWORD, code: '123456' }, IP);
    const other = openDatabase(':memory:');
    try {
      await accountService({ db: other, box: () => createSecretBox(randomBytes(32)), clock: () => now }).login({ name: 'hunter2-password', password: PASSWORD, code: '123456' }, IP);
      const a = audit('admin.login.failed')[0]!.actor;
      const b = auditRepository(other).list({ since: 0 })[0]!.actor;
      expect(a).toMatch(/^unknown:/);
      expect(b).toMatch(/^unknown:/);
      expect(a).not.toBe(b);
    } finally {
      other.close();
    }
  });

  test('an empty name is stored as "-"', async () => {
    await svc.login({ name: '', password: PASSWORD, code: '123456' }, IP);
    expect(audit('admin.login.failed')).toMatchObject([{ actor: '-', target: null }]);
  });
});
