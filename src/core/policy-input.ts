import { parseDuration } from './duration.js';
import { DEFAULT_OPTIONS, LIMITABLE_OPTIONS, OPTION_NAMES, type OptionLimits } from './model-options.js';
import { ENDPOINT_NAMES } from './ollama-api.js';
import type { Policy } from './policy.js';
import { badInput } from '../errors.js';

/**
 * Policy changes as people type them — the CLI's set-policy flags and the web
 * UI's policy form share this: lists, N/min rates, "unlimited", "none".
 */
export interface PolicyInput {
  endpoints?: string;
  models?: string;
  /** Models the peer may create/copy over/delete/pull/push: a list, "none" (the default) or "any". */
  writeModels?: string;
  rate?: string;
  burst?: string;
  streams?: string;
  tokensPerDay?: string;
  maxKeepAlive?: string;
  maxNumCtx?: string;
  maxTokensPerRequest?: string;
  /** Ollama options the peer may set, comma-separated; "default" (the sampling options and num_ctx) and "all" may be among them; or "none". */
  options?: string;
  /** Upper bounds for whole-number options: "num_batch=512,num_thread=8", or "none". */
  optionLimits?: string;
  /** 'on' or 'off': whether the peer may be issued a peer-bound API token. */
  apiTokens?: string;
}

const list = (text: string): string[] => text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);

function whole(text: string, flag: string): number {
  if (!/^\d{1,12}$/.test(text)) throw badInput(`${flag} "${text}" is not a whole number`);
  return Number(text);
}

const orNone = <T>(text: string, parse: (t: string) => T): T | null => (['none', 'unlimited', 'off'].includes(text) ? null : parse(text));

/** Turns flags into policy overrides; only the flags given change anything. Validation of ranges is the service's. */
export function overridesFromFlags(o: PolicyInput): Partial<Policy> {
  const p: Partial<Policy> = {};
  if (o.endpoints !== undefined) {
    const names = list(o.endpoints);
    const unknown = names.filter((n) => !(ENDPOINT_NAMES as readonly string[]).includes(n));
    if (unknown.length) throw badInput(`unknown endpoint ${unknown.map((u) => `"${u}"`).join(', ')}; known: ${ENDPOINT_NAMES.join(', ')}`);
    p.endpoints = names as Policy['endpoints'];
  }
  if (o.models !== undefined) p.models = o.models === 'any' || o.models === 'all' ? null : list(o.models);
  if (o.writeModels !== undefined) p.writeModels = o.writeModels === 'any' || o.writeModels === 'all' ? null : o.writeModels === 'none' ? [] : list(o.writeModels);
  if (o.rate !== undefined) {
    const m = /^(\d{1,9})(?:\/(min|m|s|sec|h))?$/.exec(o.rate);
    if (!m) throw badInput(`--rate "${o.rate}" must be N, N/min, N/s or N/h`);
    const n = Number(m[1]);
    if (m[2] === 'h' && n % 60 !== 0) throw badInput(`--rate "${o.rate}": the rate is kept per minute, so N/h must be a multiple of 60`);
    p.requestsPerMinute = m[2] === 's' || m[2] === 'sec' ? n * 60 : m[2] === 'h' ? n / 60 : n;
  }
  if (o.burst !== undefined) p.burst = whole(o.burst, '--burst');
  if (o.streams !== undefined) p.maxStreams = whole(o.streams, '--streams');
  if (o.tokensPerDay !== undefined) p.tokensPerDay = orNone(o.tokensPerDay, (t) => whole(t, '--tokens-per-day'));
  if (o.maxKeepAlive !== undefined) p.maxKeepAliveSec = orNone(o.maxKeepAlive, (t) => Math.round(parseDuration(/^\d+$/.test(t) ? `${t}s` : t, '--max-keep-alive') / 1000));
  if (o.maxNumCtx !== undefined) p.maxNumCtx = orNone(o.maxNumCtx, (t) => whole(t, '--max-num-ctx'));
  if (o.maxTokensPerRequest !== undefined) p.maxTokensPerRequest = orNone(o.maxTokensPerRequest, (t) => whole(t, '--max-tokens-per-request'));
  if (o.options !== undefined) p.options = optionList(o.options);
  if (o.optionLimits !== undefined) p.optionLimits = optionLimits(o.optionLimits);
  if (o.apiTokens !== undefined) {
    if (o.apiTokens !== 'on' && o.apiTokens !== 'off') throw badInput(`--api-tokens "${o.apiTokens}" must be on or off`);
    p.apiTokens = o.apiTokens === 'on';
  }
  return p;
}

/** A list of option names, where "default" stands for DEFAULT_OPTIONS and "all" for every option; "none" alone is []. */
function optionList(text: string): Policy['options'] {
  if (text === 'none') return [];
  const expand = (n: string): readonly string[] => (n === 'default' ? DEFAULT_OPTIONS : n === 'all' ? OPTION_NAMES : [n]);
  const names = [...new Set(list(text).flatMap(expand))];
  const unknown = names.filter((n) => !(OPTION_NAMES as readonly string[]).includes(n));
  if (unknown.length) throw badInput(`unknown option ${unknown.map((u) => `"${u}"`).join(', ')}; Ollama's options: ${OPTION_NAMES.join(', ')}`);
  return names as Policy['options'];
}

const BOUND_ELSEWHERE: Record<string, string> = { num_ctx: '--max-num-ctx', num_predict: '--max-tokens-per-request' };

function optionLimits(text: string): OptionLimits {
  if (text === 'none') return {};
  const out: Record<string, number> = {};
  for (const item of list(text)) {
    const m = /^([a-z_]+)=(\d{1,12})$/.exec(item);
    if (!m) throw badInput(`--option-limits "${item}" must be NAME=N (e.g. num_batch=512)`);
    const [, name = '', n] = m;
    if (BOUND_ELSEWHERE[name]) throw badInput(`--option-limits: ${name} is bounded by ${BOUND_ELSEWHERE[name]}`);
    if (!(LIMITABLE_OPTIONS as readonly string[]).includes(name)) {
      throw badInput(`--option-limits: "${name}" cannot be bounded; options that can: ${LIMITABLE_OPTIONS.join(', ')}`);
    }
    out[name] = Number(n);
  }
  return out;
}
