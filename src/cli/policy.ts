import type { Config } from '../config.js';
import { overridesFromFlags, type PolicyInput } from '../core/policy-input.js';
import { badInput } from '../errors.js';
import { openGateway } from '../gateway/context.js';
import type { Actor } from '../gateway/peer-service.js';
import { emit, escapeControl, type Io } from './output.js';

export interface PolicyOptions extends PolicyInput {
  reset?: boolean;
  json?: boolean;
}

export { overridesFromFlags };

/** Model lists read "any" (null) and "none" ([]); other nulls are "unlimited". */
const MODEL_LISTS = new Set(['models', 'writeModels']);
/** One policy value as set-policy prints it: lists comma-separated, bounds as name=N, booleans on/off. */
function showValue(k: string, v: unknown): string {
  if (MODEL_LISTS.has(k) && (v === null || (Array.isArray(v) && v.length === 0))) return v === null ? 'any' : 'none';
  if (v === null) return 'unlimited';
  if (Array.isArray(v)) return escapeControl(v.join(',')) || 'none';
  if (typeof v === 'object') return Object.entries(v).map(([name, n]) => `${name}=${String(n)}`).join(',') || 'none';
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return String(v);
}

/**
 * `wg-ollama set-policy NAME [flags]`: changes only the fields given (on top
 * of the peer's current overrides); `--reset` goes back to the configured
 * default first. Prints the effective policy. The guard applies it within a
 * second (serve wakes the guard's long-poll).
 */
export function setPolicy(config: Config, name: string, o: PolicyOptions, io: Io, who: Actor): void {
  const changes = overridesFromFlags(o);
  if (!o.reset && Object.keys(changes).length === 0) throw badInput('nothing to change: give at least one policy flag, or --reset');
  const ctx = openGateway(config);
  try {
    const current = o.reset ? {} : (ctx.peers.show(name).policy ?? {});
    const merged = { ...current, ...changes };
    const r = ctx.peers.setPolicy(name, Object.keys(merged).length ? merged : null, who);
    emit(io, o.json, { name: r.peer.name, overrides: r.peer.policy, effective: r.effective, changed: r.changed }, (d) =>
      `${d.name}: policy${d.changed ? '' : ' (unchanged)'}\n` +
      Object.entries(d.effective).map(([k, v]) => `  ${k.padEnd(20)} ${showValue(k, v)}${d.overrides && k in d.overrides ? '  (set for this peer)' : ''}`).join('\n') + '\n');
  } finally {
    ctx.close();
  }
}
