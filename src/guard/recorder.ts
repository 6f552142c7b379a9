import { chargedTokens, fitRecord, type RequestRecord } from '../core/request-record.js';

export type DraftRecord = Omit<RequestRecord, 'seq'>;

/**
 * Request records leave the request path at once: they are buffered and
 * written in one batch at most `intervalMs` later (or when `maxBatch` are
 * waiting), so a crash loses at most the last interval. A record that charged
 * tokens is written at the next tick instead (with whatever else is waiting):
 * the daily budget after a restart counts it from the spool (guard/budget.ts).
 * A failed write keeps the batch and tries again.
 */
export function createRecorder(o: { write(batch: DraftRecord[]): void; intervalMs?: number; maxBatch?: number; onError(e: Error): void }) {
  const intervalMs = o.intervalMs ?? 1000;
  const maxBatch = o.maxBatch ?? 500;
  let buffer: DraftRecord[] = [];
  let timer: NodeJS.Timeout | undefined;
  let soon: NodeJS.Immediate | undefined;

  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    clearImmediate(soon);
    soon = undefined;
    if (buffer.length === 0) return;
    const batch = buffer;
    buffer = [];
    try {
      o.write(batch);
    } catch (e) {
      buffer = batch.concat(buffer);
      o.onError(e as Error);
      timer ??= setTimeout(flush, intervalMs);
    }
  };

  return {
    record(r: DraftRecord): void {
      buffer.push(fitRecord(r));
      if (buffer.length >= maxBatch || chargedTokens(r) > 0) soon ??= setImmediate(flush);
      else timer ??= setTimeout(flush, intervalMs);
    },
    flush,
    pending: (): number => buffer.length,
  };
}

export type Recorder = ReturnType<typeof createRecorder>;
