import type { Config } from '../config.js';
import { chainNames } from '../core/firewall-plan.js';
import { WgoError } from '../errors.js';
import { requestControl } from '../gateway/control.js';
import type { ReconcileResult } from '../gateway/reconciler.js';
import { createConntrack } from '../system/conntrack.js';
import { execRunner } from '../system/exec.js';
import { createFirewall } from '../system/firewall.js';
import { createWireguard } from '../system/wireguard.js';
import type { Io } from './output.js';

/** What must stop working at once: keys out of WireGuard, addresses out of the firewall, flows cut. */
export interface Removal {
  publicKeys: string[];
  setAddresses: string[];
  cutAddresses: string[];
}

/**
 * After a committed change: ask the running daemon to apply it now and wait
 * for the result. Without a daemon, a change that takes access away is still
 * applied at once, directly (removals only ever close things, so this is safe
 * next to a daemon that starts meanwhile); anything else is saved and applies
 * when `serve` starts, which is said on stderr, and `live` is false.
 */
export async function applyNow(config: Config, io: Io, removal?: Removal): Promise<{ live: boolean; result?: ReconcileResult }> {
  let result: ReconcileResult;
  try {
    result = await requestControl<ReconcileResult>(config.paths.socket, 'reconcile', 15_000);
  } catch (e) {
    if (!(e instanceof WgoError && e.code === 'DAEMON_UNREACHABLE')) throw e;
    if (removal) {
      await removeDirectly(config, removal);
      io.err('note: wg-ollama serve is not running; access was removed directly, the rest applies when it starts\n');
      return { live: true };
    }
    io.err('note: wg-ollama serve is not running; the change is saved and applies when it starts\n');
    return { live: false };
  }
  if (!result.ok) {
    const why = `the change is saved but applying it failed: ${result.errors.join('; ')}`;
    if (removal) throw new WgoError('EXEC_FAILED', `${why} (the daemon retries every second)`);
    io.err(`warning: ${why}\n`);
  }
  return { live: result.ok, result };
}

async function removeDirectly(config: Config, r: Removal): Promise<void> {
  const wg = createWireguard(execRunner);
  const fw = createFirewall(execRunner);
  const set = chainNames(config.interface).set;
  if (r.publicKeys.length && (await wg.link(config.interface))) {
    await wg.set(['set', config.interface, ...r.publicKeys.flatMap((k) => ['peer', k, 'remove'])]);
  }
  if (r.setAddresses.length && (await fw.saveSet(set)) !== '') {
    await fw.restoreSet(r.setAddresses.map((a) => `del ${set} ${a} -exist`).join('\n') + '\n');
  }
  const conntrack = createConntrack(execRunner);
  for (const a of r.cutAddresses) await conntrack.cut(a);
}
