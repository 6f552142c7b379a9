import type Database from 'better-sqlite3';

/**
 * Every write the guard's spool makes, on one connection: the synchronous spool (spool.ts) and
 * the spool's writer thread (spool-thread.ts) both run exactly this. It is self-contained — it
 * names nothing outside its own body (types aside) — because the writer thread runs its source
 * text (Function.prototype.toString), so that the thread needs no module file of its own.
 *
 * Errors thrown are plain Errors; a full spool's has `code` 'INTERNAL' (like WgoError's).
 */
export function spoolWrites(db: Database.Database, maxBytes: number) {
  /** Free pages given back per step after an acknowledgement (4 MiB at 4 KiB pages). */
  const VACUUM_PAGES = 1024;
  // Per connection: FULL, a committed record survives a power cut, so its sequence number is never handed out twice.
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  const pages = (name: string): number => db.pragma(name, { simple: true }) as number;
  const insert = db.prepare(`INSERT INTO records (body) VALUES (?)`);
  const ack = db.prepare(`DELETE FROM records WHERE seq <= ?`);
  const put = db.prepare(`INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`);
  const usedBytes = (): number => (pages('page_count') - pages('freelist_count')) * pages('page_size');
  /**
   * The spool holds only records the gateway has not acknowledged, and none is ever deleted before
   * it is: at the ceiling, writes fail like on a full disk, and the guard's auditFailure decides
   * (audit.ts: "refuse" answers 503, "serve" serves unrecorded, loudly) until acknowledgements free room.
   */
  const roomLeft = (): void => {
    const used = usedBytes();
    if (used >= maxBytes) {
      throw Object.assign(new Error(`the guard spool is full (${used} bytes used, spool.maxBytes ${maxBytes}): records wait for the gateway to take them`), { code: 'INTERNAL' });
    }
  };
  const append = db.transaction((bodies: string[]): number[] => bodies.map((b) => Number(insert.run(b).lastInsertRowid)));
  const ackWithUsage = db.transaction((seq: number, usage: string | null) => {
    if (usage !== null) put.run('usage', usage);
    ack.run(seq);
  });
  return {
    /** Appends the records (JSON bodies) in one transaction; returns their sequence numbers. Throws when the spool is full. */
    append(bodies: string[]): number[] {
      roomLeft();
      return append(bodies);
    },
    /** Deletes everything up to seq and saves the gateway's figures (JSON) in one transaction; then gives free pages back, a bounded step at a time. */
    ack(seq: number, usage: string | null): void {
      ackWithUsage(seq, usage);
      if (pages('auto_vacuum') !== 2) return;
      for (let i = 0; i < 64 && pages('freelist_count') > 0; i++) db.pragma(`incremental_vacuum(${VACUUM_PAGES})`);
    },
    /** One key of the kv table (the peer set, the gateway's figures). */
    put(key: string, value: string): void {
      put.run(key, value);
    },
    /** One small committed write (the time): throws while the spool cannot be written. */
    probe(): void {
      roomLeft();
      put.run('probe', String(Date.now()));
    },
    usedBytes,
  };
}

export type SpoolWrites = ReturnType<typeof spoolWrites>;
