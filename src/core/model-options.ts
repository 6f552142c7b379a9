/**
 * Ollama's model options and what a peer's policy lets through: the names
 * Ollama knows, which of them a peer may set (`options`), upper bounds for the
 * numeric ones (`optionLimits`, `maxNumCtx`) and the per-request token clamp
 * (`maxTokensPerRequest` → num_predict / max_tokens). Pure, no I/O.
 *
 * The names and their JSON types are those of Ollama's api/types.go (the
 * Options and Runner structs, read by Options.FromMap), including the ones
 * Ollama removed in May 2025 (#10574, #10581): older servers still read them,
 * and ollama-js, @langchain/ollama and Continue still offer them.
 * - Runner options are fixed when a model is loaded. A request whose runner
 *   options differ from the loaded model's makes Ollama unload and reload it,
 *   for everyone using it (server/sched.go, needsReload), and they decide how
 *   much GPU and host memory and how many threads the model takes.
 * - Sampling options steer one request's generation and cost nothing beyond it.
 */
import type { EndpointName } from './ollama-api.js';

/** How Options.FromMap reads a value: a JSON number (whole or not: Go truncates), a boolean, or an array of strings. */
type Kind = 'number' | 'whole' | 'boolean' | 'strings';

const SAMPLING = {
  num_keep: 'whole', seed: 'whole', num_predict: 'whole', top_k: 'whole', top_p: 'number', min_p: 'number',
  typical_p: 'number', repeat_last_n: 'whole', temperature: 'number', repeat_penalty: 'number',
  presence_penalty: 'number', frequency_penalty: 'number', stop: 'strings',
  // removed in Ollama 0.7 (ignored since), read by older servers
  mirostat: 'whole', mirostat_tau: 'number', mirostat_eta: 'number', tfs_z: 'number', penalize_newline: 'boolean',
} as const satisfies Record<string, Kind>;

const RUNNER = {
  num_ctx: 'whole', num_batch: 'whole', num_gpu: 'whole', main_gpu: 'whole', use_mmap: 'boolean', num_thread: 'whole',
  draft_num_predict: 'whole',
  // removed in Ollama 0.7 or earlier, read by older servers
  low_vram: 'boolean', f16_kv: 'boolean', logits_all: 'boolean', vocab_only: 'boolean', use_mlock: 'boolean',
  numa: 'boolean', embedding_only: 'boolean', num_gqa: 'whole', rope_frequency_base: 'number', rope_frequency_scale: 'number',
} as const satisfies Record<string, Kind>;

export type OptionName = keyof typeof SAMPLING | keyof typeof RUNNER;

const KINDS: ReadonlyMap<string, Kind> = new Map<string, Kind>([...Object.entries(SAMPLING), ...Object.entries(RUNNER)]);

/** Every option name Ollama reads (and has read), sampling options first. */
export const OPTION_NAMES: readonly OptionName[] = Object.freeze([...Object.keys(SAMPLING), ...Object.keys(RUNNER)] as OptionName[]);

/**
 * What a peer may set when its policy does not say: the sampling options and
 * num_ctx. num_ctx is a runner option, but clients send it unasked (Continue
 * sends its context length on every request) and maxNumCtx bounds it.
 */
export const DEFAULT_OPTIONS: readonly OptionName[] = Object.freeze([...(Object.keys(SAMPLING) as OptionName[]), 'num_ctx']);

/** Options an admin can bound in optionLimits: the whole-number ones but num_ctx (maxNumCtx) and num_predict (maxTokensPerRequest). */
export const LIMITABLE_OPTIONS = Object.freeze(
  OPTION_NAMES.filter((n) => KINDS.get(n) === 'whole' && n !== 'num_ctx' && n !== 'num_predict'),
) as readonly LimitableOption[];
export type LimitableOption = Exclude<
  { [K in OptionName]: (typeof SAMPLING & typeof RUNNER)[K] extends 'whole' ? K : never }[OptionName],
  'num_ctx' | 'num_predict'
>;
export type OptionLimits = Partial<Record<LimitableOption, number>>;

/** The policy fields this module reads. */
export interface OptionsPolicy {
  options: readonly OptionName[];
  optionLimits: OptionLimits;
  maxNumCtx: number | null;
  maxTokensPerRequest: number | null;
}

/**
 * The request fields of Ollama's OpenAI-compatible API that become options
 * (openai/openai.go, fromChatRequest / fromCompleteRequest). Ollama reads
 * max_tokens only; max_completion_tokens is listed so a case variant of it is
 * refused like the others and its value is bounded for servers that read it.
 */
const V1_FIELDS: Readonly<Record<string, OptionName>> = Object.freeze({
  max_tokens: 'num_predict', temperature: 'temperature', seed: 'seed', stop: 'stop',
  frequency_penalty: 'frequency_penalty', presence_penalty: 'presence_penalty', top_p: 'top_p',
});
/** Top-level request fields this module reads (decideBody refuses their case variants, which Go would read too). */
export const OPTION_FIELDS: readonly string[] = Object.freeze([...Object.keys(V1_FIELDS), 'max_completion_tokens']);

export interface OptionRefusal {
  status: 400 | 403;
  reason: 'bad_option' | 'unknown_option' | 'option_denied';
  error: string;
}

const HOW = `(an admin can allow it in the policy's "options" list)`;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeError(name: string, kind: Kind, v: unknown): string | null {
  if (kind === 'boolean') return typeof v === 'boolean' ? null : `options.${name} must be true or false`;
  if (kind === 'strings') return Array.isArray(v) && v.every((s) => typeof s === 'string') ? null : `options.${name} must be an array of strings`;
  return typeof v === 'number' ? null : `options.${name} must be a number`;
}

/** A token count Ollama treats as a bound (it truncates to a whole number; 0 and below mean none), capped at `max`. */
const capTokens = (n: unknown, max: number): number => (typeof n === 'number' && Math.trunc(n) >= 1 && n <= max ? n : max);

/**
 * Checks the options of a request to an inference endpoint and writes the
 * clamps into `req`. Refuses (and then changes nothing) a non-object
 * `options`, an option name Ollama does not know, an option of the wrong type,
 * and an option the policy does not list; null values are skipped, as Ollama
 * skips them. Then: numbers above optionLimits / maxNumCtx are lowered to the
 * bound, and with maxTokensPerRequest, generation gets num_predict (native) or
 * max_tokens (/v1) at most that — written in when absent, unbounded (≤ 0) or
 * above it, whether or not the peer may set num_predict itself.
 */
export function decideOptions(endpoint: EndpointName, req: Record<string, unknown>, policy: OptionsPolicy): OptionRefusal | null {
  const allowed = new Set<string>(policy.options);
  const bound = policy.maxTokensPerRequest;

  if (endpoint === 'v1.chat' || endpoint === 'v1.completions') {
    for (const [field, option] of Object.entries(V1_FIELDS)) {
      if (req[field] === undefined || req[field] === null) continue;
      if (!allowed.has(option)) return { status: 403, reason: 'option_denied', error: `${field} sets option "${option}", which is not allowed for this peer ${HOW}` };
    }
    for (const field of ['max_tokens', 'max_completion_tokens']) {
      const v = req[field];
      if (v !== undefined && v !== null && !Number.isInteger(v)) return { status: 400, reason: 'bad_option', error: `${field} must be a whole number` };
    }
    if (bound !== null) {
      req.max_tokens = capTokens(req.max_tokens, bound);
      if (typeof req.max_completion_tokens === 'number') req.max_completion_tokens = capTokens(req.max_completion_tokens, bound);
    }
    return null;
  }
  if (endpoint.startsWith('v1.')) return null;

  const options = req.options;
  if (options !== undefined && options !== null && !isRecord(options)) return { status: 400, reason: 'bad_option', error: 'options must be a JSON object' };
  const given = options ?? {};
  for (const [name, v] of Object.entries(given)) {
    const kind = KINDS.get(name);
    if (kind === undefined) return { status: 400, reason: 'unknown_option', error: `unknown option ${JSON.stringify(name)}: not one of Ollama's model options` };
    if (v === null) continue;
    if (!allowed.has(name)) return { status: 403, reason: 'option_denied', error: `option "${name}" is not allowed for this peer ${HOW}` };
    const bad = typeError(name, kind, v);
    if (bad) return { status: 400, reason: 'bad_option', error: bad };
  }

  // Everything checked: now the clamps.
  const limits: Record<string, number | undefined> = { ...policy.optionLimits, num_ctx: policy.maxNumCtx ?? undefined };
  for (const [name, v] of Object.entries(given)) {
    const limit = limits[name];
    if (limit !== undefined && typeof v === 'number' && v > limit) given[name] = limit;
  }
  if (bound !== null && (endpoint === 'generate' || endpoint === 'chat')) {
    given.num_predict = capTokens(given.num_predict, bound);
    req.options = given;
  }
  return null;
}
