import { parseDuration } from './duration.js';
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
  if (o.apiTokens !== undefined) {
    if (o.apiTokens !== 'on' && o.apiTokens !== 'off') throw badInput(`--api-tokens "${o.apiTokens}" must be on or off`);
    p.apiTokens = o.apiTokens === 'on';
  }
  return p;
}
