import { utcDay } from '../core/rate.js';
import { chargedTokens, type RequestRecord } from '../core/request-record.js';
import type { UsageFigures } from '../core/wire.js';

/**
 * Tokens each peer used today (UTC), as exactly as this guard can know it —
 * the ledger behind the daily budget.
 *
 *   used(peer) = max(floor, gateway + spooled + unspooled) + inFlight
 *
 * - `gateway`: what the gateway has stored for the peer today, from every guard,
 *   with `upTo`, the highest sequence number of this guard's spool it had stored
 *   when it counted (usage(): the sync API answers it with every push and on
 *   GET /v1/usage; the guard saves it in its spool with each acknowledgement).
 * - `spooled`: charges of this guard's records with a sequence number above
 *   `upTo` — in its spool, not yet counted by the gateway (spooled(), and at start
 *   restore() from the spool). Records at or below `upTo` are in `gateway`: never
 *   counted twice.
 * - `unspooled`: charges of requests that ended, whose records are not yet in the
 *   spool (charge(); spooled() moves them). The recorder writes such records
 *   within 50 ms (recorder.ts), so a crash loses at most those charges.
 * - `inFlight`: the running estimates of streams still generating (begin()).
 * - `floor`: a figure without a position (a peer set's tokensToday, or a gateway
 *   that predates usage): tokens only grow within a day, so it is a lower bound.
 *
 * A charge belongs to the UTC day its request started (the record's `at`), as at
 * the gateway. The day's figures are dropped when the day changes.
 *
 * Bound after a crash (of the guard, or of `serve` running it): everything charged
 * is in a record that reached the spool (SQLite, fsync) or the gateway's database,
 * except the charges of requests that ended in the last 50 ms and the running
 * estimates of streams then in flight. So a peer spends at most its budget plus
 * what its requests in flight at the crash (or ended 50 ms before it) generated —
 * each stream itself stopped near tokensPerDay + maxTokensPerRequest (charge.ts).
 */
export type Usage = Omit<UsageFigures, 'upTo'> & {
  /** As in UsageFigures (the gateway always says); null: unknown, the figures are only a floor (a peer set's tokensToday). */
  upTo: number | null;
};

/** A charge carried by a record now in the spool (or the database): its sequence number, peer and tokens. */
type Entry = { seq: number; peer: string; tokens: number };
type ChargedRecord = Pick<RequestRecord, 'seq' | 'peer' | 'at' | 'promptTokens' | 'evalTokens' | 'estimatedTokens'>;

export function createBudget() {
  let day = '';
  /** The current day's bounds (ms), so most calls compare numbers instead of formatting a date. */
  let dayStart = 0;
  let dayEnd = -1;
  const floor = new Map<string, number>();
  let gateway = new Map<string, number>();
  let upTo = 0;
  /** Charges in the spool above upTo; `spooledSum` is their total per peer. */
  let entries: Entry[] = [];
  const spooledSum = new Map<string, number>();
  const unspooled = new Map<string, number>();
  const inFlight = new Map<string, Set<{ tokens: number }>>();

  const roll = (now: number): void => {
    if (now >= dayStart && now < dayEnd) return;
    const d = utcDay(now);
    dayStart = Date.parse(`${d}T00:00:00Z`);
    dayEnd = dayStart + 86_400_000;
    if (d !== day) {
      day = d;
      floor.clear();
      gateway = new Map();
      upTo = 0;
      entries = [];
      spooledSum.clear();
      unspooled.clear();
    }
  };
  const today = (at: number): boolean => at >= dayStart && at < dayEnd;
  const bump = (m: Map<string, number>, peer: string, n: number): void => {
    const v = (m.get(peer) ?? 0) + n;
    if (v > 0) m.set(peer, v);
    else m.delete(peer);
  };
  const settled = (peer: string): number => {
    const n = (gateway.get(peer) ?? 0) + (spooledSum.get(peer) ?? 0) + (unspooled.get(peer) ?? 0);
    return Math.max(floor.get(peer) ?? 0, n);
  };
  const running = (peer: string): number => {
    let n = 0;
    for (const r of inFlight.get(peer) ?? []) n += r.tokens;
    return n;
  };

  return {
    /** Tokens the peer used today, its streams in flight included. */
    used(peer: string, now: number): number {
      roll(now);
      return settled(peer) + running(peer);
    },
    /** A request that started at `at` ended and charged `tokens`; its record is on its way to the spool. */
    charge(peer: string, tokens: number, at: number, now: number): void {
      roll(now);
      if (tokens > 0 && today(at)) bump(unspooled, peer, tokens);
    },
    /** Records now in the spool (or the database), with their sequence numbers: their charges move from unspooled. */
    spooled(records: readonly ChargedRecord[], now: number): void {
      roll(now);
      for (const r of records) {
        const tokens = chargedTokens(r);
        if (r.peer === null || tokens <= 0 || !today(r.at)) continue;
        bump(unspooled, r.peer, -tokens);
        if (r.seq <= upTo) continue;
        entries.push({ seq: r.seq, peer: r.peer, tokens });
        bump(spooledSum, r.peer, tokens);
      }
    },
    /**
     * At start: the records still in the spool (the gateway may not have them) and the
     * last usage saved with an acknowledgement.
     */
    restore(records: readonly ChargedRecord[], saved: Usage | null, now: number): void {
      roll(now);
      if (saved) this.usage(saved, now);
      this.spooled(records, now);
    },
    /** The gateway's figures for today (see Usage); entries it now includes are dropped. */
    usage(u: Usage, now: number): void {
      roll(now);
      if (u.day !== day) return;
      if (u.upTo === null) {
        for (const [peer, n] of Object.entries(u.tokensToday)) floor.set(peer, Math.max(floor.get(peer) ?? 0, n));
        return;
      }
      if (u.upTo < upTo) return; // older than what is applied
      gateway = new Map(Object.entries(u.tokensToday));
      upTo = u.upTo;
      const keep: Entry[] = [];
      for (const e of entries) {
        if (e.seq > upTo) keep.push(e);
        else bump(spooledSum, e.peer, -e.tokens);
      }
      entries = keep;
    },
    /** Peer-set figures (no position): a lower bound. */
    seed(forDay: string, tokens: Record<string, number>, now: number): void {
      this.usage({ day: forDay, tokensToday: tokens, upTo: null }, now);
    },
    /** A generating stream: its running estimate counts in used() until end(). */
    begin(peer: string): { set(tokens: number): void; end(): void } {
      const r = { tokens: 0 };
      let set = inFlight.get(peer);
      if (!set) inFlight.set(peer, (set = new Set()));
      set.add(r);
      return {
        set: (tokens: number): void => void (r.tokens = tokens),
        end: (): void => {
          set!.delete(r);
          if (set!.size === 0 && inFlight.get(peer) === set) inFlight.delete(peer);
        },
      };
    },
  };
}

export type Budget = ReturnType<typeof createBudget>;
