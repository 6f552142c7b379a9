import type { Family } from '../core/firewall-plan.js';
import type { Runner } from './exec.js';

/** iptables/ip6tables and ipset, through their save/restore programs only. */
export interface FirewallDriver {
  save(family: Family): Promise<string>;
  /** One atomic transaction (`--noflush`: other chains are left alone). */
  restore(family: Family, text: string): Promise<void>;
  /** `ipset save NAME`, or '' when the set does not exist. */
  saveSet(name: string): Promise<string>;
  restoreSet(text: string): Promise<void>;
  destroySet(name: string): Promise<void>;
}

const tool = (family: Family, what: 'save' | 'restore'): string =>
  `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${what}`;

export function createFirewall(run: Runner): FirewallDriver {
  return {
    async save(family) {
      return (await run(tool(family, 'save'), ['-t', 'filter'])).stdout;
    },
    async restore(family, text) {
      await run(tool(family, 'restore'), ['--noflush', '--wait', '10'], { input: text });
    },
    async saveSet(name) {
      const r = await run('ipset', ['save', name], { okExitCodes: [1] });
      return r.exitCode === 0 ? r.stdout : '';
    },
    async restoreSet(text) {
      await run('ipset', ['restore'], { input: text });
    },
    async destroySet(name) {
      await run('ipset', ['destroy', name], { okExitCodes: [1] });
    },
  };
}
