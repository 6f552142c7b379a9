import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Db } from '../../src/db/open.js';

export const DAY = 86_400_000;
/** A fixed "now": 2026-06-15 12:00 UTC. */
export const NOW = Date.UTC(2026, 5, 15, 12);

/** A database file in a fresh directory, with `peers` peers (ids 1..n). */
export function retentionDb(peers = 3): { db: Db; path: string; dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'wgo-retention-'));
  const path = join(dir, 'wg-ollama.db');
  const db = openDatabase(path);
  const ins = db.prepare(`INSERT INTO peers (name, address, address_int, public_key, status, created_at, updated_at) VALUES (?, ?, ?, ?, 'active', 0, 0)`);
  for (let i = 1; i <= peers; i++) ins.run(`p${i}`, `10.66.0.${i + 1}`, 0x0a420001 + i, Buffer.alloc(32, i).toString('base64'));
  return { db, path, dir, cleanup: () => { try { db.close(); } catch { /* closed */ } rmSync(dir, { recursive: true, force: true }); } };
}

let seq = 0;
/** Request records at the given times (guard 'g1', spool 's1' unless told), each charging `tokens` to peer 1. */
export function addRequests(db: Db, ats: number[], o: { guard?: string; spool?: string; tokens?: number; pad?: number } = {}): void {
  const ins = db.prepare(`INSERT INTO requests (guard, spool, guard_seq, at, peer_id, peer, source, status, bytes_in, bytes_out, prompt_tokens, eval_tokens, duration_ms, prompt_sha256)
    VALUES (@guard, @spool, @seq, @at, 1, 'p1', '10.66.0.2', 200, 10, 20, @tokens, 0, 5, @pad)`);
  db.transaction(() => {
    for (const at of ats) ins.run({ guard: o.guard ?? 'g1', spool: o.spool ?? 's1', seq: ++seq, at, tokens: o.tokens ?? 1, pad: 'x'.repeat(o.pad ?? 64) });
  })();
}

export function addEvents(db: Db, ats: number[]): void {
  const ins = db.prepare(`INSERT INTO connection_events (at, peer_id, kind, endpoint) VALUES (?, 2, 'handshake', '198.51.100.7:40000')`);
  db.transaction(() => { for (const at of ats) ins.run(at); })();
}

export function addAudit(db: Db, ats: number[], pad = 0): void {
  const ins = db.prepare(`INSERT INTO audit_log (at, actor, action, target, source, details) VALUES (?, 'root', 'peer.add', 'p1', 'cli', ?)`);
  db.transaction(() => { for (const at of ats) ins.run(at, pad ? JSON.stringify({ pad: 'a'.repeat(pad) }) : null); })();
}

/** `n` times evenly spread from `from` (inclusive) one step apart. */
export const times = (from: number, n: number, stepMs: number): number[] => Array.from({ length: n }, (_, i) => from + i * stepMs);

export const count = (db: Db, table: string, where = '1'): number => db.prepare(`SELECT count(*) FROM ${table} WHERE ${where}`).pluck().get() as number;
