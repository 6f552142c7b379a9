import { utcDay } from '../core/rate.js';

/**
 * Tokens each peer used today (UTC), counted from Ollama's final counts as
 * requests end. `seed` takes what the gateway knows (all guards, earlier
 * runs); the larger of the two counts is used, so a restart forgets nothing
 * the gateway has and nothing is counted twice.
 */
export function createBudget() {
  let day = '';
  /** The current day's bounds (ms), so most calls compare numbers instead of formatting a date. */
  let dayStart = 0;
  let dayEnd = -1;
  const local = new Map<string, number>();
  const seeded = new Map<string, number>();
  const roll = (now: number): void => {
    if (now >= dayStart && now < dayEnd) return;
    const d = utcDay(now);
    dayStart = Date.parse(`${d}T00:00:00Z`);
    dayEnd = dayStart + 86_400_000;
    if (d !== day) {
      day = d;
      local.clear();
      seeded.clear();
    }
  };
  return {
    used(peer: string, now: number): number {
      roll(now);
      return Math.max(local.get(peer) ?? 0, seeded.get(peer) ?? 0);
    },
    add(peer: string, tokens: number, now: number): void {
      roll(now);
      local.set(peer, (local.get(peer) ?? 0) + tokens);
    },
    seed(forDay: string, tokens: Record<string, number>, now: number): void {
      roll(now);
      if (forDay !== day) return;
      for (const [peer, n] of Object.entries(tokens)) seeded.set(peer, Math.max(seeded.get(peer) ?? 0, n));
    },
  };
}

export type Budget = ReturnType<typeof createBudget>;
