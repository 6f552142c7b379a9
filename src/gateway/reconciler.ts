import type { EventLog } from '../core/log-events.js';
import type { DesiredState } from '../core/desired.js';
import { chainNames, diffSet, parseIpsetSave, renderSetRestore, setEntryFor, type Family, type FirewallSpec } from '../core/firewall-plan.js';
import { diffWireguard, isWgDiffEmpty, renderSyncConf, wgSetArgs } from '../core/wg-plan.js';
import type { ConntrackDriver } from '../system/conntrack.js';
import type { FirewallDriver } from '../system/firewall.js';
import type { IngressDriver } from '../system/ingress.js';
import type { WgImpl, WireguardDriver } from '../system/wireguard.js';
import { repairRules } from './firewall.js';
import { ensureIngressBarrier } from './ingress.js';
import type { DesiredChanges } from './context.js';
import { isDeltaEmpty, planDelta } from '../core/delta.js';

/** Above this many changed peers one `wg syncconf` (stdin) replaces one `wg set` (argv). */
const SYNCCONF_THRESHOLD = 200;

export interface ReconcileDeps {
  loadDesired: () => DesiredState;
  /** The fast path's input: peers changed since the last load (null: do a full run). */
  loadChanges?: () => DesiredChanges | null;
  wg: WireguardDriver;
  fw: FirewallDriver;
  /** tc on the tunnel interface: the second barrier, independent of netfilter. */
  tc: IngressDriver;
  conntrack: ConntrackDriver;
  privateKey: string;
  privateKeyFile: string;
  wireguard: 'auto' | WgImpl;
  wireguardGo: string;
  log: EventLog;
  clock?: () => number;
  /** Addresses whose flows still need cutting (a failed cut is retried on the next run). */
  pendingCuts?: Set<string>;
}

/** What one reconcile did and reached. */
export interface ReconcileResult {
  ok: boolean;
  /** `full`: read the kernel and put everything right; `changes`: applied only what was committed. */
  mode: 'full' | 'changes';
  peers: number;
  created: WgImpl | null;
  firewallRepaired: Family[];
  /**
   * The tc ingress barrier on the interface: already in place, put right by
   * this run, or failed (the interface is then kept down); null when this run
   * did not look (the fast path, or the iptables side failed first).
   */
  barrier: 'in-place' | 'repaired' | 'failed' | null;
  setAdded: number;
  setRemoved: number;
  wgUpserted: number;
  wgRemoved: number;
  cut: string[];
  /** True when nothing differed and nothing was applied. */
  noop: boolean;
  errors: string[];
  durationMs: number;
}

/** Cuts the flows of these addresses and of any whose cut failed before (kept until it succeeds). */
async function cutFlows(d: ReconcileDeps, addresses: Iterable<string>, r: ReconcileResult, fail: (step: string, e: unknown) => void): Promise<void> {
  const pending = d.pendingCuts ?? new Set<string>();
  for (const a of addresses) pending.add(a);
  for (const a of [...pending]) {
    try {
      await d.conntrack.cut(a);
      pending.delete(a);
      r.cut.push(a);
    } catch (e) {
      fail(`conntrack ${a}`, e);
    }
  }
}

/**
 * The tc barrier on the (existing) interface; on failure the interface is
 * taken down and stays down until a run installs it: fail closed.
 */
async function ensureBarrier(d: ReconcileDeps, spec: FirewallSpec, r: ReconcileResult, fail: (step: string, e: unknown) => void,
  up: boolean, shown: { qdisc: string; filters: string } | null): Promise<boolean> {
  try {
    r.barrier = (await ensureIngressBarrier(d.tc, spec, shown ?? undefined)) ? 'repaired' : 'in-place';
    if (r.barrier === 'repaired') r.noop = false;
    return true;
  } catch (e) {
    r.barrier = 'failed';
    fail('tunnel barrier', e);
    d.log.error({ event: 'tunnel-barrier.failed', iface: spec.iface, err: (e as Error).message },
      'cannot install the tc ingress barrier on the tunnel interface: keeping it down (fail closed)');
    if (up) await d.wg.setUp(spec.iface, false).catch((err) => fail('fail-closed link down', err));
    return false;
  }
}

/**
 * Brings kernel state to the desired state. Firewall first (so the interface
 * never exists without its rules), additions before removals, flows of removed
 * peers cut last. If the firewall or the tc barrier cannot be ensured the
 * interface is taken down: fail closed.
 */
export async function reconcileOnce(d: ReconcileDeps): Promise<ReconcileResult> {
  const start = performance.now();
  const desired = d.loadDesired();
  const r: ReconcileResult = {
    ok: true, mode: 'full', peers: desired.peers.length, created: null, firewallRepaired: [], barrier: null, setAdded: 0,
    setRemoved: 0, wgUpserted: 0, wgRemoved: 0, cut: [], noop: true, errors: [], durationMs: 0,
  };
  const fail = (step: string, e: unknown): void => {
    r.ok = false;
    r.noop = false;
    r.errors.push(`${step}: ${(e as Error).message}`);
  };
  const spec: FirewallSpec = { iface: desired.iface, ollamaHost: desired.ollamaHost, ollamaPort: desired.ollamaPort };
  const names = chainNames(desired.iface);

  // Every read at once; the peer table and tc too (they fail harmlessly when the interface is missing).
  const [save4, save6, setText, link, firstDump, firstTc] = await Promise.all([
    d.fw.save('ipv4'), d.fw.save('ipv6'), d.fw.saveSet(names.set), d.wg.link(desired.iface),
    d.wg.dump(desired.iface).catch(() => null), d.tc.show(desired.iface).catch(() => null),
  ]);
  const now = (d.clock ?? Date.now)();
  const want = new Map(desired.peers.map((p) => [p.address, setEntryFor(p.name, p.expiresAt, now)]));
  const setDiff = diffSet(want, parseIpsetSave(setText, names.set));

  // 1. The set must exist before rules refer to it; additions now, deletions after WireGuard.
  let firewallOk = true;
  try {
    if (setText === '' || setDiff.add.length > 0) {
      await d.fw.restoreSet(renderSetRestore(names.set, { add: setDiff.add, del: [] }));
      r.setAdded = setDiff.add.length;
      r.noop = false;
    }
    r.firewallRepaired = await repairRules(d.fw, spec, { ipv4: save4, ipv6: save6 });
    if (r.firewallRepaired.length) r.noop = false;
  } catch (e) {
    firewallOk = false;
    fail('firewall', e);
  }
  if (!firewallOk) {
    if (link?.up) await d.wg.setUp(desired.iface, false).catch((e) => fail('fail-closed link down', e));
    r.durationMs = performance.now() - start;
    return r;
  }

  // 2. The interface, its second barrier (before it is ever up), its identity, then the peer table.
  let cut = new Set<string>();
  let createError: unknown = null;
  try {
    if (!link) {
      r.created = await d.wg.create(desired.iface, d.wireguard, d.wireguardGo);
      r.noop = false;
    }
  } catch (e) {
    createError = e;
  }
  const barrierOk = !createError && (await ensureBarrier(d, spec, r, fail, !!link?.up, link && !r.created ? firstTc : null));
  try {
    if (createError) throw createError;
    let dump = link && firstDump ? firstDump : await d.wg.dump(desired.iface);
    if (dump.iface.privateKey !== d.privateKey || dump.iface.listenPort !== desired.listenPort) {
      await d.wg.setIdentity(desired.iface, d.privateKeyFile, desired.listenPort);
      dump = await d.wg.dump(desired.iface);
      r.noop = false;
    }
    const current = link && !r.created ? link : { up: false, addresses: [] };
    if (!current.addresses.includes(desired.addressCidr)) {
      await d.wg.addAddress(desired.iface, desired.addressCidr);
      r.noop = false;
    }
    if (!current.up && barrierOk) {
      await d.wg.setUp(desired.iface, true);
      r.noop = false;
    }
    const diff = diffWireguard(desired, dump);
    // Decided before applying: if the apply fails half-way, these are still cut.
    cut = new Set(diff.cutAddresses);
    if (!isWgDiffEmpty(diff)) {
      if (diff.upsert.length + diff.remove.length > SYNCCONF_THRESHOLD) {
        await d.wg.syncconf(desired.iface, renderSyncConf(desired, d.privateKey));
      } else {
        await d.wg.set(wgSetArgs(desired.iface, diff, desired.listenPort));
      }
      r.wgUpserted = diff.upsert.length;
      r.wgRemoved = diff.remove.length;
      r.noop = false;
    }
  } catch (e) {
    fail('wireguard', e);
  }

  // 3. Removals from the firewall, then cut the flows of every address that lost its key.
  try {
    if (setDiff.del.length > 0) {
      await d.fw.restoreSet(renderSetRestore(names.set, { add: [], del: setDiff.del }));
      r.setRemoved = setDiff.del.length;
      r.noop = false;
    }
  } catch (e) {
    fail('firewall set', e);
  }
  for (const a of setDiff.del) cut.add(a);
  await cutFlows(d, cut, r, fail);
  if (r.cut.length) r.noop = false;
  r.durationMs = performance.now() - start;
  return r;
}

/**
 * The fast path after a commit: apply only what changed, without reading the
 * kernel first (the periodic full reconcile repairs any drift). Set additions
 * and the WireGuard change run side by side — a peer in WireGuard but not yet
 * in the set is still dropped — then set removals, then cuts. Returns null
 * when a full run is needed instead: no baseline, or too big a change.
 */
export async function applyChanges(d: ReconcileDeps, ch: DesiredChanges): Promise<ReconcileResult | null> {
  const start = performance.now();
  const now = (d.clock ?? Date.now)();
  const plan = planDelta(ch.before, ch.after, now);
  const r: ReconcileResult = {
    ok: true, mode: 'changes', peers: ch.state.peers.length, created: null, firewallRepaired: [], barrier: null, setAdded: 0,
    setRemoved: 0, wgUpserted: 0, wgRemoved: 0, cut: [], noop: isDeltaEmpty(plan), errors: [], durationMs: 0,
  };
  if (r.noop) return r;
  if (plan.wgUpsert.length + plan.wgRemove.length > SYNCCONF_THRESHOLD) return null;
  const fail = (step: string, e: unknown): void => {
    r.ok = false;
    r.errors.push(`${step}: ${(e as Error).message}`);
  };
  const { iface } = ch.state;
  const set = chainNames(iface).set;
  const steps: Promise<void>[] = [];
  if (plan.setAdd.length) {
    steps.push(d.fw.restoreSet(renderSetRestore(set, { add: plan.setAdd, del: [] })).then(
      () => void (r.setAdded = plan.setAdd.length), (e) => fail('firewall set', e)));
  }
  if (plan.wgUpsert.length || plan.wgRemove.length) {
    const args = wgSetArgs(iface, { upsert: plan.wgUpsert, remove: plan.wgRemove, cutAddresses: [], listenPortWrong: false }, 0);
    steps.push(d.wg.set(args).then(() => {
      r.wgUpserted = plan.wgUpsert.length;
      r.wgRemoved = plan.wgRemove.length;
    }, (e) => fail('wireguard', e)));
  }
  await Promise.all(steps);
  if (plan.setDel.length) {
    await d.fw.restoreSet(renderSetRestore(set, { add: [], del: plan.setDel })).then(
      () => void (r.setRemoved = plan.setDel.length), (e) => fail('firewall set', e));
  }
  await cutFlows(d, plan.cut, r, fail);
  r.durationMs = performance.now() - start;
  return r;
}

/**
 * Serialises reconciles and coalesces bursts: while one runs, a request waits
 * for one more run that starts after it and sees the newest state — unless
 * `version` (the database's data_version) shows the running one already
 * started after the latest commit, in which case the request joins it.
 */
export function createReconciler(input: ReconcileDeps & { version?: () => number }) {
  const deps: ReconcileDeps = { ...input, pendingCuts: input.pendingCuts ?? new Set() };
  const version = input.version;
  let running: Promise<ReconcileResult> | null = null;
  let queued: Promise<ReconcileResult> | null = null;
  let queuedMode: Mode = 'changes';
  let startedAt = -1;
  /**
   * False while the latest full run failed (a barrier missing, the interface
   * kept down): every run is then full, so that it repairs, and so that no
   * fast-path "ok" hides the failure from status, /healthz and the metrics.
   */
  let healthy = true;

  /** The fast path, falling back to a full run when it cannot be used or fails. */
  const runChanges = async (): Promise<ReconcileResult> => {
    const ch = deps.loadChanges?.() ?? null;
    const fast = ch && healthy ? await applyChanges(deps, ch) : null;
    if (fast?.ok) return fast;
    const full = await reconcileOnce(deps);
    if (fast) full.errors.unshift(...fast.errors.map((e) => `fast path: ${e}`));
    return full;
  };

  const start = (mode: Mode): Promise<ReconcileResult> => {
    if (version) startedAt = version();
    const p = (mode === 'changes' ? runChanges() : reconcileOnce(deps))
      .catch((e: unknown): ReconcileResult => ({
        ok: false, mode, peers: 0, created: null, firewallRepaired: [], barrier: null, setAdded: 0, setRemoved: 0, wgUpserted: 0,
        wgRemoved: 0, cut: [], noop: false, errors: [(e as Error).message], durationMs: 0,
      }))
      .then((res) => {
        if (res.mode === 'full') healthy = res.ok;
        if (!res.ok) deps.log.error({ ...res, event: 'reconcile.failed' }, 'reconcile failed');
        else if (!res.noop) deps.log.info({ ...res, event: 'reconcile.done' }, 'reconciled');
        return res;
      })
      .finally(() => {
        running = null;
      });
    running = p;
    return p;
  };

  return {
    /**
     * `full` reads the kernel and repairs everything (start, periodic, expiry);
     * `changes` applies what was committed since the last run (after a commit).
     */
    request(mode: Mode = 'full'): Promise<ReconcileResult> {
      if (!running) return start(mode);
      if (version && !queued && startedAt === version()) return running;
      if (!queued) {
        queuedMode = mode;
        queued = running.then(() => {
          queued = null;
          return start(queuedMode);
        });
      } else if (mode === 'full') {
        queuedMode = 'full';
      }
      return queued;
    },
    /** The change version the latest run started at (-1 before the first). */
    startedVersion: (): number => startedAt,
    /** Resolves when no reconcile is running or queued. */
    async idle(): Promise<void> {
      while (running || queued) await (queued ?? running);
    },
  };
}

type Mode = 'full' | 'changes';

export type Reconciler = ReturnType<typeof createReconciler>;
