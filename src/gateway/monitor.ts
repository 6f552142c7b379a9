import type { EventLog } from '../core/log-events.js';
import { observePeer, type LinkState, type MonitorSettings } from '../core/monitor.js';
import type { WgDump } from '../core/wg-dump.js';
import { connectionRepository } from '../db/connections.js';
import type { Db } from '../db/open.js';
import { peerRepository } from '../db/peers.js';

function sameLink(a: LinkState | undefined, b: LinkState): boolean {
  if (!a) return false;
  return (Object.keys(b) as (keyof LinkState)[]).every((k) => a[k] === b[k]);
}

/**
 * The connection monitor: reads the WireGuard peer table and records
 * handshakes, lost handshakes, endpoint changes and traffic in SQLite.
 * State survives restarts through the peer_link table.
 */
export function createMonitor(deps: { db: Db; dump: () => Promise<WgDump>; settings: MonitorSettings; log: EventLog; clock?: () => number }) {
  const conns = connectionRepository(deps.db);
  const peers = peerRepository(deps.db);
  const clock = deps.clock ?? Date.now;
  const state: Map<number, LinkState> = conns.links();

  return {
    async tick(): Promise<number> {
      const dump = await deps.dump();
      const now = clock();
      const byKey = new Map(dump.peers.map((p) => [p.publicKey, p]));
      const items = [];
      const seen = new Set<number>();
      // The new states take effect only once saved: a failed write (a full disk) is tried again at
      // the next tick with the same events, so none is lost.
      const next = new Map(state);
      for (const p of peers.live()) {
        seen.add(p.id);
        const cur = byKey.get(p.publicKey);
        const prev = state.get(p.id);
        const o = observePeer(prev, cur, now, deps.settings);
        if (o.next) next.set(p.id, o.next);
        // Only what changed is written: an idle peer costs no database write.
        if (o.events.length || (o.next && !sameLink(prev, o.next))) items.push({ peerId: p.id, state: o.next, events: o.events });
      }
      // Revoked peers are no longer live: close out what they had open.
      for (const [id, prev] of state) {
        if (seen.has(id)) continue;
        const o = observePeer(prev, undefined, now, deps.settings);
        next.delete(id);
        if (o.events.length) items.push({ peerId: id, state: o.next, events: o.events });
      }
      conns.saveTick(now, items);
      state.clear();
      for (const [id, s] of next) state.set(id, s);
      const count = items.reduce((n, i) => n + i.events.length, 0);
      if (count) deps.log.debug({ event: 'monitor.recorded', events: count }, 'connection events recorded');
      return count;
    },
  };
}
