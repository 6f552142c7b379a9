import { writeSync } from 'node:fs';
import { userInfo } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import type { Logger } from 'pino';
import { configFileFrom, loadConfig } from '../config.js';
import type { Actor } from '../gateway/peer-service.js';
import { describeConnect as connectVerb } from '../connect/options.js';
import { exitCodeOf } from '../core/exit-code.js';
import type { LogEvent } from '../core/log-events.js';
import { asWgoError, type Io } from './output.js';

// Verb implementations are imported when their verb runs: `--help` and small
// verbs do not pay for SQLite, QR, logging and process libraries they never use.
const peersCli = () => import('./peers.js');
const systemCli = () => import('./system.js');

/** The last log line of a serve or guard that stops on an error. */
const DAEMON_FAILED = { serve: 'serve.failed', guard: 'guard.failed' } as const satisfies Record<string, LogEvent>;

/** The person behind a CLI call, for the audit log (sudo's caller when there is one). */
function cliActor(env: NodeJS.ProcessEnv): Actor {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  const sudo = env.SUDO_USER && /^[a-z_][a-z0-9_.-]{0,31}$/i.test(env.SUDO_USER) ? env.SUDO_USER : null;
  return { actor: sudo ? `${sudo} (via sudo as ${user})` : user, source: 'cli' };
}

/**
 * Runs the CLI and returns the exit code: 0 ok, 1 operational failure, 2 bad
 * input. Errors are one line on stderr; stacks only with --debug.
 */
export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  // Everything wg-ollama creates (database, keys, configs, sockets) is private to root.
  process.umask(0o077);
  let exitCode = 0;
  const program = new Command('wg-ollama')
    .description('WireGuard-fronted access to a self-hosted Ollama')
    .option('--config <file>', 'config file (default $WG_OLLAMA_CONFIG or /etc/wg-ollama/config.json)')
    .option('--debug', 'print stack traces on errors')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError(false);

  const config = (): ReturnType<typeof loadConfig> => loadConfig(configFileFrom(program.opts().config, io.env));
  /** Errors serve and guard wrote to their JSON log already: not printed again as text. */
  const logged = new WeakSet<object>();
  /**
   * Runs `serve` or `guard` with the shared JSON-lines logger (src/system/logger.ts);
   * an error that stops it becomes one last line, event serve.failed / guard.failed.
   */
  const daemon = async (verb: 'serve' | 'guard', run: (log: Logger) => Promise<void>): Promise<void> => {
    const { createLogger } = await import('../system/logger.js');
    const log = createLogger();
    try {
      await run(log);
    } catch (e) {
      const err = asWgoError(e);
      log.fatal({ event: DAEMON_FAILED[verb], code: err.code, err: err.message, ...(program.opts().debug ? { stack: (e as Error).stack } : {}) },
        `${verb} stopped on an error`);
      logged.add(err);
      throw err;
    }
  };
  const who = (): Actor => cliActor(io.env);
  const json = new Option('--json', 'print JSON');

  program.command('init')
    .description('create the state directory, server key, database and config')
    .requiredOption('--endpoint <host:port>', 'public address clients dial')
    .requiredOption('--ollama-host <ip>', 'the GPU host running Ollama or the guard')
    .option('--ollama-port <port>', 'TCP port on the GPU host', '11434')
    .option('--subnet <cidr>', 'tunnel subnet', '10.66.0.0/24')
    .option('--interface <name>', 'WireGuard interface', 'wgo0')
    .option('--listen-port <port>', 'WireGuard UDP port', '51820')
    .option('--state-dir <dir>', 'state directory', '/var/lib/wg-ollama')
    .option('--sync-listen <ip:port>', 'guard sync API address (on the network GPU hosts reach) for guards on other hosts')
    .addOption(json)
    .action(async (o) => (await import('./init.js')).runInit(configFileFrom(program.opts().config, io.env), o, io, who().actor));

  program.command('serve')
    .description('run the gateway daemon in the foreground (JSON logs on stdout)')
    .action(() => daemon('serve', async (log) => {
      const c = config();
      const { serve } = await import('../daemon/serve.js');
      await serve(c, log);
    }));

  program.command('firewall-init')
    .description('install the closed firewall (before the interface exists, e.g. at boot)')
    .addOption(json)
    .action(async (o) => (await systemCli()).firewallInit(config(), o, io));

  const issue = (cmd: Command): Command =>
    cmd
      .option('--public-key <key>', "the peer's own WireGuard public key (then no private key is generated)")
      .option('--qr', 'also print the config as a QR code')
      .option('--out <dir>', 'write NAME.conf, NAME.png and NAME.svg into DIR (mode 0600)')
      .addOption(json);

  issue(program.command('add-peer').argument('<name>').description('create a peer and print its config once'))
    .option('--expires <duration>', 'expire after e.g. 30d, 12h')
    .action(async (name, o) => (await peersCli()).addPeer(config(), name, o, io, who()));

  issue(program.command('rotate-peer').argument('<name>').description('new keys for a peer; the old ones stop working at once'))
    .action(async (name, o) => (await peersCli()).rotatePeer(config(), name, o, io, who()));

  program.command('list-peers').description('list peers').option('--all', 'include revoked peers').addOption(json)
    .action(async (o) => (await peersCli()).listPeers(config(), o, io));
  program.command('show-peer').argument('<name>').description('show one peer').addOption(json)
    .action(async (name, o) => (await peersCli()).showPeer(config(), name, o, io));
  program.command('disable-peer').argument('<name>').description('cut a peer off until enabled again').addOption(json)
    .action(async (name, o) => (await peersCli()).changePeer(config(), 'disable', name, o, io, who()));
  program.command('enable-peer').argument('<name>').description('let a disabled (or expired) peer in again')
    .option('--expires <duration>', 'new expiry, from now').addOption(json)
    .action(async (name, o) => (await peersCli()).changePeer(config(), 'enable', name, o, io, who()));
  program.command('revoke-peer').argument('<name>').description('remove a peer for good; its open flows die').addOption(json)
    .action(async (name, o) => (await peersCli()).changePeer(config(), 'revoke', name, o, io, who()));

  program.command('set-policy').argument('<name>').description("change a peer's LLM policy (only the flags given; --reset for the default)")
    .option('--endpoints <list>', 'allowed endpoints, comma-separated (generate,chat,embed,embeddings,tags,show,ps,version,v1.chat,v1.completions,v1.embeddings,v1.models,pull,push,delete,create,copy,blobs)')
    .option('--models <list>', 'allowed models, comma-separated (llama3.2, llama3.2:3b, qwen2.5:*), or "any"')
    .option('--write-models <list>', 'models it may create, copy over, delete, pull or push (alice/*, llama3.2:mine), "none" (default) or "any"')
    .option('--rate <n>', 'requests per minute (N, N/min, N/s, N/h)')
    .option('--burst <n>', 'requests allowed at once above the rate')
    .option('--streams <n>', 'concurrent generating requests')
    .option('--tokens-per-day <n>', 'prompt + eval tokens per UTC day, or "unlimited"')
    .option('--max-keep-alive <duration>', 'clamp keep_alive (e.g. 5m), or "none"')
    .option('--max-num-ctx <n>', 'clamp options.num_ctx, or "none"')
    .option('--max-tokens-per-request <n>', 'tokens one request may generate (clamps num_predict / max_tokens), or "none"')
    .option('--options <list>', 'Ollama options the peer may set, comma-separated (temperature,top_p,...); "default" stands for the sampling options and num_ctx (default,num_gpu), "all" for every option; or "none"')
    .option('--option-limits <list>', 'upper bounds for options the peer may set (num_batch=512,num_thread=8), or "none"')
    .option('--api-tokens <on|off>', 'allow a peer-bound API token for this peer (issue-token); off revokes it')
    .option('--reset', 'start from the configured default policy')
    .addOption(json)
    .action(async (name, o) => (await import('./policy.js')).setPolicy(config(), name, o, io, who()));

  program.command('issue-token').argument('<name>').description("a peer-bound API token (Bearer, from the peer's tunnel address), printed once; replaces the old one")
    .addOption(json)
    .action(async (name, o) => (await import('./tokens.js')).issueToken(config(), name, o, io, who()));
  program.command('revoke-token').argument('<name>').description("kill a peer's API token (its certificate stays)").addOption(json)
    .action(async (name, o) => (await import('./tokens.js')).revokeToken(config(), name, o, io, who()));

  const admin = program.command('admin').description('web UI admins: add, list, remove, reset-totp');
  admin.command('add').argument('<name>').description('add an admin; prints the TOTP enrolment QR code and otpauth:// URI once')
    .option('--role <role>', 'admin (all) or viewer (read only)', 'admin')
    .option('--password-stdin', 'read the password from standard input')
    .addOption(json)
    .action(async (name, o) => {
      const m = await import('./admin.js');
      await m.adminAdd(config(), name, o, io, who(), io.readStdin ?? m.stdinPassword());
    });
  admin.command('list').description('list admins').addOption(json)
    .action(async (o) => (await import('./admin.js')).adminList(config(), o, io));
  admin.command('remove').argument('<name>').description('remove an admin and end their sessions').addOption(json)
    .action(async (name, o) => (await import('./admin.js')).adminRemove(config(), name, o, io, who()));
  admin.command('reset-totp').argument('<name>').description('new TOTP secret (prints the QR code once); ends their sessions').addOption(json)
    .action(async (name, o) => (await import('./admin.js')).adminResetTotp(config(), name, o, io, who()));

  program.command('add-guard').argument('<name>').description('issue certificates for a guard on a GPU host and write its config directory')
    .requiredOption('--address <ip>', 'the GPU host address peers dial (its server certificate names it)')
    .option('--dns <name...>', 'DNS names for the server certificate')
    .requiredOption('--out <dir>', 'directory to write guard.json and the certificates into')
    .option('--router', "the pool's router: the guard at ollamaHost that peers reach, forwarding to the pool's GPU hosts")
    .option('--member', 'a GPU host of the pool: serves only the router')
    .option('--parallel <n>', "a member's parallelism: requests the router sends it at once (its OLLAMA_NUM_PARALLEL; default 4)")
    .addOption(json)
    .action(async (name, o) => (await import('./guards.js')).addGuard(config(), name, o, io, who()));
  program.command('list-guards').description('guards, when they last synced, and the pool router\'s view of each GPU host').addOption(json)
    .action(async (o) => (await import('./guards.js')).listGuards(config(), o, io));
  program.command('remove-guard').argument('<name>').description("revoke a guard's certificates (its sync is refused at once); a pool member must be drained first")
    .option('--force', 'remove a pool member that is not drained: the requests it runs are cut')
    .addOption(json)
    .action(async (name, o) => (await import('./guards.js')).removeGuard(config(), name, o, io, who()));
  program.command('drain-guard').argument('<name>').description('a pool member takes no new requests; the ones it runs finish').addOption(json)
    .action(async (name, o) => (await import('./guards.js')).drainGuard(config(), name, true, o, io, who()));
  program.command('undrain-guard').argument('<name>').description('a drained pool member takes requests again').addOption(json)
    .action(async (name, o) => (await import('./guards.js')).drainGuard(config(), name, false, o, io, who()));
  program.command('set-guard').argument('<name>').description("change a pool member's parallelism")
    .requiredOption('--parallel <n>', 'requests the router sends it at once (its OLLAMA_NUM_PARALLEL)')
    .addOption(json)
    .action(async (name, o) => (await import('./guards.js')).setGuard(config(), name, o, io, who()));

  program.command('reissue-ca')
    .description('re-issue the CA certificate over the same key with name constraints (the names the config implies, plus those of every live certificate)')
    .option('--dry-run', 'print what it would permit, change nothing')
    .addOption(json)
    .action(async (o) => (await import('./ca.js')).reissueCaVerb(config(), o, io, who()));

  program.command('guard')
    .description('run the guard (mTLS proxy in front of Ollama) on a GPU host; --config is its guard.json')
    .action(() => daemon('guard', async (log) => {
      const { guardConfigFile } = await import('./guards.js');
      const { loadGuardConfig } = await import('../guard/config.js');
      const loaded = loadGuardConfig(guardConfigFile(program.opts().config, io.env));
      // systemd gives the config read-only (credentials): the spool goes where the unit says.
      const c = io.env.WG_OLLAMA_GUARD_STATE ? { ...loaded, stateDir: io.env.WG_OLLAMA_GUARD_STATE } : loaded;
      const { runGuard } = await import('../guard/main.js');
      await runGuard(c, log.child({ guard: c.name }));
    }));

  program.command('logs').argument('<kind>', 'connections, requests or audit').description('show connection events, LLM requests or the admin audit log')
    .option('--peer <name>', 'only this peer').option('--since <duration>', 'how far back, e.g. 1h, 7d', '24h')
    .option('--model <name>', 'requests: only this model').option('--status <code>', 'requests: only this HTTP status')
    .option('--limit <n>', 'show at most the newest N rows (then, with --follow, every new one)', '1000')
    .option('--follow', 'keep printing new rows').addOption(new Option('--json', 'print one JSON object per line'))
    .action(async (kind, o) => {
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await (await import('./logs.js')).showLogs(config(), kind, o, io, ac.signal);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });

  connectVerb(program.command('connect'))
    .description("on a staff laptop: serve the team's GPU as a local Ollama (http://127.0.0.1:11434), forwarding to the guard with the peer's certificate")
    .action(async (profile: string, o) => {
      const { runConnect } = await import('../connect/run.js');
      exitCode = await runConnect(profile, o, io);
    });

  program.command('status').description('daemon, interface, firewall and peers at a glance').addOption(json)
    .action(async (o) => (await systemCli()).showStatus(config(), o, io));
  program.command('doctor').description('check the machine and the gateway (or with --guard, a GPU host); exit 1 if anything fails')
    .option('--guard', 'check a GPU host running the guard; --config is its guard.json')
    .addOption(json)
    .action(async (o) => {
      if (o.guard) {
        const { guardConfigFile } = await import('./guards.js');
        const { loadGuardConfig } = await import('../guard/config.js');
        const c = loadGuardConfig(guardConfigFile(program.opts().config, io.env));
        exitCode = await (await import('./guard-doctor.js')).runGuardDoctor(c, o, io);
        return;
      }
      exitCode = await (await systemCli()).runDoctor(config(), o, io);
    });
  const passphraseFile = new Option('--passphrase-file <file>', 'read the passphrase from this file (mode 0600 or stricter; e.g. a systemd credential) instead of standard input');
  program.command('backup')
    .description('write one encrypted file with a consistent snapshot of the database, every key and the config (serve may keep running); the passphrase is the first line of standard input')
    .option('--out <file>', 'the backup file to write (mode 0600; must not exist)')
    .option('--out-dir <dir>', 'write wg-ollama-YYYYMMDDTHHMMSSZ.wgobak into DIR (created 0700)')
    .option('--keep <n>', 'with --out-dir: then remove all but the newest N backups of that name pattern in DIR')
    .option('--verify <file>', 'check a backup file (passphrase, integrity, manifest) and print its manifest; writes nothing')
    .addOption(passphraseFile)
    .addOption(json)
    .action(async (o) => (await import('./backup.js')).runBackup(configFileFrom(program.opts().config, io.env), o, io, who()));
  program.command('restore').argument('<file>', 'a file written by wg-ollama backup')
    .description('restore a backup onto a fresh machine: the state directory and the config (--config); refuses to replace existing ones without --force')
    .option('--state-dir <dir>', 'restore the state into DIR instead of the directory the backed-up config names (the config is rewritten to say so)')
    .option('--force', 'move an existing state directory and config aside (to NAME.replaced-TIME; nothing is deleted) instead of refusing')
    .option('--dry-run', 'check the file and the targets and print the manifest; write nothing')
    .addOption(passphraseFile)
    .addOption(json)
    .action(async (file, o) => (await import('./backup.js')).runRestore(configFileFrom(program.opts().config, io.env), file, o, io, who()));
  program.command('vacuum').description('rebuild the database once so pruned log space goes back to the file system (stop serve first)')
    .option('--online', 'run while serve runs (its writes wait for the rebuild)').addOption(json)
    .action(async (o) => (await systemCli()).runVacuum(config(), o, io, who().actor));
  program.command('down').description('remove the interface and the firewall (stop serve first)').addOption(json)
    .action(async (o) => (await systemCli()).runDown(config(), o, io, who().actor));

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return 2; // commander already printed "error: ..."
    }
    const err = asWgoError(e);
    if (logged.has(err)) return exitCodeOf(err.kind);
    // One line, always: control characters from echoed input are shown escaped.
    const line = err.message.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
    io.err(`wg-ollama: ${line}\n`);
    if (program.opts().debug) io.err(`${(e as Error).stack ?? ''}\n`);
    return exitCodeOf(err.kind);
  }
}

function defaultIo(): Io {
  return { out: (t) => void process.stdout.write(t), outSync: (t) => void writeSync(1, t), err: (t) => void process.stderr.write(t), env: process.env };
}
