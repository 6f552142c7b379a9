import {
  chainNames,
  firewallInSync,
  parseIpsetSave,
  parseIptablesSave,
  renderRestore,
  renderSetRestore,
  renderTeardown,
  type Family,
  type FirewallSpec,
} from '../core/firewall-plan.js';
import type { FirewallDriver } from '../system/firewall.js';

const FAMILIES: Family[] = ['ipv4', 'ipv6'];

export interface FirewallReport {
  inSync: Record<Family, boolean>;
  setExists: boolean;
  setEntries: string[];
}

/** Reads what the kernel has and compares it with the plan. */
export async function inspectFirewall(fw: FirewallDriver, spec: FirewallSpec): Promise<FirewallReport> {
  const name = chainNames(spec.iface).set;
  const [s4, s6, set] = await Promise.all([fw.save('ipv4'), fw.save('ipv6'), fw.saveSet(name)]);
  return {
    inSync: {
      ipv4: firewallInSync(parseIptablesSave(s4), spec, 'ipv4'),
      ipv6: firewallInSync(parseIptablesSave(s6), spec, 'ipv6'),
    },
    setExists: set !== '',
    setEntries: [...parseIpsetSave(set, name).keys()],
  };
}

/**
 * Installs the closed firewall without touching the peer set's entries: the
 * set is created empty if missing, chains and hooks put right. Used at boot
 * before the interface exists (`firewall-init`), and is idempotent.
 */
export async function ensureClosedFirewall(fw: FirewallDriver, spec: FirewallSpec): Promise<Family[]> {
  await fw.restoreSet(renderSetRestore(chainNames(spec.iface).set, { add: [], del: [] }));
  const [s4, s6] = await Promise.all([fw.save('ipv4'), fw.save('ipv6')]);
  return repairRules(fw, spec, { ipv4: s4, ipv6: s6 });
}

/** Puts chains and hooks right where `iptables-save` output shows they are not; returns what was repaired. */
export async function repairRules(fw: FirewallDriver, spec: FirewallSpec, saves: Record<Family, string>): Promise<Family[]> {
  const repaired: Family[] = [];
  for (const family of FAMILIES) {
    const saved = parseIptablesSave(saves[family]);
    if (!firewallInSync(saved, spec, family)) {
      await fw.restore(family, renderRestore(saved, spec, family));
      repaired.push(family);
    }
  }
  return repaired;
}

/** Removes hooks, chains and the set: only `wg-ollama down` calls this. */
export async function removeFirewall(fw: FirewallDriver, iface: string): Promise<void> {
  for (const family of FAMILIES) {
    const text = renderTeardown(parseIptablesSave(await fw.save(family)), iface);
    if (text) await fw.restore(family, text);
  }
  await fw.destroySet(chainNames(iface).set);
}
