import { Command, Option } from 'commander';
import { DEFAULT_CONNECT_LISTEN } from '../core/connect.js';

export interface ConnectOptions {
  listen?: string;
  allowRemote?: boolean;
  check?: boolean;
  json?: boolean;
}

/** The connect verb's arguments and options, the same in `wg-ollama connect` and the standalone wg-ollama-connect. */
export function describeConnect(cmd: Command): Command {
  return cmd
    .argument('<profile>', 'the NAME.connect.json file your admin gave you')
    .option('--listen <ip:port>', `local address to listen on (default ${DEFAULT_CONNECT_LISTEN}, where Ollama clients look)`)
    .option('--allow-remote', 'allow a --listen address other computers can reach: they then use your identity')
    .option('--check', 'check the certificate, the tunnel and the guard, then exit (1 if something is wrong)')
    .addOption(new Option('--json', 'with --check: print the report as JSON'));
}

