import type { Refusal } from '../core/policy.js';
import type { GuardMetrics } from './metrics.js';
import type { RequestRecord } from '../core/request-record.js';
import { createRecorder, type DraftRecord } from './recorder.js';
import type { GuardLog } from './server.js';

/**
 * What the guard does while request records cannot be written (a full disk, a read-only file
 * system): 'refuse' answers every request 503 audit_unavailable (nothing is served unrecorded);
 * 'serve' keeps serving and counts those requests in wgo_guard_unrecorded_requests_total.
 */
export type AuditFailure = 'refuse' | 'serve';

/**
 * The part of the spool the audit trail writes to: synchronous (the gateway's database in
 * single-box mode, local-audit.ts) or answering promises (the guard spool's writer thread,
 * spool-thread.ts), in which case no write blocks the event loop.
 */
export interface AuditSpool {
  /** Writes the batch; returns (or resolves to) the records with their spool seqs. */
  append(batch: DraftRecord[]): RequestRecord[] | Promise<RequestRecord[]>;
  /** One small committed write: throws (or rejects) when the spool still cannot be written. */
  probe(): void | Promise<void>;
}

export interface AuditState {
  ok: boolean;
  mode: AuditFailure;
  /** Why records cannot be written (null while they can). */
  lastError: string | null;
  /** Records waiting in memory to be written. */
  buffered: number;
}

/**
 * The guard's request records on their way to the spool (recorder.ts), and what the guard knows
 * about being able to write them. A write that throws (SQLITE_FULL, SQLITE_READONLY,
 * SQLITE_IOERR, anything) marks the audit trail unavailable — logged, wgo_guard_audit_ok 0,
 * wgo_guard_spool_write_failures_total — and from then on a probe runs every `probeMs`: the
 * buffered records are written first, or, with none, one small write (`spool.probe()`); the first
 * that succeeds makes the trail available again, without a restart, nothing buffered lost.
 * A probe is needed because in 'refuse' mode no request is served, so none would be recorded.
 */
export function createAuditTrail(o: {
  spool: AuditSpool;
  mode: AuditFailure;
  metrics: Pick<GuardMetrics, 'auditOk' | 'spoolWriteFailure' | 'unrecorded' | 'recordsDropped'>;
  log: GuardLog;
  /** Records were written, with their seqs (the budget's ledger counts them; the sync client pushes them). */
  onWritten?(records: RequestRecord[]): void;
  intervalMs?: number;
  probeMs?: number;
  maxBuffered?: number;
}) {
  const probeMs = o.probeMs ?? 1000;
  let ok = true;
  let lastError: string | null = null;
  let probeTimer: NodeJS.Timeout | undefined;

  const available = (): void => {
    if (ok) return;
    ok = true;
    lastError = null;
    clearInterval(probeTimer);
    probeTimer = undefined;
    o.metrics.auditOk(true);
    o.log.info({ event: 'audit.restored', ok: true }, 'request records can be written again; the audit trail is back');
  };
  const failed = (e: Error, what: string): void => {
    o.metrics.spoolWriteFailure();
    const code = (e as { code?: string }).code;
    lastError = `cannot write ${what} to the spool: ${code && !e.message.includes(code) ? `${code}: ` : ''}${e.message}`;
    if (!ok) return;
    ok = false;
    o.metrics.auditOk(false);
    o.log.error({ event: 'audit.failed', ok: false, mode: o.mode, err: lastError }, o.mode === 'refuse'
      ? 'request records cannot be written: answering every request 503 until they can (auditFailure "refuse")'
      : 'request records cannot be written: serving without an audit trail (auditFailure "serve")');
    probeTimer = setInterval(probe, probeMs);
  };
  const written = (records: RequestRecord[]): void => {
    available();
    o.onWritten?.(records);
  };
  const recorder = createRecorder({
    write: (batch) => {
      const r = o.spool.append(batch);
      if (r instanceof Promise) return r.then(written);
      written(r);
    },
    onError: (e) => failed(e, 'request records'),
    onDrop: (n) => o.metrics.recordsDropped(n),
    ...(o.intervalMs !== undefined ? { intervalMs: o.intervalMs } : {}),
    ...(o.maxBuffered !== undefined ? { maxBuffered: o.maxBuffered } : {}),
  });
  /** A probe (asynchronous spool) under way: the next tick skips. */
  let probing = false;
  const probe = (): void => {
    if (probing) return;
    const flushed = recorder.flush();
    const next = (f: boolean): void | Promise<void> => {
      if (!f || recorder.pending() > 0 || ok) return;
      try {
        const p = o.spool.probe();
        if (!(p instanceof Promise)) return available();
        return p.then(available, (e: unknown) => failed(e as Error, 'a probe'));
      } catch (e) {
        failed(e as Error, 'a probe');
      }
    };
    if (typeof flushed === 'boolean') {
      const p = next(flushed);
      if (!p) return;
      probing = true;
      void p.finally(() => (probing = false));
      return;
    }
    probing = true;
    void flushed.then(next).finally(() => (probing = false));
  };
  o.metrics.auditOk(true);

  /**
   * Stops. Records that still cannot be written (flush first) would die with the process: they
   * go to the log instead — one error line, event "audit.unrecorded", each record without its prompt
   * text — and count as dropped, so that none disappears without a trace. With an asynchronous
   * spool, the write under way is waited for first (the promise answered).
   */
  const stop = (): void | Promise<void> => {
    clearInterval(probeTimer);
    const under = recorder.idle();
    if (under) return under.then(stop);
    recorder.stop();
    const left = recorder.drain();
    if (left.length === 0) return;
    o.metrics.recordsDropped(left.length);
    o.log.error({ event: 'audit.unrecorded', count: left.length, err: lastError, records: left.map(({ promptText: _t, ...r }) => r) },
      `stopping with ${left.length} request record(s) that could not be written: they are in this log line only`);
  };

  return {
    record: (r: DraftRecord): void => recorder.record(r),
    /** Writes what is waiting now; false when it could not be (a promise with an asynchronous spool). */
    flush: (): boolean | Promise<boolean> => recorder.flush(),
    /**
     * Called for every request about to go to Ollama: null to go on; in 'refuse' mode, while
     * records cannot be written, the 503 to answer instead.
     */
    admit(): Refusal | null {
      if (ok) return null;
      if (o.mode === 'serve') {
        o.metrics.unrecorded();
        return null;
      }
      return { status: 503, error: 'the guard cannot record requests right now (audit trail unavailable); please try again later', reason: 'audit_unavailable', retryAfterSec: Math.max(1, Math.ceil(probeMs / 1000)) };
    },
    /** Another write to the spool failed (the peer set): the trail is as unavailable. */
    failed,
    state: (): AuditState => ({ ok, mode: o.mode, lastError, buffered: recorder.pending() }),
    stop,
  };
}

export type AuditTrail = ReturnType<typeof createAuditTrail>;
