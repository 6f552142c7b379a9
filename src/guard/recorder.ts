import { fitRecord, type RequestRecord } from '../core/request-record.js';

export type DraftRecord = Omit<RequestRecord, 'seq'>;

/** Records kept in memory at most while they cannot be written (a full disk): ~25 MB at worst. */
const MAX_BUFFERED = 50_000;

/**
 * Request records leave the request path at once: they are buffered and
 * written in one batch at most `intervalMs` later (or when `maxBatch` are
 * waiting), so a crash loses at most the last interval. A failed write keeps
 * the batch and tries again; while writes fail, at most `maxBuffered` records
 * wait in memory and newer ones are dropped (`onDrop`) — the oldest, those of
 * requests that were served, are kept.
 */
export function createRecorder(o: {
  write(batch: DraftRecord[]): void;
  intervalMs?: number;
  maxBatch?: number;
  maxBuffered?: number;
  onError(e: Error): void;
  onDrop?(n: number): void;
}) {
  const intervalMs = o.intervalMs ?? 1000;
  const maxBatch = o.maxBatch ?? 500;
  const maxBuffered = o.maxBuffered ?? MAX_BUFFERED;
  let buffer: DraftRecord[] = [];
  let timer: NodeJS.Timeout | undefined;

  /** Writes what is buffered; false when the write failed (the records stay buffered). */
  const flush = (): boolean => {
    clearTimeout(timer);
    timer = undefined;
    if (buffer.length === 0) return true;
    const batch = buffer;
    buffer = [];
    try {
      o.write(batch);
      return true;
    } catch (e) {
      buffer = batch.concat(buffer);
      o.onError(e as Error);
      timer ??= setTimeout(flush, intervalMs);
      return false;
    }
  };

  return {
    record(r: DraftRecord): void {
      if (buffer.length >= maxBuffered) {
        o.onDrop?.(1);
        return;
      }
      buffer.push(fitRecord(r));
      if (buffer.length >= maxBatch) setImmediate(flush);
      else timer ??= setTimeout(flush, intervalMs);
    },
    flush,
    pending: (): number => buffer.length,
    /** Stops the retry timer (shutdown; what is buffered stays unwritten). */
    stop: (): void => clearTimeout(timer),
  };
}

export type Recorder = ReturnType<typeof createRecorder>;
