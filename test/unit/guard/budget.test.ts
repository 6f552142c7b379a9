/**
 * Issue 10, item 1: the daily budget's ledger (guard/budget.ts) across a
 * restart. A guard's records go through its real spool (SQLite); the gateway's
 * figures come with acknowledgements. A new ledger built from the spool and
 * the saved figures — what a restarted guard does — knows today's spending:
 * nothing forgotten, nothing counted twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { utcDay } from '../../../src/core/rate.js';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { createBudget, type Usage } from '../../../src/guard/budget.js';
import type { DraftRecord } from '../../../src/guard/recorder.js';
import { openSpool, type Spool } from '../../../src/guard/spool.js';

const NOW = Date.parse('2026-12-04T15:00:00Z');
const DAY = utcDay(NOW);
const DAY_START = Date.parse(`${DAY}T00:00:00Z`);

function rec(peer: string, tokens: { p?: number | null; e?: number | null; est?: number | null }, at = NOW - 1000): DraftRecord {
  return {
    at, peer, certSerial: 'ab', source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model: 'llama3.2:latest',
    promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 10, bytesOut: 100,
    promptTokens: tokens.p ?? null, evalTokens: tokens.e ?? null, estimatedTokens: tokens.est ?? null, ttfbMs: 1, durationMs: 2, refusal: null,
  };
}

let dir: string;
let spools: Spool[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-budget-'));
  spools = [];
});
afterEach(() => {
  for (const s of spools) s.close();
  rmSync(dir, { recursive: true, force: true });
});
const spoolFile = (): Spool => {
  const s = openSpool(join(dir, 'spool.db'));
  spools.push(s);
  return s;
};

/** One guard process: its ledger fed as main.ts feeds it (exchange charges, recorder writes, sync answers). */
function process1(spool: Spool) {
  const budget = createBudget();
  budget.restore(spool.charges(DAY_START), spool.loadUsage(), NOW);
  return {
    budget,
    /** A request ended: charged, then its record written to the spool. */
    serve(r: DraftRecord): RequestRecord {
      budget.charge(r.peer!, (r.estimatedTokens ?? (r.promptTokens ?? 0) + (r.evalTokens ?? 0)), r.at, NOW);
      const [stored] = spool.append([r]);
      budget.spooled([stored!], NOW);
      return stored!;
    },
    /** The gateway stored everything up to `seq` and answered these figures with it. */
    ack(seq: number, usage: Usage): void {
      spool.ack(seq, usage);
      budget.usage(usage, NOW);
    },
  };
}

describe('the daily budget across a restart', () => {
  test('spending acknowledged by the gateway, spending still in the spool, estimates: all remembered, nothing twice', () => {
    const s1 = spoolFile();
    const g1 = process1(s1);
    const a = g1.serve(rec('alice', { p: 10, e: 90 })); // 100
    g1.serve(rec('alice', { p: 5, e: 45 })); // 50
    // The gateway has the first record; its figure for alice (400) also holds another guard's 300.
    g1.ack(a.seq, { day: DAY, tokensToday: { alice: 400, bob: 7 }, upTo: a.seq });
    g1.serve(rec('alice', { est: 25 })); // a stream cut early: charged by estimate
    g1.serve(rec('bob', { p: 1, e: 2 }));
    expect(g1.budget.used('alice', NOW)).toBe(400 + 50 + 25);
    expect(g1.budget.used('bob', NOW)).toBe(7 + 3);
    s1.close();

    // Restart (a crash: nothing more was acknowledged). The cached peer set's morning figure is a floor only.
    const s2 = spoolFile();
    const g2 = process1(s2);
    g2.budget.seed(DAY, { alice: 120 }, NOW);
    expect(g2.budget.used('alice', NOW)).toBe(475);
    expect(g2.budget.used('bob', NOW)).toBe(10);

    // The gateway then gets the rest and answers its figures: the same total, not more.
    const pending = s2.pending(100);
    g2.ack(pending.at(-1)!.seq, { day: DAY, tokensToday: { alice: 475, bob: 10 }, upTo: pending.at(-1)!.seq });
    expect(g2.budget.used('alice', NOW)).toBe(475);
    expect(s2.count()).toBe(0);

    // And a second restart with an empty spool still knows it (figures saved with the acknowledgement).
    s2.close();
    const g3 = process1(spoolFile());
    expect(g3.budget.used('alice', NOW)).toBe(475);
    expect(g3.budget.used('bob', NOW)).toBe(10);
  });

  test('records the gateway has stored but did not acknowledge (the answer was lost) are not counted twice', () => {
    const s1 = spoolFile();
    const g1 = process1(s1);
    const r1 = g1.serve(rec('alice', { p: 10, e: 10 }));
    const r2 = g1.serve(rec('alice', { p: 10, e: 10 }));
    s1.close();
    const g2 = process1(spoolFile());
    expect(g2.budget.used('alice', NOW)).toBe(40);
    // GET /v1/usage: the gateway stored both (upTo r2) — the spool still holds them, they count once.
    g2.budget.usage({ day: DAY, tokensToday: { alice: 40 }, upTo: r2.seq }, NOW);
    expect(g2.budget.used('alice', NOW)).toBe(40);
    // Older figures (upTo r1) arriving late change nothing.
    g2.budget.usage({ day: DAY, tokensToday: { alice: 20 }, upTo: r1.seq }, NOW);
    expect(g2.budget.used('alice', NOW)).toBe(40);
  });

  test("yesterday's records and figures do not count today; a day change starts from zero", () => {
    const s1 = spoolFile();
    const g1 = process1(s1);
    g1.serve(rec('alice', { p: 1, e: 1000 }, DAY_START - 1));
    g1.serve(rec('alice', { p: 1, e: 9 }));
    const g2 = process1(s1);
    g2.budget.usage({ day: utcDay(DAY_START - 1), tokensToday: { alice: 5000 }, upTo: 0 }, NOW);
    expect(g2.budget.used('alice', NOW)).toBe(10);
    expect(g2.budget.used('alice', DAY_START + 86_400_000)).toBe(0);
  });

  test('streams in flight count until they end; then their charge does', () => {
    const b = createBudget();
    const s = b.begin('alice');
    s.set(30);
    const t = b.begin('alice');
    t.set(5);
    expect(b.used('alice', NOW)).toBe(35);
    s.end();
    b.charge('alice', 31, NOW - 10, NOW);
    expect(b.used('alice', NOW)).toBe(36);
    t.end();
    expect(b.used('alice', NOW)).toBe(31);
  });
});
