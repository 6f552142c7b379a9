/**
 * What one request is charged to its peer's daily token budget. Pure: the
 * guard's exchange feeds it what streamed past (core/token-scan.ts finds
 * Ollama's final counts; the exchange counts lines and bytes).
 *
 * - Ollama's own final counts (prompt + eval) are charged when they are there
 *   and plausible.
 * - Otherwise an estimate is charged — and written to the record as
 *   `estimatedTokens` — : a token per four bytes of prompt, plus a token per
 *   streamed event (an NDJSON line, an SSE event: Ollama sends about one per
 *   token) or, for an answer that was not streamed, a token per four bytes of
 *   it.
 * - Counts are implausible when a count is larger than MAX_PLAUSIBLE_TOKENS
 *   (no model reads or writes that much in one request), or when a stream
 *   carried more events than the eval count allows: Ollama sends at most one
 *   content event per generated token, plus a few framing events (the final
 *   object; /v1: the usage chunk and `[DONE]`) — EVENT_SLACK. Negative,
 *   fractional or non-numeric counts are never read as counts at all (the
 *   scanner takes whole, unsigned integers only): they are missing.
 */

/** Above this, a count is not believed (16 Mi tokens: beyond any context window). */
export const MAX_PLAUSIBLE_TOKENS = 16_777_216;
/** Events a stream may carry beyond its eval count (the final object, /v1's usage chunk and [DONE], a spare). */
export const EVENT_SLACK = 4;

export interface StreamedSoFar {
  /** Length of what the model reads (the prompt digest's length), or null. */
  promptLength: number | null;
  /** Newlines seen in the answer. */
  lines: number;
  /** Bytes of the answer. */
  bytes: number;
  /** The answer is SSE (/v1 streams): an event is two newlines. */
  sse: boolean;
  /** The client asked for a streamed answer. */
  stream: boolean;
}

export interface Counts {
  promptTokens: number;
  evalTokens: number;
}

/** Streamed events: NDJSON lines, or SSE events (each ends with a blank line). */
export function events(s: Pick<StreamedSoFar, 'lines' | 'sse'>): number {
  return s.sse ? Math.ceil(s.lines / 2) : s.lines;
}

/** The estimate for what has streamed so far (charged when the counts are missing or implausible). */
export function estimateTokens(s: StreamedSoFar): number {
  const prompt = Math.ceil((s.promptLength ?? 0) / 4);
  return prompt + (s.stream ? events(s) : Math.ceil(s.bytes / 4));
}

/** Whether Ollama's final counts can be believed for what streamed (see the module comment). */
export function plausibleCounts(c: Counts, s: StreamedSoFar): boolean {
  for (const n of [c.promptTokens, c.evalTokens]) {
    if (!Number.isSafeInteger(n) || n < 0 || n > MAX_PLAUSIBLE_TOKENS) return false;
  }
  return !s.stream || events(s) <= c.evalTokens + EVENT_SLACK;
}

export interface Charge {
  /** Ollama's counts as reported (kept in the record even when not believed), or null. */
  promptTokens: number | null;
  evalTokens: number | null;
  /** The estimate charged instead of the counts, or null when the counts were charged. */
  estimatedTokens: number | null;
  /** What the budget is charged. */
  charged: number;
}

/**
 * The charge for a finished exchange. `billable` is false for answers that
 * cost no inference (refusals, errors, lists): then only counts found are
 * charged, and no estimate.
 */
export function settleCharge(counts: Counts | null, s: StreamedSoFar, billable: boolean): Charge {
  if (counts && plausibleCounts(counts, s)) {
    return { promptTokens: counts.promptTokens, evalTokens: counts.evalTokens, estimatedTokens: null, charged: counts.promptTokens + counts.evalTokens };
  }
  const reported = { promptTokens: counts?.promptTokens ?? null, evalTokens: counts?.evalTokens ?? null };
  if (!billable && !counts) return { ...reported, estimatedTokens: null, charged: 0 };
  const estimate = estimateTokens(s);
  return { ...reported, estimatedTokens: estimate, charged: estimate };
}
