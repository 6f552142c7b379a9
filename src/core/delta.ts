import type { DesiredPeer } from './desired.js';
import { setEntryFor, type SetEntry } from './firewall-plan.js';

/**
 * What to do in the kernel for a handful of changed peers, without reading the
 * kernel first: the daemon's fast path after a commit. `before` is what was
 * last applied (by peer id); `after` holds the changed peers' new desired
 * value, or null when a peer no longer belongs in the kernel.
 */
export interface DeltaPlan {
  /** Peers to add to WireGuard or whose key, preshared key or address changed. */
  wgUpsert: DesiredPeer[];
  /** Public keys to remove from WireGuard. */
  wgRemove: string[];
  setAdd: [string, SetEntry][];
  setDel: string[];
  /** Addresses whose flows must be cut (peer gone, or its key or address changed). */
  cut: string[];
}

export function planDelta(
  before: ReadonlyMap<number, DesiredPeer>,
  after: ReadonlyMap<number, DesiredPeer | null>,
  now: number,
): DeltaPlan {
  const plan: DeltaPlan = { wgUpsert: [], wgRemove: [], setAdd: [], setDel: [], cut: [] };
  for (const [id, next] of after) {
    const prev = before.get(id);
    if (prev && (!next || next.publicKey !== prev.publicKey)) plan.wgRemove.push(prev.publicKey);
    if (prev && (!next || next.address !== prev.address)) plan.setDel.push(prev.address);
    if (prev && (!next || next.publicKey !== prev.publicKey || next.address !== prev.address)) plan.cut.push(prev.address);
    if (!next) continue;
    if (!prev || next.publicKey !== prev.publicKey || next.presharedKey !== prev.presharedKey || next.address !== prev.address) {
      plan.wgUpsert.push(next);
    }
    if (!prev || next.address !== prev.address || next.name !== prev.name || next.expiresAt !== prev.expiresAt) {
      plan.setAdd.push([next.address, setEntryFor(next.name, next.expiresAt, now)]);
    }
  }
  // An address handed from one changed peer to another stays in the set.
  const kept = new Set(plan.setAdd.map(([a]) => a));
  plan.setDel = plan.setDel.filter((a) => !kept.has(a));
  return plan;
}

export function isDeltaEmpty(p: DeltaPlan): boolean {
  return !p.wgUpsert.length && !p.wgRemove.length && !p.setAdd.length && !p.setDel.length && !p.cut.length;
}
