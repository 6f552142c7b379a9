import { Counter, Gauge, Registry } from 'prom-client';
import { modelLabeller } from '../core/metric-labels.js';
import type { RequestRecord } from '../core/request-record.js';
import { certificateRepository } from '../db/certificates.js';
import { connectionRepository } from '../db/connections.js';
import type { Db } from '../db/open.js';
import { peerRepository } from '../db/peers.js';
import { effectiveStatus } from './peer-service.js';

/**
 * The gateway's metrics: requests and tokens from the records guards send,
 * and per-peer WireGuard state read from the database at scrape time.
 */
export function gatewayMetrics(registry: Registry, db: Db, clock: () => number = Date.now) {
  const peers = peerRepository(db);
  const conns = connectionRepository(db);
  const certs = certificateRepository(db);
  const requests = new Counter({ name: 'wgo_requests_total', help: 'LLM requests recorded by guards, by peer, model and status', labelNames: ['peer', 'model', 'status'] as const, registers: [registry] });
  const tokens = new Counter({ name: 'wgo_tokens_total', help: 'Tokens recorded by guards, by peer, model and kind', labelNames: ['peer', 'model', 'kind'] as const, registers: [registry] });
  const refusals = new Counter({ name: 'wgo_refusals_total', help: 'Requests guards refused, by reason', labelNames: ['reason'] as const, registers: [registry] });

  const live = () => {
    const now = clock();
    return { now, list: peers.live().filter((p) => effectiveStatus(p, now) === 'active'), links: conns.links() };
  };
  new Gauge({
    name: 'wgo_peer_handshake_age_seconds', help: 'Seconds since the latest WireGuard handshake of each active peer (absent: never)', labelNames: ['peer'] as const, registers: [registry],
    collect() {
      this.reset();
      const { now, list, links } = live();
      for (const p of list) {
        const l = links.get(p.id);
        if (l && l.publicKey === p.publicKey && l.latestHandshake > 0) this.set({ peer: p.name }, Math.max(0, Math.round(now / 1000 - l.latestHandshake)));
      }
    },
  });
  for (const dir of ['rx', 'tx'] as const) {
    new Gauge({
      name: `wgo_peer_${dir}_bytes`, help: `Bytes ${dir === 'rx' ? 'received from' : 'sent to'} each peer through the tunnel`, labelNames: ['peer'] as const, registers: [registry],
      collect() {
        this.reset();
        const { list, links } = live();
        for (const p of list) this.set({ peer: p.name }, links.get(p.id)?.[dir === 'rx' ? 'rxTotal' : 'txTotal'] ?? 0);
      },
    });
  }
  new Gauge({
    name: 'wgo_peers', help: 'Peers by status', labelNames: ['status'] as const, registers: [registry],
    collect() {
      this.reset();
      const now = clock();
      const counts: Record<string, number> = { active: 0, disabled: 0, expired: 0 };
      for (const p of peers.live()) counts[effectiveStatus(p, now)] = (counts[effectiveStatus(p, now)] ?? 0) + 1;
      for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
    },
  });
  new Gauge({
    name: 'wgo_guard_last_seen_seconds', help: 'Seconds since each guard last talked to the sync API', labelNames: ['guard'] as const, registers: [registry],
    collect() {
      this.reset();
      const now = clock();
      for (const g of certs.guards()) if (g.revokedAt === null && g.lastSeenAt !== null) this.set({ guard: g.name }, Math.round((now - g.lastSeenAt) / 1000));
    },
  });
  // Model names come from clients (through the guards' records): only served ones, bounded in number.
  const label = modelLabeller();
  return {
    records(list: readonly Omit<RequestRecord, 'seq'>[]): void {
      for (const r of list) {
        const model = label(r.model, r.status > 0 && r.status < 400 && r.refusal === null);
        requests.inc({ peer: r.peer ?? '', model, status: String(r.status) });
        if (r.promptTokens) tokens.inc({ peer: r.peer ?? '', model, kind: 'prompt' }, r.promptTokens);
        if (r.evalTokens) tokens.inc({ peer: r.peer ?? '', model, kind: 'eval' }, r.evalTokens);
        if (r.refusal) refusals.inc({ reason: r.refusal });
      }
    },
  };
}

/**
 * Each firewall layer at the latest full reconcile: true in place (or put
 * right), false failed (the interface is then kept down), null not checked yet.
 * `iptables`: chains, hooks and peer set; `tc`: the ingress barrier on the tunnel interface.
 */
export interface FirewallLayers {
  iptables: boolean | null;
  tc: boolean | null;
}

/** `wgo_firewall_layer_ok{layer}`: 1 in place, 0 failed (alert on 0). */
export function firewallMetrics(registry: Registry, layers: () => FirewallLayers): void {
  new Gauge({
    name: 'wgo_firewall_layer_ok', help: 'Whether each firewall layer (iptables, tc) was in place at the latest full reconcile (0: failed, interface kept down)',
    labelNames: ['layer'] as const, registers: [registry],
    collect() {
      this.reset();
      for (const [layer, ok] of Object.entries(layers())) if (ok !== null) this.set({ layer }, ok ? 1 : 0);
    },
  });
}
