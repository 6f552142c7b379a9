import { ingressInSync, parseIngress, planIngress, type IngressSpec } from '../core/ingress-plan.js';
import type { IngressDriver } from '../system/ingress.js';
import { WgoError } from '../errors.js';

/** Is the tc barrier on the interface exactly ours? (The interface must exist.) */
export async function ingressBarrierInSync(tc: IngressDriver, spec: IngressSpec): Promise<boolean> {
  const shown = await tc.show(spec.iface);
  return ingressInSync(parseIngress(shown.qdisc, shown.filters), spec);
}

/**
 * Puts the tc barrier right on an existing interface and checks that it took;
 * returns true when something had to be done (`alreadyShown`: what `show`
 * printed moments ago, to save a round of tc processes). Throws when it cannot be
 * installed (no tc, no sch_ingress or cls_bpf in the kernel): the caller
 * fails closed.
 */
export async function ensureIngressBarrier(tc: IngressDriver, spec: IngressSpec, alreadyShown?: { qdisc: string; filters: string }): Promise<boolean> {
  const shown = alreadyShown ?? (await tc.show(spec.iface));
  const plan = planIngress(parseIngress(shown.qdisc, shown.filters), spec);
  if (plan.length === 0) return false;
  for (const args of plan) await tc.tc(args);
  if (!(await ingressBarrierInSync(tc, spec))) throw new WgoError('INTERNAL', `the tc ingress barrier on ${spec.iface} is not in place after installing it`);
  return true;
}
