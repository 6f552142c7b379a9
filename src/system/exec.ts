import { execa } from 'execa';
import { WgoError } from '../errors.js';

export interface RunOptions {
  /** Written to the program's stdin (how secrets travel); never logged or put in errors. */
  input?: string;
  /** Exit codes that are not failures (e.g. conntrack's 1 for "nothing matched"). */
  okExitCodes?: number[];
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs one external program with an argument array. The only way wg-ollama runs programs. */
export type Runner = (file: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

const INSTALL_HINT: Record<string, string> = {
  wg: 'wireguard-tools',
  'wireguard-go': 'wireguard-go',
  ip: 'iproute2',
  ipset: 'ipset',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  'ip6tables-save': 'iptables',
  'ip6tables-restore': 'iptables',
  conntrack: 'conntrack',
  tc: 'iproute2',
};

/**
 * The real runner: execa with argv (no shell), LC_ALL=C for parseable output,
 * and errors that carry the command line and its stderr (never stdin).
 */
export const execRunner: Runner = async (file, args, options = {}) => {
  const ok = new Set([0, ...(options.okExitCodes ?? [])]);
  let result;
  try {
    result = await execa(file, args, {
      input: options.input ?? '',
      reject: false,
      timeout: options.timeoutMs ?? 30_000,
      env: { LC_ALL: 'C' },
      stripFinalNewline: false,
      maxBuffer: 256 * 1024 * 1024,
    });
  } catch (e) {
    throw new WgoError('EXEC_FAILED', `${file}: ${(e as Error).message}`, { cause: e });
  }
  if (result.failed && result.code === 'ENOENT') {
    const pkg = INSTALL_HINT[file];
    throw new WgoError('MISSING_PROGRAM', `${file} is not installed${pkg ? ` (apt-get install ${pkg})` : ''}`);
  }
  const exitCode = result.exitCode ?? -1;
  if (!ok.has(exitCode)) {
    const why = result.timedOut ? 'timed out' : `exited ${exitCode}`;
    const err = String(result.stderr).trim().split('\n').slice(-3).join(' | ');
    throw new WgoError('EXEC_FAILED', `${file} ${args.join(' ')} ${why}${err ? `: ${err}` : ''}`);
  }
  return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode };
};
