import type { ServerResponse } from 'node:http';
import type { Refusal } from '../core/policy.js';

/**
 * On every answer: a browser holding the peer's certificate must not let another site embed
 * or sniff one (an <img> or <script> of /api/tags); API clients ignore both.
 */
export const NOT_FOR_OTHER_SITES = Object.freeze({ 'x-content-type-options': 'nosniff', 'cross-origin-resource-policy': 'same-origin' });

export function refusalBody(r: Refusal): string {
  return JSON.stringify({ error: r.error });
}

/** Answers like Ollama: JSON {"error": "..."} with the status, plus Allow / Retry-After where they apply. */
export function sendRefusal(res: ServerResponse, r: Refusal, close: boolean): number {
  const body = refusalBody(r);
  const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...NOT_FOR_OTHER_SITES };
  if (r.allow) headers.allow = r.allow.join(', ');
  if (r.retryAfterSec !== undefined) headers['retry-after'] = Math.max(1, Math.ceil(r.retryAfterSec));
  if (close) headers.connection = 'close';
  res.writeHead(r.status, headers);
  res.end(body);
  return Buffer.byteLength(body);
}
