/**
 * The hop-by-hop request headers a proxy acts on, Upgrade and Connection, as a
 * decision: pure, no I/O.
 */
import type { Refusal } from './policy.js';

/**
 * For decideHead. Ollama has no endpoint that switches protocols (no WebSocket, no h2c), so a
 * request asking for one (an Upgrade header, or "upgrade" in Connection) is
 * refused rather than answered as plain HTTP. Connection may name keep-alive
 * and close only: any other token asks a proxy to drop the header it names, a
 * trick that only works on proxies, so it is refused too and the record's
 * refusal says which. The guard never forwards either header (exchange.ts
 * passes only content-type, accept and user-agent).
 */
export function hopByHopRefusal(up: string | string[] | undefined, conn: string | string[] | undefined): Refusal | null {
  const tokens = (Array.isArray(conn) ? conn.join(',') : conn ?? '').split(',').map((t) => t.trim().toLowerCase()).filter(Boolean);
  if ((up !== undefined && String(up).trim() !== '') || tokens.includes('upgrade')) {
    return { status: 400, reason: 'upgrade_refused', error: 'protocol upgrades (Upgrade, Connection: upgrade) are not supported' };
  }
  const other = tokens.find((t) => t !== 'keep-alive' && t !== 'close');
  if (other !== undefined) {
    const shown = /^[\x21-\x7e]{1,64}$/.test(other) ? other : 'an unexpected value';
    return { status: 400, reason: 'connection_option_refused', error: `Connection may only be keep-alive or close, not ${JSON.stringify(shown)}` };
  }
  return null;
}
