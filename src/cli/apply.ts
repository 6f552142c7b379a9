import type { Config } from '../config.js';
import { WgoError } from '../errors.js';
import { requestControl } from '../gateway/control.js';
import type { ReconcileResult } from '../gateway/reconciler.js';
import type { Io } from './output.js';

/**
 * After a committed change: ask the running daemon to apply it now and wait
 * for the result. Without a daemon the change is saved and applies when
 * `serve` starts; that is said on stderr, and `live` is false.
 */
export async function applyNow(config: Config, io: Io): Promise<{ live: boolean; result?: ReconcileResult }> {
  try {
    const result = await requestControl<ReconcileResult>(config.paths.socket, 'reconcile', 15_000);
    if (!result.ok) io.err(`warning: the change is saved but applying it reported: ${result.errors.join('; ')}\n`);
    return { live: result.ok, result };
  } catch (e) {
    if (e instanceof WgoError && e.code === 'DAEMON_UNREACHABLE') {
      io.err('note: wg-ollama serve is not running; the change is saved and applies when it starts\n');
      return { live: false };
    }
    throw e;
  }
}
