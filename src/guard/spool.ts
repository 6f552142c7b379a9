import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { RequestRecord } from '../core/request-record.js';
import { parseWire, peerSetSchema, type PeerSet } from '../core/wire.js';
import { WgoError } from '../errors.js';
import type { Usage } from './budget.js';
import type { DraftRecord } from './recorder.js';

/**
 * The guard's own small database: records waiting to be pushed to the
 * gateway (sequence numbers from AUTOINCREMENT, never reused, so the gateway
 * can drop a batch it already has), and the last peer set, so a guard that
 * restarts while the gateway is unreachable keeps enforcing it — and, for the
 * daily budget, the gateway's token figures saved with each acknowledgement
 * (so every record deleted here is counted in the saved figures).
 */
export function openSpool(path: string) {
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (e) {
    throw new WgoError('NOT_INITIALIZED', `cannot open the guard spool ${path}: ${(e as Error).message}`, { cause: e });
  }
  db.pragma('journal_mode = WAL');
  // FULL: a committed record survives a power cut, so its sequence number is never handed out twice.
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec(`
    CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL) STRICT;
    CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  `);
  const s = {
    insert: db.prepare(`INSERT INTO records (body) VALUES (?)`),
    pending: db.prepare(`SELECT seq, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?`),
    ack: db.prepare(`DELETE FROM records WHERE seq <= ?`),
    count: db.prepare(`SELECT count(*) FROM records`).pluck(),
    get: db.prepare(`SELECT value FROM kv WHERE key = ?`).pluck(),
    put: db.prepare(`INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
    // What a record charged (core/request-record.ts chargedTokens), read without parsing every body in JS.
    charged: db.prepare(`SELECT seq, json_extract(body, '$.peer') AS peer, json_extract(body, '$.at') AS at,
        json_extract(body, '$.promptTokens') AS promptTokens, json_extract(body, '$.evalTokens') AS evalTokens,
        json_extract(body, '$.estimatedTokens') AS estimatedTokens
      FROM records WHERE json_extract(body, '$.at') >= ? AND json_extract(body, '$.peer') IS NOT NULL ORDER BY seq`),
  };
  // A random id of this spool file: the gateway keys records by (guard, spool, seq), so a spool
  // deleted or restored from a backup starts a new sequence instead of reusing numbers.
  let epoch = s.get.get('spool') as string | undefined;
  if (!epoch) {
    epoch = randomBytes(16).toString('hex');
    s.put.run('spool', epoch);
  }
  const append = db.transaction((batch: DraftRecord[]): RequestRecord[] =>
    batch.map((r) => ({ ...r, seq: Number(s.insert.run(JSON.stringify(r)).lastInsertRowid) })));
  const ackWithUsage = db.transaction((seq: number, usage: Usage | null) => {
    if (usage) s.put.run('usage', JSON.stringify(usage));
    s.ack.run(seq);
  });
  return {
    /** Appends a batch in one transaction; returns the records with the sequence numbers they got. */
    append: (batch: DraftRecord[]): RequestRecord[] => append(batch),
    /** Oldest records not yet acknowledged, with their sequence numbers. */
    pending(limit: number, afterSeq = 0): RequestRecord[] {
      return (s.pending.all(afterSeq, limit) as { seq: number; body: string }[]).map((r) => ({ ...(JSON.parse(r.body) as DraftRecord), seq: r.seq }));
    },
    /**
     * The gateway has everything up to seq; `usage` is its token figures from the same answer,
     * saved in the same transaction (they include every record deleted here).
     */
    ack: (seq: number, usage: Usage | null = null): void => ackWithUsage(seq, usage),
    /** The gateway's last token figures (from an acknowledgement or GET /v1/usage). */
    saveUsage: (usage: Usage): void => void s.put.run('usage', JSON.stringify(usage)),
    loadUsage(): Usage | null {
      const v = s.get.get('usage') as string | undefined;
      return v ? (JSON.parse(v) as Usage) : null;
    },
    /** The charges of records not yet acknowledged whose requests started at or after `since` (budget.restore). */
    charges(since: number): Pick<RequestRecord, 'seq' | 'peer' | 'at' | 'promptTokens' | 'evalTokens' | 'estimatedTokens'>[] {
      return s.charged.all(since) as Pick<RequestRecord, 'seq' | 'peer' | 'at' | 'promptTokens' | 'evalTokens' | 'estimatedTokens'>[];
    },
    count: (): number => s.count.get() as number,
    /** The spool's random id, sent with every push. */
    id: (): string => epoch!,
    savePeerSet: (set: PeerSet): void => void s.put.run('peerSet', JSON.stringify(set)),
    /** One small committed write (the time): throws while the spool cannot be written. */
    probe: (): void => void s.put.run('probe', String(Date.now())),
    /**
     * The last peer set saved, read with the wire schema as if the gateway had sent it: a set
     * saved by an older release gets the defaults of the fields added since. One that does not
     * fit throws (BAD_INPUT, naming the field).
     */
    loadPeerSet(): PeerSet | null {
      const v = s.get.get('peerSet') as string | undefined;
      return v ? parseWire(peerSetSchema, v, `peer set saved in the guard spool ${path}`) : null;
    },
    close: (): void => void db.close(),
  };
}

export type Spool = ReturnType<typeof openSpool>;
