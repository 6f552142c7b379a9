/**
 * Per-peer policy and the guard's request decisions, as pure functions:
 * the model allowlist and the model-list filter (names themselves are read by
 * core/model-name.ts, checked per request by core/model-access.ts), decideHead
 * on the request line and headers, decideBody on the body.
 */
import { z } from 'zod';
import { DEFAULT_ENDPOINTS, ENDPOINT_NAMES, PROMPT_FIELDS, canonicalPath, matchEndpoint, type EndpointDef, type EndpointName } from './ollama-api.js';
import { hopByHopRefusal } from './hop-by-hop.js';
import { DEFAULT_OPTIONS, LIMITABLE_OPTIONS, OPTION_FIELDS, OPTION_NAMES, decideOptions, type OptionLimits, type OptionName } from './model-options.js';
import { promptDigest, type PromptDigest } from './prompt-digest.js';
import { parseModelPattern, parseModelName } from './model-name.js';
import { checkBodyModels, checkPathModel, mayRead } from './model-access.js';

/** What the guard needs to decide a request (every policy field but apiTokens, which the gateway applies). */
export interface RequestPolicy {
  /** Endpoints the peer may call (default: DEFAULT_ENDPOINTS, i.e. no pull/push/delete/create/copy/blobs). */
  endpoints: EndpointName[];
  /** Models the peer may use; null = every model. 'llama3.2' means llama3.2:latest, 'llama3.2:*' any tag. */
  models: string[] | null;
  /**
   * Models the peer may create, overwrite, delete, pull or push (same patterns; 'alice/*' = every
   * model in namespace alice); [] = none, even where those endpoints are allowed; null = any.
   */
  writeModels: string[] | null;
  /** Token-bucket refill rate in requests per minute. */
  requestsPerMinute: number;
  /** Token-bucket size: requests allowed back to back. */
  burst: number;
  /** Concurrent generative (inference) requests per peer. */
  maxStreams: number;
  /** Prompt + eval tokens per UTC day; null = unlimited. */
  tokensPerDay: number | null;
  /** Upper bound for keep_alive, in seconds; null = leave keep_alive alone. */
  maxKeepAliveSec: number | null;
  /** Upper bound for options.num_ctx; null = leave num_ctx alone. */
  maxNumCtx: number | null;
  /**
   * Tokens one request may generate (clamps num_predict / max_tokens) and the most a running
   * stream may go past the day's budget before it is stopped; null = no clamp.
   */
  maxTokensPerRequest: number | null;
  /** Ollama options the peer may set (core/model-options.ts); default: the sampling options and num_ctx. */
  options: OptionName[];
  /** Upper bounds for whole-number options, e.g. { num_batch: 512 } (num_ctx: maxNumCtx); {} = none. */
  optionLimits: OptionLimits;
}

export interface Policy extends RequestPolicy {
  /**
   * The peer may be issued a peer-bound API token (Bearer, from its own tunnel
   * address, for tools that cannot present a client certificate). Decided at the
   * gateway: guards get the token's hash only while this is on.
   */
  apiTokens: boolean;
}

// ---- model names (core/model-name.ts, core/model-access.ts) -------------

export { normaliseModel } from './model-name.js';

/** Whether the peer may use `model` (read). With an allowlist, names that do not parse are refused. */
export function modelAllowed(policy: Pick<RequestPolicy, 'models'>, model: string): boolean {
  if (policy.models === null) return true;
  const n = parseModelName(model);
  return n.ok && mayRead(policy, n);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * /api/tags (and /api/ps) `{models:[{name, model, ...}]}` and /v1/models
 * `{object:'list', data:[{id}]}`: keeps only allowed models (an entry without
 * a name is dropped). Anything not of that shape is returned unchanged.
 */
export function filterModelList(kind: 'tags' | 'v1.models', body: unknown, policy: RequestPolicy): unknown {
  if (policy.models === null || !isRecord(body)) return body;
  const key = kind === 'tags' ? 'models' : 'data';
  const items = body[key];
  if (!Array.isArray(items)) return body;
  const names = (item: unknown): string[] => {
    if (!isRecord(item)) return [];
    const fields = kind === 'tags' ? [item.name, item.model] : [item.id];
    return fields.filter((f): f is string => typeof f === 'string');
  };
  const kept = items.filter((item) => {
    const n = names(item);
    return n.length > 0 && n.every((m) => modelAllowed(policy, m));
  });
  return { ...body, [key]: kept };
}

// ---- schema ---------------------------------------------------------------

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const modelPattern = z
  .string()
  .max(600)
  .superRefine((s, ctx) => {
    const r = parseModelPattern(s);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: `${r.error}; write "llama3.2", "llama3.2:3b", "user/model:tag", "llama3.2:*" or "user/*"` });
  });

const fields = {
  endpoints: z.array(z.enum(ENDPOINT_NAMES as [EndpointName, ...EndpointName[]])).max(ENDPOINT_NAMES.length * 2)
    .describe('endpoints the peer may call'),
  models: z.array(modelPattern).max(200).nullable().describe("models the peer may use; null = every model; 'x' = x:latest, 'x:*' = any tag"),
  writeModels: z.array(modelPattern).max(200).nullable().describe("models the peer may create, overwrite, delete, pull or push; [] = none; null = any; 'user/*' = a namespace"),
  requestsPerMinute: int(1, 100_000).describe('token-bucket refill rate, requests per minute'),
  burst: int(1, 100_000).describe('token-bucket size: requests allowed back to back'),
  maxStreams: int(1, 1000).describe('concurrent generation/chat/embedding requests'),
  tokensPerDay: int(1, 1e12).nullable().describe('prompt + eval tokens per UTC day; null = unlimited'),
  maxKeepAliveSec: int(0, 10 * 365 * 86_400).nullable().describe('upper bound for keep_alive in seconds; null = no clamp'),
  maxNumCtx: int(1, 16_777_216).nullable().describe('upper bound for options.num_ctx; null = no clamp'),
  maxTokensPerRequest: int(1, 16_777_216).nullable().describe('tokens one request may generate (num_predict / max_tokens clamp); null = no clamp'),
  options: z.array(z.enum(OPTION_NAMES as [OptionName, ...OptionName[]])).max(OPTION_NAMES.length * 2)
    .describe('Ollama options the peer may set (default: the sampling options and num_ctx)'),
  optionLimits: z.partialRecord(z.enum(LIMITABLE_OPTIONS as [string, ...string[]]), int(0, 16_777_216))
    .describe('upper bounds for whole-number options, e.g. {"num_batch": 512}') as z.ZodType<OptionLimits>,
  apiTokens: z.boolean().describe('the peer may be issued a peer-bound API token (off by default)'),
};

export const DEFAULT_POLICY: Policy = Object.freeze({
  endpoints: [...DEFAULT_ENDPOINTS],
  models: null,
  writeModels: [],
  requestsPerMinute: 60,
  burst: 20,
  maxStreams: 4,
  tokensPerDay: null,
  maxKeepAliveSec: null,
  maxNumCtx: null,
  maxTokensPerRequest: null,
  options: [...DEFAULT_OPTIONS],
  optionLimits: {},
  apiTokens: false,
});

/** A complete policy; missing fields take DEFAULT_POLICY's values. Unknown fields are an error. */
export const policySchema: z.ZodType<Policy> = z.strictObject({
  endpoints: fields.endpoints.default(() => [...DEFAULT_ENDPOINTS]),
  models: fields.models.default(null),
  writeModels: fields.writeModels.default(() => []),
  requestsPerMinute: fields.requestsPerMinute.default(DEFAULT_POLICY.requestsPerMinute),
  burst: fields.burst.default(DEFAULT_POLICY.burst),
  maxStreams: fields.maxStreams.default(DEFAULT_POLICY.maxStreams),
  tokensPerDay: fields.tokensPerDay.default(null),
  maxKeepAliveSec: fields.maxKeepAliveSec.default(null),
  maxNumCtx: fields.maxNumCtx.default(null),
  maxTokensPerRequest: fields.maxTokensPerRequest.default(null),
  options: fields.options.default(() => [...DEFAULT_OPTIONS]),
  optionLimits: fields.optionLimits.default(() => ({})),
  apiTokens: fields.apiTokens.default(false),
});

/** A per-peer override: any subset of the fields, no defaults filled in. */
export const policyOverrideSchema = z.strictObject(fields).partial();
export type PolicyOverride = z.output<typeof policyOverrideSchema>;

/** `base` with every field `o` sets (null included: it means "no limit"/"every model"). */
export function mergePolicy(base: Policy, o: Partial<Policy>): Policy {
  const out: Policy = { ...base, endpoints: [...base.endpoints], models: base.models && [...base.models], writeModels: base.writeModels && [...base.writeModels], options: [...base.options], optionLimits: { ...base.optionLimits } };
  for (const k of Object.keys(fields) as (keyof Policy)[]) {
    const v = o[k];
    if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = Array.isArray(v) ? [...v] : isRecord(v) ? { ...v } : v;
  }
  return out;
}

// ---- decisions ------------------------------------------------------------

export interface Refusal {
  /** 408/431 come from the HTTP parser, 502/503/504 from the upstream, 501 from a pool router; the rest from these decisions. */
  status: 400 | 401 | 403 | 404 | 405 | 408 | 413 | 415 | 429 | 431 | 501 | 502 | 503 | 504;
  /** Text for the client's `{"error": "..."}`. */
  error: string;
  /** Short snake_case reason for logs and metrics. */
  reason: string;
  /** For 405: the Allow header. */
  allow?: string[];
  /** For 429/503: the Retry-After header. */
  retryAfterSec?: number;
}

const refuse = (status: Refusal['status'], reason: string, error: string): { ok: false; refusal: Refusal } => ({
  ok: false,
  refusal: { status, reason, error },
});

type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | string[] | undefined {
  if (name in headers) return headers[name];
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return undefined;
}

/** What curl -d sends (form), what fetch sends for a string body (text/plain), and JSON. */
const JSON_MEDIA_TYPES = new Set(['application/json', 'text/plain', 'application/x-www-form-urlencoded']);

/**
 * Everything decidable before reading the body: canonical path, endpoint,
 * method, endpoint allowed by policy, framing, declared size (JSON and
 * bodyless endpoints; blob uploads are not limited here), content type and
 * encoding of JSON bodies.
 */
export function decideHead(input: {
  method: string;
  rawUrl: string;
  headers: Headers;
  policy: RequestPolicy;
  maxBodyBytes: number;
}): { ok: true; endpoint: EndpointDef; path: string; pathModel?: string } | { ok: false; refusal: Refusal } {
  const { method, headers, policy } = input;
  const canon = canonicalPath(input.rawUrl);
  if (!canon.ok) return refuse(400, 'path_not_canonical', `invalid request path: ${canon.reason}`);
  const { path } = canon;
  const m = matchEndpoint(path, method);
  if (m.kind === 'unknown') return refuse(404, 'unknown_endpoint', `path "${path}" not found`);
  if (m.kind === 'method') {
    const r = refuse(405, 'method_not_allowed', `method ${method} is not allowed for ${path}`);
    r.refusal.allow = m.allow;
    return r;
  }
  const { endpoint } = m;
  // `/` is the probe every Ollama client sends first ("Ollama is running"): it tells nothing, so
  // it is answered for every peer, whatever endpoints its policy lists.
  if (path !== '/' && !policy.endpoints.includes(endpoint.name)) {
    return refuse(403, 'endpoint_denied', `endpoint "${endpoint.name}" is not allowed for this peer`);
  }

  const hop = hopByHopRefusal(header(headers, 'upgrade'), header(headers, 'connection'));
  if (hop) return { ok: false, refusal: hop };

  const cl = header(headers, 'content-length');
  const te = header(headers, 'transfer-encoding');
  if (cl !== undefined && te !== undefined) {
    return refuse(400, 'bad_framing', 'request has both Content-Length and Transfer-Encoding');
  }
  if (te !== undefined && (typeof te !== 'string' || te.trim().toLowerCase() !== 'chunked')) {
    return refuse(400, 'bad_framing', 'unsupported Transfer-Encoding (only chunked)');
  }
  if (cl !== undefined && (typeof cl !== 'string' || !/^\d{1,15}$/.test(cl.trim()))) {
    return refuse(400, 'bad_framing', 'invalid Content-Length');
  }
  if (endpoint.body !== 'binary' && cl !== undefined && Number(cl) > input.maxBodyBytes) {
    return refuse(413, 'body_too_large', `request body too large (limit ${input.maxBodyBytes} bytes)`);
  }

  if (endpoint.body === 'json') {
    const ct = header(headers, 'content-type');
    if (Array.isArray(ct)) return refuse(400, 'bad_header', 'more than one Content-Type');
    if (ct !== undefined && ct.trim() !== '') {
      const media = (ct.split(';')[0] ?? '').trim().toLowerCase();
      if (!JSON_MEDIA_TYPES.has(media)) {
        return refuse(415, 'unsupported_media_type', `unsupported content type "${media}", send application/json`);
      }
    }
    const ce = header(headers, 'content-encoding');
    if (ce !== undefined && (typeof ce !== 'string' || !['', 'identity'].includes(ce.trim().toLowerCase()))) {
      return refuse(415, 'unsupported_media_type', 'compressed request bodies are not supported');
    }
  }
  return m.pathModel === undefined ? { ok: true, endpoint, path } : { ok: true, endpoint, path, pathModel: m.pathModel };
}

/**
 * Top-level fields the decision reads. Go's encoding/json matches keys
 * case-insensitively (Unicode simple folding: 'ſ' is 's', 'K' (Kelvin) is 'k'), so a body
 * with {"model":"ok","MODEL":"other"} would reach Ollama as "other": any key
 * that folds onto one of these without being it is refused.
 */
const SIGNIFICANT = new Set([
  'model', 'name', 'source', 'destination', 'from', 'stream', 'stream_options', 'keep_alive', 'options',
  'files', 'adapters', 'draft_files',
  ...Object.values(PROMPT_FIELDS).flat(), ...OPTION_FIELDS,
]);
/** toLowerCase already maps the Kelvin sign to 'k'; the long s needs a hand. */
const goFold = (k: string): string => k.toLowerCase().replace(/\u017f/g, 's');

/** How long Ollama keeps a model loaded when a request names no keep_alive (its default, OLLAMA_KEEP_ALIVE unset). */
const OLLAMA_DEFAULT_KEEP_ALIVE_SEC = 300;

/** Go duration ("5m", "1h30m", "-1s", "0") or a bare number of seconds → seconds; negative = forever. */
export function keepAliveSeconds(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? (v < 0 ? Infinity : v) : null;
  if (typeof v !== 'string') return null;
  const s = v.trim();
  if (/^[-+]?(\d+(\.\d*)?|\.\d+)$/.test(s)) return Number(s) < 0 ? Infinity : Number(s);
  const m = /^([-+]?)((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!m) return null;
  const unit: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, μs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const part of (m[2] ?? '').matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * (unit[part[2] ?? ''] ?? 0);
  }
  return m[1] === '-' && total > 0 ? Infinity : total;
}

export interface BodyDecision {
  ok: true;
  /** The bytes to send to Ollama: the parsed body re-serialised (or the original for bodies not parsed). */
  forward: Buffer;
  /** The (first) model, normalised; null when the endpoint names none. */
  model: string | null;
  /** Whether the response will stream. */
  stream: boolean;
  /** The digest of every field the model reads (core/prompt-digest.ts), or null when there is none. */
  prompt: PromptDigest | null;
}

/**
 * After the body is read: parse it, find and check the model(s), clamp
 * keep_alive, check and clamp the model options (core/model-options.ts), ask
 * /v1 streams for usage when a token budget applies, and digest the prompt.
 */
export function decideBody(input: { endpoint: EndpointDef; pathModel?: string; body: Buffer; policy: RequestPolicy }): BodyDecision | { ok: false; refusal: Refusal } {
  const { endpoint, policy, body } = input;
  if (endpoint.modelFromPath) {
    const m = checkPathModel(policy, input.pathModel ?? '');
    if (!m.ok) return m;
    return { ok: true, forward: body, model: m.model, stream: false, prompt: null };
  }
  if (endpoint.body !== 'json') return { ok: true, forward: body, model: null, stream: false, prompt: null };

  const text = body.toString('utf8');
  if (text.trim() === '') return refuse(400, 'bad_json', 'missing request body');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return refuse(400, 'bad_json', 'invalid JSON in request body');
  }
  if (!isRecord(parsed)) return refuse(400, 'bad_json', 'request body must be a JSON object');
  const req = parsed;
  for (const k of Object.keys(req)) {
    // Go folds keys with Unicode rules (e.g. "ı" matches "i"): only ASCII keys can be compared here.
    if (/[^\x20-\x7e]/.test(k)) return refuse(400, 'ambiguous_field', `field ${JSON.stringify(k)} is not accepted: field names must be ASCII`);
    if (!SIGNIFICANT.has(k) && SIGNIFICANT.has(goFold(k))) {
      return refuse(400, 'ambiguous_field', `field "${k}" is not accepted, use "${goFold(k)}"`);
    }
  }
  if (isRecord(req.stream_options) && Object.keys(req.stream_options).some((k) => /[^\x20-\x7e]/.test(k))) {
    return refuse(400, 'ambiguous_field', 'stream_options field names must be ASCII');
  }

  // Models: every name well-formed first, then the read and write allowlists.
  const models = checkBodyModels(endpoint, req, policy);
  if (!models.ok) return models;
  const first = models.model;

  const stream =
    endpoint.streaming === 'default-on' ? req.stream !== false : endpoint.streaming === 'opt-in' ? req.stream === true : false;

  if (endpoint.generative && policy.maxKeepAliveSec !== null && req.keep_alive !== undefined && req.keep_alive !== null) {
    const secs = keepAliveSeconds(req.keep_alive);
    if (secs === null) return refuse(400, 'bad_keep_alive', `invalid keep_alive ${JSON.stringify(req.keep_alive)}`);
    if (secs > policy.maxKeepAliveSec) {
      req.keep_alive = policy.maxKeepAliveSec;
    }
  } else if (endpoint.generative && policy.maxKeepAliveSec !== null && !endpoint.name.startsWith('v1.')) {
    // Omitted: Ollama would keep the model OLLAMA_KEEP_ALIVE long (5 min unless set), past a shorter clamp.
    req.keep_alive = Math.min(policy.maxKeepAliveSec, OLLAMA_DEFAULT_KEEP_ALIVE_SEC);
  }
  if (endpoint.generative) {
    const denied = decideOptions(endpoint.name, req, policy);
    if (denied) return { ok: false, refusal: denied };
  }
  if (stream && policy.tokensPerDay !== null && (endpoint.name === 'v1.chat' || endpoint.name === 'v1.completions')) {
    const so = isRecord(req.stream_options) ? req.stream_options : {};
    if (so.include_usage !== true || Object.keys(so).some((k) => k !== 'include_usage' && goFold(k) === 'include_usage')) {
      // Rebuilt so no case-variant of include_usage can come after ours.
      const kept = Object.fromEntries(Object.entries(so).filter(([k]) => goFold(k) !== 'include_usage'));
      req.stream_options = { ...kept, include_usage: true };
    }
  }

  let prompt: BodyDecision['prompt'] = null;
  let forward = body;
  try {
    prompt = promptDigest(endpoint.promptFields, req);
    // Always what was decided, re-serialised: duplicate keys collapse to the value checked
    // here, so Ollama's parser cannot read a different model or option than the guard did.
    forward = Buffer.from(JSON.stringify(req), 'utf8');
  } catch {
    return refuse(400, 'bad_json', 'request body is nested too deeply');
  }
  return { ok: true, forward, model: first, stream, prompt };
}
