import { createHash, randomBytes } from 'node:crypto';
import { generateSecret, generateURI, verify } from 'otplib';
import { validatePeerName } from '../core/names.js';
import { WgoError, badInput } from '../errors.js';
import { auditRepository } from '../db/audit.js';
import { adminRepository, type AdminRole, type AdminRow } from '../db/admins.js';
import type { Db } from '../db/open.js';
import type { Actor } from '../gateway/peer-service.js';
import { checkNewPassword, DUMMY_HASH_PROMISE, hashPassword, verifyPassword } from './passwords.js';
import type { SecretBox } from './secret-box.js';

export const TOTP_ISSUER = 'wg-ollama';
/** ±1 time step of 30 s. */
const TOTP_TOLERANCE_SEC = 30;

/**
 * Sign-in throttle: failures within the window lock a key for lockMs. Keys:
 * a name from one source address (perNameAndSource), a name from anywhere
 * (perName: far higher, so that a visitor cannot lock an admin out of their
 * own address, yet a spread-out guess at one name still stops), and a source
 * address whatever the name (perSource).
 */
export const THROTTLE = {
  windowMs: 15 * 60_000,
  lockMs: 15 * 60_000,
  perNameAndSource: 5,
  perName: 100,
  perSource: 20,
};

/** How many hex digits of a name's tag are kept in the audit log (48 bits: enough to tell attempts apart). */
const NAME_TAG_HEX = 12;

export const SESSION_IDLE_MS = 30 * 60_000;
export const SESSION_MAX_MS = 12 * 3600_000;
/** seen_at is written at most this often per session (not on every page view). */
const TOUCH_EVERY_MS = 30_000;

export interface AdminView {
  name: string;
  role: AdminRole;
  createdAt: string;
}

export interface NewAdmin extends AdminView {
  /** otpauth:// URI for the authenticator app: shown once. */
  totpUri: string;
  totpSecret: string;
}

export type LoginResult =
  | { ok: true; admin: AdminView; session: { id: string; csrf: string } }
  | { ok: false; reason: 'invalid' | 'locked'; retryAfterSec?: number };

export interface Session {
  admin: AdminView & { id: number };
  csrf: string;
  createdAt: number;
}

const view = (a: AdminRow): AdminView => ({ name: a.name, role: a.role, createdAt: new Date(a.createdAt).toISOString() });
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export function validateAdminName(name: unknown): string {
  return validatePeerName(name, 'admin name');
}

export function validateRole(role: unknown): AdminRole {
  if (role === 'admin' || role === 'viewer') return role;
  throw badInput('role must be "admin" or "viewer"');
}

/**
 * Admin accounts, sign-in and web sessions. The CLI (`admin …`) and the web UI
 * both use this, so the rules are the same everywhere.
 */
export function accountService(deps: { db: Db; box: () => SecretBox; clock?: () => number }) {
  const repo = adminRepository(deps.db);
  const audit = auditRepository(deps.db);
  const clock = deps.clock ?? Date.now;

  const newTotp = (name: string): { secret: string; uri: string; sealed: string } => {
    const secret = generateSecret({ length: 20 });
    return { secret, uri: generateURI({ issuer: TOTP_ISSUER, label: name, secret }), sealed: deps.box().seal(secret, name) };
  };
  const find = (name: string): AdminRow => {
    const a = repo.byName(validateAdminName(name));
    if (!a) throw new WgoError('NOT_FOUND', `no admin named ${name}`);
    return a;
  };

  /** Counts a failure against `key`; the lock starts when the limit is reached. */
  const fail = (key: string, limit: number, now: number): void => {
    const t = repo.throttle.get(key);
    const fresh = !t || now - t.windowStart > THROTTLE.windowMs;
    const failures = fresh ? 1 : t.failures + 1;
    repo.throttle.put(key, failures, fresh ? now : t.windowStart, failures >= limit ? now + THROTTLE.lockMs : (t?.lockedUntil ?? null));
  };
  /** Runs `fn` after every earlier call with the same key has settled (within this process). */
  const queues = new Map<string, Promise<void>>();
  const inTurn = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const run = (queues.get(key) ?? Promise.resolve()).then(fn);
    const done = run.then(() => undefined, () => undefined);
    queues.set(key, done);
    void done.then(() => {
      if (queues.get(key) === done) queues.delete(key);
    });
    return run;
  };
  const lockedFor = (key: string, now: number): number => {
    const t = repo.throttle.get(key);
    return t?.lockedUntil && t.lockedUntil > now ? t.lockedUntil - now : 0;
  };

  return {
    async add(input: { name: string; role?: string; password: string }, who: Actor): Promise<NewAdmin> {
      const name = validateAdminName(input.name);
      const role = validateRole(input.role ?? 'admin');
      checkNewPassword(input.password);
      if (repo.byName(name)) throw new WgoError('CONFLICT', `an admin named ${name} exists already`);
      const hash = await hashPassword(input.password);
      const totp = newTotp(name);
      const now = clock();
      deps.db.transaction(() => {
        if (repo.byName(name)) throw new WgoError('CONFLICT', `an admin named ${name} exists already`);
        repo.insert({ name, role, passwordHash: hash, totpSecret: totp.sealed }, now);
        audit.record({ ...who, action: 'admin.add', target: name, details: { role } }, now);
      })();
      return { name, role, createdAt: new Date(now).toISOString(), totpUri: totp.uri, totpSecret: totp.secret };
    },

    list: (): AdminView[] => repo.list().map(view),

    /** Removes an account and its sessions. The last admin-role account stays (or no one could manage the gateway). */
    remove(name: string, who: Actor): AdminView {
      const a = find(name);
      const now = clock();
      deps.db.transaction(() => {
        if (a.role === 'admin' && repo.countRole('admin') <= 1) throw new WgoError('CONFLICT', `${a.name} is the last admin; add another admin first`);
        repo.remove(a.id);
        audit.record({ ...who, action: 'admin.remove', target: a.name }, now);
      })();
      return view(a);
    },

    /** A new TOTP secret (the old authenticator entry stops working) and all sessions end. */
    resetTotp(name: string, who: Actor): NewAdmin {
      const a = find(name);
      const totp = newTotp(a.name);
      const now = clock();
      deps.db.transaction(() => {
        repo.setTotp(a.id, totp.sealed, now);
        repo.sessions.deleteOfAdmin(a.id);
        audit.record({ ...who, action: 'admin.reset-totp', target: a.name }, now);
      })();
      return { ...view(a), totpUri: totp.uri, totpSecret: totp.secret };
    },

    /**
     * Password + TOTP. The answer (and, within scrypt's noise, the time) is the
     * same for an unknown name, a wrong password and a wrong code. Failures are
     * throttled (see THROTTLE) per name from one source address, per name from
     * anywhere (existing or not), and per source address.
     * Attempts for one name, and from one source, are judged one at a time:
     * otherwise many sent at once would all pass the lock check while the
     * first were still hashing, and the limits would not hold.
     */
    async login(input: { name: unknown; password: unknown; code: unknown }, source: string): Promise<LoginResult> {
      const name = typeof input.name === 'string' ? input.name.trim().toLowerCase().slice(0, 64) : '';
      const password = typeof input.password === 'string' ? input.password : '';
      const code = typeof input.code === 'string' ? input.code.replace(/\s+/g, '') : '';
      // The typed name is never stored: people type their password into it by
      // mistake. The throttle keys on its keyed tag; the audit log records an
      // existing account's name as it is, any other as `unknown:<tag>` (the
      // first NAME_TAG_HEX hex digits, so repeated attempts at one name show).
      const tag = deps.box().tag(name);
      const nameKey = `name:${tag}`;
      const nameSourceKey = `name:${tag}@${source}`;
      const sourceKey = `source:${source}`;
      const recorded = (a: AdminRow | undefined): string | null => (a ? a.name : name ? `unknown:${tag.slice(0, NAME_TAG_HEX)}` : null);
      // One name at a time covers both name keys; the source key has its own turn.
      return inTurn(nameKey, () => inTurn(sourceKey, async (): Promise<LoginResult> => {
        const now = clock();
        const a = name ? repo.byName(name) : undefined;
        const locked = Math.max(lockedFor(nameSourceKey, now), lockedFor(nameKey, now), lockedFor(sourceKey, now));
        if (locked > 0) {
          audit.record({ actor: recorded(a) ?? '-', source, action: 'admin.login.locked', target: recorded(a) }, now);
          return { ok: false, reason: 'locked', retryAfterSec: Math.ceil(locked / 1000) };
        }
        const passwordOk = await verifyPassword(password, a?.passwordHash ?? (await DUMMY_HASH_PROMISE()));
        let secret = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
        if (a) secret = deps.box().open(a.totpSecret, a.name);
        const totp = /^\d{6}$/.test(code)
          ? await verify({ secret, token: code, epochTolerance: TOTP_TOLERANCE_SEC, epoch: Math.floor(now / 1000) })
          : { valid: false as const };
        const step = totp.valid && 'timeStep' in totp ? Number(totp.timeStep) : -1;
        const ok = !!a && passwordOk && totp.valid;
        const fresh = ok && repo.useStep(a.id, step);
        if (!fresh) {
          deps.db.transaction(() => {
            fail(nameSourceKey, THROTTLE.perNameAndSource, now);
            fail(nameKey, THROTTLE.perName, now);
            fail(sourceKey, THROTTLE.perSource, now);
            const replay = ok && !fresh;
            audit.record({ actor: recorded(a) ?? '-', source, action: replay ? 'admin.login.replay' : 'admin.login.failed', target: recorded(a) }, now);
          })();
          return { ok: false, reason: 'invalid' };
        }
        const id = randomBytes(32).toString('base64url');
        const csrf = randomBytes(32).toString('base64url');
        deps.db.transaction(() => {
          // Only this address's count for the name: the name's global count measures guessing from everywhere else.
          repo.throttle.clear(nameSourceKey);
          repo.sessions.insert({ idHash: sha256(id), adminId: a.id, csrf, source, createdAt: now, seenAt: now });
          audit.record({ actor: a.name, source, action: 'admin.login', target: a.name }, now);
        })();
        return { ok: true, admin: view(a), session: { id, csrf } };
      }));
    },

    /** The session behind a cookie value, or null (unknown, idle 30 min, older than 12 h, account gone). */
    session(id: string | undefined): Session | null {
      if (!id || id.length > 100) return null;
      const now = clock();
      const h = sha256(id);
      const s = repo.sessions.get(h);
      if (!s) return null;
      if (now - s.seenAt > SESSION_IDLE_MS || now - s.createdAt > SESSION_MAX_MS) {
        repo.sessions.delete(h);
        return null;
      }
      const a = repo.byId(s.adminId);
      if (!a) return null;
      if (now - s.seenAt > TOUCH_EVERY_MS) repo.sessions.touch(h, now);
      return { admin: { ...view(a), id: a.id }, csrf: s.csrf, createdAt: s.createdAt };
    },

    logout(id: string | undefined, source: string): void {
      if (!id) return;
      const h = sha256(id);
      const s = repo.sessions.get(h);
      if (!s) return;
      const a = repo.byId(s.adminId);
      deps.db.transaction(() => {
        repo.sessions.delete(h);
        audit.record({ actor: a?.name ?? '-', source, action: 'admin.logout', target: a?.name ?? null }, clock());
      })();
    },

    /** Drops expired sessions (called now and then by serve). */
    expireSessions: (): number => repo.sessions.expire(clock() - SESSION_IDLE_MS, clock() - SESSION_MAX_MS),
  };
}

export type AccountService = ReturnType<typeof accountService>;
