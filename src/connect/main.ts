/**
 * The standalone connector, bundled into one file (scripts/build-connect.mjs)
 * that an admin hands to staff: `node wg-ollama-connect.mjs NAME.connect.json`.
 * Pure Node.js ≥ 20: no root, no native module, no WireGuard tools needed.
 */
import { Command, CommanderError } from 'commander';
import { exitCodeOf } from '../core/exit-code.js';
import { WgoError } from '../errors.js';
import { describeConnect } from './options.js';
import { runConnect, type ConnectIo } from './run.js';

export async function connectMain(argv: string[], io: ConnectIo): Promise<number> {
  let code = 0;
  const program = describeConnect(new Command('wg-ollama-connect'))
    .description("makes your team's GPU look like a local Ollama: forwards http://127.0.0.1:11434 to the wg-ollama guard with your certificate")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .action(async (profile: string, o) => {
      code = await runConnect(profile, o, io);
    });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.code === 'commander.helpDisplayed' || e.code === 'commander.help' ? 0 : 2;
    const msg = (e as Error).message.replace(/[\u0000-\u001f\u007f]/g, ' ');
    io.err(`wg-ollama-connect: ${msg}\n`);
    return e instanceof WgoError ? exitCodeOf(e.kind) : 1;
  }
}
