import type { Runner } from './exec.js';

/** Deletes connection-tracking entries so that open flows of a removed peer die at once. */
export interface ConntrackDriver {
  cut(address: string): Promise<void>;
}

export function createConntrack(run: Runner): ConntrackDriver {
  return {
    async cut(address) {
      // Exit 1 means "no entry matched": nothing to cut.
      await run('conntrack', ['-D', '-s', address], { okExitCodes: [1] });
      await run('conntrack', ['-D', '-d', address], { okExitCodes: [1] });
    },
  };
}
