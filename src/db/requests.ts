import type { RequestRecord } from '../core/request-record.js';
import type { Db } from './open.js';

export interface RequestRow extends Omit<RequestRecord, 'seq'> {
  id: number;
  guard: string;
  guardSeq: number;
  peerId: number | null;
}

export interface RequestQuery {
  since: number;
  peerId?: number;
  model?: string;
  status?: number;
  afterId?: number;
  /** Only rows older than this id (paging backwards). */
  beforeId?: number;
  limit?: number;
  /** With a limit: the newest rows (still returned oldest first). */
  newest?: boolean;
}

const COLUMNS = `id, guard, guard_seq AS guardSeq, at, peer_id AS peerId, peer, cert_serial AS certSerial, source, method, path,
  endpoint, model, prompt_sha256 AS promptSha256, prompt_length AS promptLength, prompt_text AS promptText, status,
  bytes_in AS bytesIn, bytes_out AS bytesOut, prompt_tokens AS promptTokens, eval_tokens AS evalTokens, ttfb_ms AS ttfbMs,
  duration_ms AS durationMs, refusal, auth, estimated_tokens AS estimatedTokens, host, queue_ms AS queueMs`;
/** What a row charged to its peer's daily budget: core/request-record.ts chargedTokens, in SQL. */
export const CHARGED_SQL = `coalesce(estimated_tokens, coalesce(prompt_tokens, 0) + coalesce(eval_tokens, 0))`;
const WHERE = `at >= @since AND id > @afterId AND (@beforeId IS NULL OR id < @beforeId) AND (@peerId IS NULL OR peer_id = @peerId)
  AND (@model IS NULL OR model = @model) AND (@status IS NULL OR status = @status)`;

/** Request records: written in batches, each (guard, seq) at most once. */
export function requestRepository(db: Db) {
  const s = {
    insert: db.prepare(`INSERT INTO requests (guard, spool, guard_seq, at, peer_id, peer, cert_serial, source, method, path,
        endpoint, model, prompt_sha256, prompt_length, prompt_text, status, bytes_in, bytes_out, prompt_tokens, eval_tokens,
        ttfb_ms, duration_ms, refusal, auth, estimated_tokens, host, queue_ms)
      SELECT @guard, @spool, @seq, @at, (SELECT peer_id FROM certificates WHERE serial = @certSerial AND role = 'peer'), @peer,
        @certSerial, @source, @method, @path, @endpoint, @model, @promptSha256, @promptLength, @promptText, @status,
        @bytesIn, @bytesOut, @promptTokens, @evalTokens, @ttfbMs, @durationMs, @refusal, @auth, @estimatedTokens, @host, @queueMs
      -- A seq at or below what retention pruned (migration 9) was stored once already: a guard
      -- pushing that batch again must not store it (and charge its tokens) a second time.
      WHERE @seq > coalesce((SELECT seq FROM request_spool_seqs WHERE guard = @guard AND spool = @spool), 0)
      ON CONFLICT (guard, spool, guard_seq) DO NOTHING`),
    list: db.prepare(`SELECT ${COLUMNS} FROM requests WHERE ${WHERE} ORDER BY id LIMIT @limit`),
    newest: db.prepare(`SELECT * FROM (SELECT ${COLUMNS} FROM requests WHERE ${WHERE} ORDER BY id DESC LIMIT @limit) ORDER BY id`),
    // The highest seq stored, also when retention pruned the rows that held it (migration 9).
    maxSeq: db.prepare(`SELECT max(coalesce((SELECT max(guard_seq) FROM requests WHERE guard = @guard AND spool = @spool), 0),
      coalesce((SELECT seq FROM request_spool_seqs WHERE guard = @guard AND spool = @spool), 0))`).pluck(),
    countsSince: db.prepare(`SELECT peer_id AS peerId, count(*) AS requests, sum(${CHARGED_SQL}) AS tokens
      FROM requests WHERE at >= ? AND peer_id IS NOT NULL GROUP BY peer_id`),
    tokensSince: db.prepare(`SELECT peer_id AS peerId, sum(${CHARGED_SQL}) AS tokens
      FROM requests WHERE at >= ? AND peer_id IS NOT NULL GROUP BY peer_id`),
    tokensOnDay: db.prepare(`SELECT peer_id AS peerId, tokens FROM peer_tokens_daily WHERE day = ?`),
  };
  const insertMany = db.transaction((guard: string, spool: string, records: readonly RequestRecord[]) =>
    records.filter((r) => s.insert.run({ guard, spool, ...r, auth: r.auth ?? null, estimatedTokens: r.estimatedTokens ?? null, host: r.host ?? null, queueMs: r.queueMs ?? null }).changes > 0));
  return {
    /** Inserts a batch in one transaction; records already present are skipped. Returns how many were new. */
    insertBatch: (guard: string, records: readonly RequestRecord[], spool = ''): number => insertMany.immediate(guard, spool, records).length,
    /** Like insertBatch, but returns the records that were new (for metrics that must count each record once). */
    insertNew: (guard: string, records: readonly RequestRecord[], spool = ''): RequestRecord[] => insertMany.immediate(guard, spool, records),
    list(q: RequestQuery): RequestRow[] {
      const params = { since: q.since, afterId: q.afterId ?? 0, beforeId: q.beforeId ?? null, peerId: q.peerId ?? null, model: q.model ?? null, status: q.status ?? null, limit: q.limit ?? 1000 };
      return (q.newest ? s.newest : s.list).all(params) as RequestRow[];
    },
    /** The highest sequence number stored for a guard without a spool id (the in-process guard; 0 when none). */
    maxSeq: (guard: string) => s.maxSeq.get({ guard, spool: '' }) as number,
    /** Tokens charged per peer id on a UTC day (YYYY-MM-DD), from the running sum (migration 7): the daily budget. */
    tokensOnDay(day: string): Map<number, number> {
      return new Map((s.tokensOnDay.all(day) as { peerId: number; tokens: number }[]).map((r) => [r.peerId, r.tokens]));
    },
    /** The highest sequence number stored from one spool of a guard (0 when none), pruned rows included. */
    spoolSeq: (guard: string, spool: string) => s.maxSeq.get({ guard, spool }) as number,
    /** Requests and tokens per peer id since a moment (the web UI's "today" columns). */
    countsSince(since: number): Map<number, { requests: number; tokens: number }> {
      return new Map((s.countsSince.all(since) as { peerId: number; requests: number; tokens: number }[]).map((r) => [r.peerId, { requests: r.requests, tokens: r.tokens }]));
    },
    /** Tokens charged per peer id since a moment (the daily budget: counts or estimates); by id, so a new peer reusing a name starts at 0. */
    tokensSince(since: number): Map<number, number> {
      return new Map((s.tokensSince.all(since) as { peerId: number; tokens: number }[]).map((r) => [r.peerId, r.tokens]));
    },
  };
}

export type RequestRepository = ReturnType<typeof requestRepository>;
