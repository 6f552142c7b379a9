import type { RequestPolicy } from '../core/policy.js';
import { estimateTokens, settleCharge, type Charge, type StreamedSoFar } from '../core/token-charge.js';
import { createTokenScanner } from '../core/token-scan.js';
import type { Budget } from './budget.js';

export interface ChargeOptions {
  budget: Budget;
  peer: string;
  policy: Pick<RequestPolicy, 'tokensPerDay' | 'maxTokensPerRequest'>;
  /** The endpoint runs the model (an estimate is charged when the counts are missing). */
  generative: boolean;
  /** The client asked for a streamed answer. */
  stream: boolean;
  promptLength: number | null;
  /** When the request started (the record's `at`: the day it is charged to). */
  at: number;
  clock: () => number;
}

/**
 * The token charge of one forwarded request, while its answer streams past.
 *
 * While a generative answer streams, its running estimate (core/token-charge.ts)
 * counts in the peer's budget (so other requests see it), and push() says to stop
 * the stream once the peer's use — settled charges plus every stream of the peer
 * in flight — exceeds tokensPerDay by more than the policy's maxTokensPerRequest
 * (by anything at all when that is null: the stream stops as soon as the budget
 * is crossed). An answer that was not streamed is generated whole before its
 * first byte: it is not cut, and charged when it ends.
 *
 * settle() charges the budget (Ollama's counts, or the estimate) and returns what
 * goes into the record; every charged token is in a record.
 */
export function startCharge(o: ChargeOptions) {
  const scanner = createTokenScanner();
  const so: StreamedSoFar = { promptLength: o.promptLength, lines: 0, bytes: 0, sse: false, stream: o.stream };
  const limit = o.policy.tokensPerDay === null ? null : o.policy.tokensPerDay + (o.policy.maxTokensPerRequest ?? 0);
  const running = o.generative ? o.budget.begin(o.peer) : null;
  running?.set(estimateTokens(so));
  let settled: Charge | null = null;

  return {
    /** The answer's content type (SSE: an event is two newlines). */
    contentType(type: string | undefined): void {
      so.sse = /event-stream/i.test(type ?? '');
    },
    /** A chunk of the answer, before it is sent on; false: the peer's budget is crossed, stop the stream. */
    push(chunk: Buffer): boolean {
      so.bytes += chunk.length;
      scanner.push(chunk);
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) so.lines++;
      if (!running || !o.stream) return true;
      running.set(estimateTokens(so));
      return limit === null || o.budget.used(o.peer, o.clock()) <= limit;
    },
    /** The exchange ended: charges the budget once; `served` is false for answers that ran no model (errors, refusals). */
    settle(served: boolean): Charge {
      if (settled) return settled;
      running?.end();
      settled = settleCharge(scanner.result(), so, o.generative && served);
      o.budget.charge(o.peer, settled.charged, o.at, o.clock());
      return settled;
    },
  };
}

export type RunningCharge = ReturnType<typeof startCharge>;
