/**
 * A small disk for the full-disk lab tests: a private mount namespace (held by
 * one `sleep` process started with `unshare --mount`, tracked by PID) with a
 * tmpfs of a few MB mounted on the gateway's state directory. Every command
 * that must see that tmpfs (init, serve, the CLI) runs through `nsenter
 * --mount` into it and then `ip netns exec` into the lab's network namespace.
 * The filler file lives on the tmpfs: nothing of the host's file systems is
 * filled. Killing the sleeper (and the lab's processes) frees the tmpfs.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { ROOT, waitFor, type CliResult, type Lab } from './harness.js';
import { BIN, type Bg } from './guard-harness.js';

export interface SmallDisk {
  /** The state directory: a tmpfs of `sizeMb` inside the mount namespace. */
  dir: string;
  /** Runs a command in the mount namespace and the given network namespace; never throws on a non-zero exit. */
  exec: (netns: string, cmd: string, args: string[], opts?: { input?: string; timeoutMs?: number }) => Promise<CliResult>;
  /** Starts a long-running process there, output in files; stopped by PID. */
  spawn: (netns: string, cmd: string, args: string[], tag: string) => Bg & { exit: () => string };
  /** Fills the tmpfs with a filler file (bounded by its size); returns the free KiB left (0). */
  fill: (netns: string) => Promise<number>;
  /** Deletes the filler. */
  free: (netns: string) => Promise<void>;
  /** Free KiB on the tmpfs. */
  freeKb: (netns: string) => Promise<number>;
  /** Kills what it started (by PID): the tmpfs goes with the namespace. */
  cleanup: () => Promise<void>;
}

export async function createSmallDisk(lab: Lab, name: string, sizeMb: number): Promise<SmallDisk> {
  const dir = join(lab.dir, name);
  mkdirSync(dir, { mode: 0o700 });
  // slave: the namespace still sees the lab's network namespaces (/run/netns), and nothing mounted in it leaks out.
  const holder = execa('unshare', ['--mount', '--propagation', 'slave', 'sleep', '3600'], { reject: false, stdin: 'ignore' });
  const procs: { p: ResultPromise; done: boolean }[] = [{ p: holder, done: false }];
  void holder.then(() => (procs[0]!.done = true));
  const mnt = `/proc/${holder.pid}/ns/mnt`;
  const enter = (netns: string, cmd: string, args: string[]): string[] => [`--mount=${mnt}`, 'ip', 'netns', 'exec', netns, cmd, ...args];
  const cleanup = async (): Promise<void> => {
    for (const e of procs) if (!e.done && e.p.pid) e.p.kill('SIGKILL');
    await Promise.all(procs.map((e) => e.p.catch(() => undefined)));
  };
  const run = async (args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CliResult> => {
    const r = await execa('nsenter', args, { reject: false, input: opts.input ?? '', timeout: opts.timeoutMs ?? 60_000 });
    return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  try {
    await waitFor(async () => (await execa('readlink', [mnt], { reject: false })).stdout !== (await execa('readlink', ['/proc/self/ns/mnt'])).stdout, 3000, 'the mount namespace');
    const m = await run([`--mount=${mnt}`, 'mount', '-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', dir]);
    if (m.code !== 0) throw new Error(`mount tmpfs failed: ${m.stderr}`);
  } catch (e) {
    await cleanup();
    throw e;
  }
  const filler = join(dir, 'filler');
  const freeKb = async (netns: string): Promise<number> => {
    const r = await run(enter(netns, 'df', ['-k', '--output=avail', dir]));
    return Number(r.stdout.trim().split('\n').pop());
  };
  let n = 0;
  return {
    dir,
    exec: (netns, cmd, args, opts) => run(enter(netns, cmd, args), opts),
    spawn(netns, cmd, args, tag) {
      const out = join(lab.dir, `${tag}-${n++}.out`);
      writeFileSync(out, '');
      const p = execa('nsenter', enter(netns, cmd, args), { reject: false, stdin: 'ignore', stdout: { file: out }, stderr: { file: `${out}.err` } });
      const entry = { p, done: false, exit: '' };
      void p.then((r) => {
        entry.done = true;
        entry.exit = `exit ${r.exitCode} signal ${r.signal ?? '-'}`;
      });
      procs.push(entry);
      const lines = (): string[] => readFileSync(out, 'utf8').split('\n').filter(Boolean);
      return {
        pid: p.pid!,
        out,
        lines,
        json: <T>() => lines().filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T),
        async stop(signal: NodeJS.Signals = 'SIGTERM') {
          if (entry.done) return;
          process.kill(p.pid!, signal);
          await p;
        },
        exited: () => entry.done,
        exit: () => entry.exit,
      };
    },
    async fill(netns) {
      // dd stops at ENOSPC: at most the tmpfs' size is written. A second pass takes the last partial block.
      await run(enter(netns, 'dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k', `count=${sizeMb * 16 + 16}`]));
      await run(enter(netns, 'dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k', 'oflag=append', 'conv=notrunc', `count=${sizeMb * 256}`]));
      return freeKb(netns);
    },
    async free(netns) {
      const r = await run(enter(netns, 'rm', ['-f', filler]));
      if (r.code !== 0) throw new Error(`rm filler failed: ${r.stderr}`);
    },
    freeKb,
    cleanup,
  };
}

/** The wg-ollama CLI inside the small disk's namespaces. */
export function diskCli(disk: SmallDisk, netns: string, configFile: string) {
  const cli = (...args: string[]): Promise<CliResult> => disk.exec(netns, 'node', [BIN, '--config', configFile, ...args]);
  return {
    cli,
    async json<T = Record<string, unknown>>(...args: string[]): Promise<T> {
      const r = await cli(...args, '--json');
      if (r.code !== 0) throw new Error(`wg-ollama ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    },
    /** SQL against the gateway's database (read-only), through better-sqlite3, inside the namespaces. */
    async sql<T = Record<string, unknown>>(db: string, query: string): Promise<T[]> {
      const script = `const D=require(${JSON.stringify(join(ROOT, 'node_modules/better-sqlite3'))});` +
        `const db=new D(${JSON.stringify(db)},{readonly:true});db.pragma('busy_timeout=5000');` +
        `process.stdout.write(JSON.stringify(db.prepare(${JSON.stringify(query)}).all()))`;
      const r = await disk.exec(netns, 'node', ['-e', script]);
      if (r.code !== 0) throw new Error(`sql failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as T[];
    },
    /** Checkpoints the WAL into the database file and truncates it (so that, once the disk is full, every commit must grow a file). */
    async truncateWal(db: string): Promise<void> {
      const script = `const D=require(${JSON.stringify(join(ROOT, 'node_modules/better-sqlite3'))});` +
        `const db=new D(${JSON.stringify(db)});db.pragma('busy_timeout=5000');` +
        `const r=db.pragma('wal_checkpoint(TRUNCATE)');if(r[0].busy)process.exit(3);`;
      const r = await disk.exec(netns, 'node', ['-e', script]);
      if (r.code !== 0) throw new Error(`wal_checkpoint(TRUNCATE) failed (${r.code}): ${r.stderr}`);
    },
  };
}
