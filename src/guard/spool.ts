import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { RequestRecord } from '../core/request-record.js';
import { parseWire, peerSetSchema, type PeerSet } from '../core/wire.js';
import { WgoError } from '../errors.js';
import type { Usage } from './budget.js';
import { DEFAULT_SPOOL_MAX_BYTES } from './config.js';
import type { DraftRecord } from './recorder.js';
import { spoolWrites } from './spool-writes.js';

/** An older spool file (auto_vacuum none) up to this size is rebuilt once at open. */
const VACUUM_AT_OPEN_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The guard's own small database: records waiting to be pushed to the
 * gateway (sequence numbers from AUTOINCREMENT, never reused, so the gateway
 * can drop a batch it already has), and the last peer set, so a guard that
 * restarts while the gateway is unreachable keeps enforcing it — and, for the
 * daily budget, the gateway's token figures saved with each acknowledgement
 * (so every record deleted here is counted in the saved figures). Its used size is bounded by
 * `maxBytes`: a full spool refuses writes (spool-writes.ts) and deletes nothing unacknowledged.
 */
export function openSpool(path: string, o: { maxBytes?: number } = {}) {
  const maxBytes = o.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES;
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (e) {
    throw new WgoError('NOT_INITIALIZED', `cannot open the guard spool ${path}: ${(e as Error).message}`, { cause: e });
  }
  // Space freed by acknowledgements goes back to the file system (spool-writes.ts, ack): set on a new file
  // before its first page; an older small spool gets it from one VACUUM now.
  if ((db.pragma('page_count', { simple: true }) as number) === 0) db.pragma('auto_vacuum = INCREMENTAL');
  else if ((db.pragma('auto_vacuum', { simple: true }) as number) !== 2 && (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number) <= VACUUM_AT_OPEN_MAX_BYTES) {
    db.pragma('auto_vacuum = INCREMENTAL');
    db.exec('VACUUM');
  }
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL) STRICT;
    CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  `);
  // Every write (synchronous = FULL) is in spool-writes.ts, which the spool's writer thread runs too.
  const w = spoolWrites(db, maxBytes);
  const s = {
    pending: db.prepare(`SELECT seq, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?`),
    count: db.prepare(`SELECT count(*) FROM records`).pluck(),
    oldestAt: db.prepare(`SELECT json_extract(body, '$.at') FROM records ORDER BY seq LIMIT 1`).pluck(),
    get: db.prepare(`SELECT value FROM kv WHERE key = ?`).pluck(),
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
    w.put('spool', epoch);
  }
  const usedBytes = w.usedBytes;
  return {
    /** Appends a batch in one transaction; returns the records with the sequence numbers they got. Throws when the spool is full. */
    append(batch: DraftRecord[]): RequestRecord[] {
      const seqs = spoolFull(() => w.append(batch.map((r) => JSON.stringify(r))));
      return batch.map((r, i) => ({ ...r, seq: seqs[i]! }));
    },
    /** Used bytes, the file's size (pages), the ceiling, records waiting and the oldest one's time (metrics, doctor). */
    size: () => ({
      usedBytes: usedBytes(),
      fileBytes: (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number),
      maxBytes,
      records: s.count.get() as number,
      oldestAt: (s.oldestAt.get() as number | undefined) ?? null,
    }),
    /** Oldest records not yet acknowledged, with their sequence numbers. */
    pending(limit: number, afterSeq = 0): RequestRecord[] {
      return (s.pending.all(afterSeq, limit) as { seq: number; body: string }[]).map((r) => ({ ...(JSON.parse(r.body) as DraftRecord), seq: r.seq }));
    },
    /**
     * The gateway has everything up to seq; `usage` is its token figures from the same answer,
     * saved in the same transaction (they include every record deleted here).
     */
    ack(seq: number, usage: Usage | null = null): void {
      w.ack(seq, usage ? JSON.stringify(usage) : null);
    },
    /** The gateway's last token figures (from an acknowledgement or GET /v1/usage). */
    saveUsage: (usage: Usage): void => w.put('usage', JSON.stringify(usage)),
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
    savePeerSet: (set: PeerSet): void => w.put('peerSet', JSON.stringify(set)),
    /** One small committed write (the time): throws while the spool cannot be written. */
    probe: (): void => spoolFull(() => w.probe()),
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

/** A full spool's error (spool-writes.ts) as the WgoError it is. */
export function spoolFull<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if ((e as { code?: string }).code === 'INTERNAL' && !(e instanceof WgoError)) throw new WgoError('INTERNAL', (e as Error).message, { cause: e });
    throw e;
  }
}
