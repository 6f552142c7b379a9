import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { RequestRecord } from '../core/request-record.js';
import { WgoError } from '../errors.js';
import type { PeerSet } from './peer-set.js';
import type { DraftRecord } from './recorder.js';

/**
 * The guard's own small database: records waiting to be pushed to the
 * gateway (sequence numbers from AUTOINCREMENT, never reused, so the gateway
 * can drop a batch it already has), and the last peer set, so a guard that
 * restarts while the gateway is unreachable keeps enforcing it.
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
  };
  // A random id of this spool file: the gateway keys records by (guard, spool, seq), so a spool
  // deleted or restored from a backup starts a new sequence instead of reusing numbers.
  let epoch = s.get.get('spool') as string | undefined;
  if (!epoch) {
    epoch = randomBytes(16).toString('hex');
    s.put.run('spool', epoch);
  }
  const append = db.transaction((batch: DraftRecord[]) => {
    for (const r of batch) s.insert.run(JSON.stringify(r));
  });
  return {
    append: (batch: DraftRecord[]): void => append(batch),
    /** Oldest records not yet acknowledged, with their sequence numbers. */
    pending(limit: number, afterSeq = 0): RequestRecord[] {
      return (s.pending.all(afterSeq, limit) as { seq: number; body: string }[]).map((r) => ({ ...(JSON.parse(r.body) as DraftRecord), seq: r.seq }));
    },
    /** The gateway has everything up to seq. */
    ack: (seq: number): void => void s.ack.run(seq),
    count: (): number => s.count.get() as number,
    /** The spool's random id, sent with every push. */
    id: (): string => epoch!,
    savePeerSet: (set: PeerSet): void => void s.put.run('peerSet', JSON.stringify(set)),
    /** One small committed write (the time): throws while the spool cannot be written. */
    probe: (): void => void s.put.run('probe', String(Date.now())),
    loadPeerSet(): PeerSet | null {
      const v = s.get.get('peerSet') as string | undefined;
      return v ? (JSON.parse(v) as PeerSet) : null;
    },
    close: (): void => void db.close(),
  };
}

export type Spool = ReturnType<typeof openSpool>;
