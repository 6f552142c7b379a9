import { chargedTokens, fitRecord, type RequestRecord } from '../core/request-record.js';

export type DraftRecord = Omit<RequestRecord, 'seq'>;

/** Records kept in memory at most while they cannot be written (a full disk): ~25 MB at worst. */
const MAX_BUFFERED = 50_000;

/**
 * Request records leave the request path at once: they are buffered and
 * written in one batch at most `intervalMs` later (or when `maxBatch` are
 * waiting), so a crash loses at most the last interval. A record that charged
 * tokens is written within `chargedMs` (50 ms) instead, with whatever else is
 * waiting: the daily budget after a restart counts it from the spool
 * (guard/budget.ts). Not at once: the spool commits with fsync (~3 ms on a
 * virtual disk), so writes are coalesced to at most 20 a second.
 * `write` may answer a promise (the spool's writer thread, spool-thread.ts): then
 * one write is under way at a time — a flush meanwhile waits for it and writes
 * what came since — and flush() answers a promise too.
 * A failed write keeps the batch and tries again; while writes fail, at most
 * `maxBuffered` records wait in memory and newer ones are dropped (`onDrop`) —
 * the oldest, those of requests that were served, are kept.
 */
export function createRecorder(o: {
  write(batch: DraftRecord[]): void | Promise<void>;
  intervalMs?: number;
  chargedMs?: number;
  maxBatch?: number;
  maxBuffered?: number;
  onError(e: Error): void;
  onDrop?(n: number): void;
}) {
  const intervalMs = o.intervalMs ?? 1000;
  const chargedMs = Math.min(o.chargedMs ?? 50, intervalMs);
  const maxBatch = o.maxBatch ?? 500;
  const maxBuffered = o.maxBuffered ?? MAX_BUFFERED;
  let buffer: DraftRecord[] = [];
  let timer: NodeJS.Timeout | undefined;
  let soon: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;

  /** The write under way (an asynchronous `write`): its outcome. */
  let writing: Promise<boolean> | null = null;
  let writingCount = 0;
  let stopped = false;

  const failed = (batch: DraftRecord[], e: Error): false => {
    buffer = batch.concat(buffer);
    o.onError(e);
    if (!stopped) timer ??= setTimeout(flush, intervalMs);
    return false;
  };
  /** Writes what is buffered; false when the write failed (the records stay buffered). */
  const flush = (): boolean | Promise<boolean> => {
    clearTimeout(timer);
    timer = undefined;
    clearTimeout(soon);
    soon = undefined;
    clearImmediate(immediate);
    immediate = undefined;
    if (writing) return writing.then(() => flush());
    if (buffer.length === 0) return true;
    const batch = buffer;
    buffer = [];
    let done: void | Promise<void>;
    try {
      done = o.write(batch);
    } catch (e) {
      return failed(batch, e as Error);
    }
    if (!done) return true;
    writingCount = batch.length;
    const w: Promise<boolean> = done.then(
      () => true,
      (e: unknown) => failed(batch, e as Error),
    ).finally(() => {
      if (writing !== w) return;
      writing = null;
      writingCount = 0;
    });
    writing = w;
    return w;
  };

  return {
    record(r: DraftRecord): void {
      if (buffer.length >= maxBuffered) {
        o.onDrop?.(1);
        return;
      }
      buffer.push(fitRecord(r));
      if (buffer.length >= maxBatch) immediate ??= setImmediate(flush);
      else if (chargedTokens(r) > 0) soon ??= setTimeout(flush, chargedMs);
      else timer ??= setTimeout(flush, intervalMs);
    },
    flush,
    /** Records not yet written (those of a write under way included). */
    pending: (): number => buffer.length + writingCount,
    /** The write under way, if any (shutdown waits for it before drain()). */
    idle: (): Promise<boolean> | null => writing,
    /** Takes what is buffered out of the recorder (shutdown, after a flush that failed). */
    drain(): DraftRecord[] {
      const left = buffer;
      buffer = [];
      return left;
    },
    /** Stops the timers (shutdown; what is buffered stays unwritten unless flushed first). */
    stop(): void {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(soon);
      clearImmediate(immediate);
    },
  };
}

export type Recorder = ReturnType<typeof createRecorder>;
