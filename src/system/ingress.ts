import type { Runner } from './exec.js';

/** tc on one interface: read the qdiscs and ingress filters as JSON, run one tc command. */
export interface IngressDriver {
  /** `tc -j qdisc show dev X` and `tc -j filter show dev X ingress` (the device must exist). */
  show(iface: string): Promise<{ qdisc: string; filters: string }>;
  /** One `tc` command, argv without the program name. */
  tc(args: readonly string[]): Promise<void>;
}

export function createIngress(run: Runner): IngressDriver {
  return {
    async show(iface) {
      const [q, f] = await Promise.all([
        run('tc', ['-j', 'qdisc', 'show', 'dev', iface]),
        run('tc', ['-j', 'filter', 'show', 'dev', iface, 'ingress']),
      ]);
      return { qdisc: q.stdout, filters: f.stdout };
    },
    async tc(args) {
      await run('tc', args);
    },
  };
}
