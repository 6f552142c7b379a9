import { createHash, randomBytes } from 'node:crypto';
import { validatePeerName } from '../core/names.js';
import { WgoError } from '../errors.js';
import { auditRepository } from '../db/audit.js';
import { enrollmentRepository, type EnrollmentRow } from '../db/admins.js';
import type { Db } from '../db/open.js';
import { peerRepository } from '../db/peers.js';
import type { Actor, IssuedPeer, PeerService } from '../gateway/peer-service.js';

export interface EnrollmentView {
  id: number;
  peerName: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  state: 'open' | 'used' | 'expired' | 'cancelled';
  usedAt: string | null;
  usedFrom: string | null;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
/** 32 random bytes (256 bits), base64url: 43 characters. */
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

function toView(e: EnrollmentRow, now: number): EnrollmentView {
  const state = e.usedAt !== null ? 'used' : e.cancelledAt !== null ? 'cancelled' : e.expiresAt <= now ? 'expired' : 'open';
  return { id: e.id, peerName: e.peerName, createdBy: e.createdBy, createdAt: iso(e.createdAt)!, expiresAt: iso(e.expiresAt)!, state, usedAt: iso(e.usedAt), usedFrom: e.usedFrom };
}

/**
 * One-time enrollment links. An admin creates one for a peer name; the staff
 * member opens it on their own device and the peer is created right then, so
 * its private key exists only on that one page. The link is single use (a
 * conditional UPDATE claims it) and dies after `ttlMs` (15 minutes by default).
 */
export function enrollmentService(deps: { db: Db; peers: PeerService; ttlMs: number; clock?: () => number }) {
  const repo = enrollmentRepository(deps.db);
  const peers = peerRepository(deps.db);
  const audit = auditRepository(deps.db);
  const clock = deps.clock ?? Date.now;

  const live = (token: string, now: number): EnrollmentRow | null => {
    if (!TOKEN_RE.test(token)) return null;
    const e = repo.byHash(sha256(token));
    return e && e.usedAt === null && e.cancelledAt === null && e.expiresAt > now ? e : null;
  };

  return {
    /** Returns the token once; only its hash is stored. */
    create(input: { peerName: string; expiresInMs?: number | null }, who: Actor): { token: string; enrollment: EnrollmentView } {
      const name = validatePeerName(input.peerName);
      const now = clock();
      const token = randomBytes(32).toString('base64url');
      let id = 0;
      deps.db.transaction(() => {
        if (peers.liveByName(name)) throw new WgoError('CONFLICT', `a peer named ${name} exists already`);
        if (repo.openForName(name, now)) throw new WgoError('CONFLICT', `an open enrollment link for ${name} exists already; cancel it first`);
        id = repo.insert({ tokenHash: sha256(token), peerName: name, expiresInMs: input.expiresInMs ?? null, createdBy: who.actor, expiresAt: now + deps.ttlMs }, now);
        audit.record({ ...who, action: 'enrollment.create', target: name, details: { id, expiresAt: iso(now + deps.ttlMs) } }, now);
      })();
      return { token, enrollment: toView(repo.byId(id)!, now) };
    },

    list: (limit = 50): EnrollmentView[] => repo.recent(limit).map((e) => toView(e, clock())),

    cancel(id: number, who: Actor): EnrollmentView {
      const now = clock();
      const e = repo.byId(id);
      if (!e) throw new WgoError('NOT_FOUND', `no enrollment link ${id}`);
      deps.db.transaction(() => {
        if (!repo.cancel(id, now)) throw new WgoError('CONFLICT', `the link for ${e.peerName} is ${toView(e, now).state} already`);
        audit.record({ ...who, action: 'enrollment.cancel', target: e.peerName, details: { id } }, now);
      })();
      return toView(repo.byId(id)!, now);
    },

    /** The open link behind a token, or null (unknown, used, cancelled, expired): for the confirmation page. */
    peek(token: string): EnrollmentView | null {
      const now = clock();
      const e = live(token, now);
      return e ? toView(e, now) : null;
    },

    /**
     * Uses the link: claims it, then creates the peer. If creating fails the
     * claim is released (nothing half-done) and the error is thrown.
     */
    redeem(token: string, source: string): IssuedPeer | null {
      const now = clock();
      const e = live(token, now);
      if (!e || !repo.claim(e.id, source, now)) return null;
      const who: Actor = { actor: `enrollment:${e.createdBy}`, source };
      try {
        const issued = deps.peers.add({ name: e.peerName, expiresInMs: e.expiresInMs ?? undefined }, who);
        audit.record({ ...who, action: 'enrollment.use', target: e.peerName, details: { id: e.id } }, clock());
        return issued;
      } catch (err) {
        repo.unclaim(e.id);
        throw err;
      }
    },
  };
}

export type EnrollmentService = ReturnType<typeof enrollmentService>;
