import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { RequestRecord } from '../core/request-record.js';
import type { PeerSet } from '../core/wire.js';
import type { Usage } from './budget.js';
import type { DraftRecord } from './recorder.js';
import { spoolWrites } from './spool-writes.js';
import { spoolFull } from './spool.js';

/**
 * The thread's program: its own connection to the spool (opened by openSpool first, which made
 * the tables), running spool-writes.ts one message at a time, in the order they were posted —
 * so sequence numbers follow the order of the appends — and answering each with its id.
 */
function threadMain(writes: typeof spoolWrites): void {
  // An eval'd worker is a CommonJS script: require, with the module paths resolved by the caller.
  const { parentPort, workerData } = require('node:worker_threads');
  const Database = require(workerData.sqlite);
  const db = new Database(workerData.path);
  let w: ReturnType<typeof spoolWrites> | null = null;
  let openError: { message: string; code?: string } | null = null;
  try {
    w = writes(db, workerData.maxBytes);
  } catch (e) {
    openError = { message: (e as Error).message, code: (e as { code?: string }).code };
  }
  parentPort.on('message', (m: { id: number; op: string; args: unknown[] }) => {
    if (m.op === 'close') {
      db.close();
      parentPort.postMessage({ id: m.id, ok: true });
      parentPort.close();
      return;
    }
    try {
      if (!w) throw Object.assign(new Error(openError!.message), { code: openError!.code });
      const value = (w as unknown as Record<string, (...a: unknown[]) => unknown>)[m.op]!(...m.args);
      parentPort.postMessage({ id: m.id, ok: true, value });
    } catch (e) {
      parentPort.postMessage({ id: m.id, ok: false, error: { message: (e as Error).message, code: (e as { code?: string }).code } });
    }
  });
}

type Answer = { id: number; ok: true; value?: unknown } | { id: number; ok: false; error: { message: string; code?: string } };

/**
 * The spool's writes on a thread of their own (issue 13): appending records, the write probe of
 * the audit trail (audit.ts), the acknowledged delete after a push with the gateway's figures,
 * and saving the peer set. Each commit's fsync (synchronous = FULL) then blocks that thread, not
 * the event loop that serves requests. Each call answers a promise: the records with their
 * sequence numbers, or the error (SQLITE_FULL, a full spool: WgoError INTERNAL, …) — the audit
 * trail decides on it as it did on a synchronous write. Calls run in the order they are made.
 *
 * The spool must have been opened (openSpool) first; the reads (pending records, the saved peer
 * set, sizes) stay on that connection, in WAL mode beside this one. The thread starts at once (so
 * the first record waits for no start-up); one that dies fails what it had not answered, and the
 * next call starts a new one.
 */
export function startSpoolThread(path: string, o: { maxBytes: number }) {
  const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
  const code = `(${threadMain.toString()})(${spoolWrites.toString()});`;
  let worker: Worker | null = null;
  let nextId = 1;
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let closing: Promise<void> | null = null;

  const start = (): Worker => {
    const w = new Worker(code, { eval: true, workerData: { sqlite, path, maxBytes: o.maxBytes } });
    w.on('message', (a: Answer) => {
      const p = waiting.get(a.id);
      waiting.delete(a.id);
      // Closing, the thread stays ref'd until it has exited: close()'s promise waits for that.
      if (waiting.size === 0 && !closing) w.unref();
      if (a.ok) p?.resolve(a.value);
      else p?.reject(Object.assign(new Error(a.error.message), a.error.code ? { code: a.error.code } : {}));
    });
    const gone = (why: string): void => {
      if (worker !== w) return;
      worker = null;
      for (const p of waiting.values()) p.reject(new Error(`the spool's writer thread ${why}`));
      waiting.clear();
    };
    w.on('error', (e) => gone(`failed: ${e.message}`));
    w.on('exit', (c) => gone(`exited (code ${c})`));
    // Idle, the thread does not keep the process alive (the guard's servers do); a write it has
    // not answered does (ref in call), so a process ending on its own still waits for its commit.
    w.unref();
    return w;
  };
  worker = start();
  const call = <T>(op: string, ...args: unknown[]): Promise<T> => {
    if (closing) return Promise.reject(new Error("the spool's writer thread is closed"));
    worker ??= start();
    const id = nextId++;
    const answer = new Promise<T>((resolve, reject) => waiting.set(id, { resolve: resolve as (v: unknown) => void, reject }));
    worker.ref();
    worker.postMessage({ id, op, args });
    return answer;
  };
  /** A full spool's error is a WgoError, as from the synchronous spool. */
  const full = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (e) {
      return spoolFull(() => {
        throw e;
      });
    }
  };

  return {
    /** Appends a batch in one transaction; the records with the sequence numbers they got. */
    async append(batch: DraftRecord[]): Promise<RequestRecord[]> {
      const seqs = await full(call<number[]>('append', batch.map((r) => JSON.stringify(r))));
      return batch.map((r, i) => ({ ...r, seq: seqs[i]! }));
    },
    /** One small committed write: rejects while the spool cannot be written. */
    probe: (): Promise<void> => full(call<void>('probe')),
    /** The gateway has everything up to seq; its figures from the same answer are saved in the same transaction. */
    ack: (seq: number, usage: Usage | null = null): Promise<void> => call<void>('ack', seq, usage ? JSON.stringify(usage) : null),
    saveUsage: (usage: Usage): Promise<void> => call<void>('put', 'usage', JSON.stringify(usage)),
    savePeerSet: (set: PeerSet): Promise<void> => call<void>('put', 'peerSet', JSON.stringify(set)),
    /** Answers what was asked before, then ends the thread (its connection closed). */
    close(): Promise<void> {
      if (closing) return closing;
      const w = worker;
      if (!w) return (closing = Promise.resolve());
      const id = nextId++;
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      const answered = new Promise<unknown>((resolve, reject) => waiting.set(id, { resolve, reject }));
      w.ref();
      w.postMessage({ id, op: 'close', args: [] });
      closing = answered.then(() => exited, () => exited);
      return closing;
    },
  };
}

export type SpoolThread = ReturnType<typeof startSpoolThread>;
