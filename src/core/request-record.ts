import { z } from 'zod';

const text = (max: number) => z.string().max(max).nullable();
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Longest prompt text kept (logPrompts): longer ones are cut, their hash and length still cover all of it. */
export const MAX_PROMPT_TEXT = 1024 * 1024;
const LIMITS = { peer: 64, source: 64, method: 16, path: 2048, endpoint: 32, model: 256, promptText: MAX_PROMPT_TEXT, refusal: 64 } as const;

/**
 * One request the guard saw, refused ones included: what `logs requests`
 * shows and what a guard pushes to the gateway (POST /v1/records, core/wire.ts).
 * Never the prompt text unless logPrompts is on (then `promptText`). The gateway
 * validates every pushed record with this schema: a guard is trusted to be
 * itself, not to send well-formed data.
 */
export const requestRecordSchema = z
  .object({
    /** The guard's own sequence number: (guard, seq) identifies a record exactly once. */
    seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    at: z.number().int().min(0).max(8.64e15),
    peer: text(LIMITS.peer),
    certSerial: z.string().regex(/^[0-9a-f]{1,64}$/).nullable(),
    source: z.string().min(1).max(LIMITS.source),
    method: text(LIMITS.method),
    path: text(LIMITS.path),
    endpoint: text(LIMITS.endpoint),
    model: text(LIMITS.model),
    promptSha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
    promptLength: count.nullable(),
    promptText: text(LIMITS.promptText),
    status: z.number().int().min(0).max(999),
    bytesIn: count,
    bytesOut: count,
    promptTokens: count.nullable(),
    evalTokens: count.nullable(),
    ttfbMs: z.number().min(0).max(1e9).nullable(),
    durationMs: z.number().min(0).max(1e10),
    /** Why the guard refused or cut the request (e.g. model_denied, auth_revoked, peer_revoked), null when it was served. */
    refusal: text(LIMITS.refusal),
    /**
     * What authenticated the request: a client certificate or a peer-bound token
     * (then certSerial is the certificate the token is bound to); null when it was
     * refused before any credential verified. Absent in records from older guards.
     */
    auth: z.enum(['certificate', 'token']).nullable().optional(),
    /**
     * Tokens charged to the peer's daily budget by estimate, instead of promptTokens + evalTokens:
     * set when Ollama's final counts were missing (a stream cut before them) or implausible
     * (core/token-charge.ts); null when the counts were charged, or nothing was. Absent in
     * records from older guards.
     */
    estimatedTokens: count.nullable().optional(),
    /** The pool member (GPU host) that served it, when a pool router forwarded it; null otherwise. Absent in records from older guards. */
    host: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,31}$/).nullable().optional(),
    /** How long it waited in the router's fair queue for a slot on a GPU host (ms); null when it never asked for one. */
    queueMs: z.number().int().min(0).max(1e9).nullable().optional(),
  })
  .strict();
export type RequestRecord = z.output<typeof requestRecordSchema>;

/** What a record charged to its peer's daily budget: the estimate when there is one, else Ollama's counts. */
export function chargedTokens(r: Pick<RequestRecord, 'promptTokens' | 'evalTokens' | 'estimatedTokens'>): number {
  return r.estimatedTokens ?? (r.promptTokens ?? 0) + (r.evalTokens ?? 0);
}

/**
 * A record cut to what the gateway accepts: a client chooses the model name
 * and the path, and one oversized field must never make a batch unstorable.
 */
export function fitRecord<T extends Omit<RequestRecord, 'seq'>>(r: T): T {
  let out = r;
  for (const [k, max] of Object.entries(LIMITS) as [keyof typeof LIMITS, number][]) {
    const v = r[k];
    if (typeof v === 'string' && v.length > max) out = { ...out, [k]: v.slice(0, max) };
  }
  return out;
}

/** Record fields a gateway may not know: sent only when its peer set names them (`recordFields`). */
const NEWER_FIELDS = ['auth', 'estimatedTokens', 'host', 'queueMs'] as const;
/** What this build's gateway takes besides the original fields; it says so in every peer set. */
export const RECORD_FIELDS: readonly string[] = Object.freeze([...NEWER_FIELDS]);

/**
 * A record as the gateway that sent `accepted` (its peer set's recordFields) can store it: an
 * older gateway refuses unknown fields, and a refused record is lost, so fields it did not
 * name are left out.
 */
export function recordForGateway<T extends object>(r: T, accepted: readonly string[] | undefined): T {
  const drop = NEWER_FIELDS.filter((f) => f in r && !(accepted ?? []).includes(f));
  if (drop.length === 0) return r;
  const out = { ...r } as Record<string, unknown>;
  for (const f of drop) delete out[f];
  return out as T;
}
