import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { limitsSchema, listenSchema } from '../core/limits.js';
import { WgoError } from '../errors.js';

/** Default ceiling of the spool's used size (spool.maxBytes): 1 GiB, some 2.5 million records waiting. */
export const DEFAULT_SPOOL_MAX_BYTES = 1024 ** 3;
/** Smallest spool ceiling accepted: 16 MiB. */
export const MIN_SPOOL_BYTES = 16 * 1024 * 1024;

/** The guard's config file, written by `wg-ollama add-guard` (relative paths are relative to the file). */
export const guardConfigFileSchema = z
  .object({
    /** The guard's name at the gateway (its sync certificate says the same). */
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,31}$/, 'must be a guard name'),
    /** IP:PORT peers dial: the GPU host's address and the Ollama port. */
    listen: listenSchema,
    /** Ollama itself, bound to loopback. */
    upstream: z.string().url().refine((u) => /^http:\/\//.test(u), 'must be an http:// URL').default('http://127.0.0.1:11434'),
    /** Spool and cached peer set; default: the config file's directory. */
    stateDir: z.string().optional(),
    /** The gateway's sync API. */
    gatewayUrl: z.string().url().refine((u) => u.startsWith('https://'), 'must be an https:// URL'),
    tls: z
      .object({
        /** The wg-ollama CA certificate. */
        ca: z.string().min(1),
        /** Server certificate and key peers see. */
        cert: z.string().min(1),
        key: z.string().min(1),
        /** Client certificate and key for the sync API (guard role). */
        syncCert: z.string().min(1),
        syncKey: z.string().min(1),
      })
      .strict(),
    limits: limitsSchema.default(limitsSchema.parse({})),
    /**
     * A pool of GPU hosts (docs/gpu-pool.md), as add-guard --router or --member wrote it: the
     * router takes peers' requests and forwards each to a member that has the model (the
     * members, their parallelism and draining come with the peer set); a member serves only
     * the router. null: a guard on its own, in front of `upstream`.
     */
    pool: z
      .object({
        role: z.enum(['router', 'member']),
        /** The router's fair queue: requests one peer may have waiting, in all, and the longest wait (503 after it). */
        queue: z
          .object({ perPeer: z.number().int().min(1).max(1000).default(8), total: z.number().int().min(1).max(100_000).default(256), maxWaitSec: z.number().min(1).max(3600).default(30) })
          .strict()
          .optional(),
      })
      .strict()
      .refine((p) => p.role === 'router' || p.queue === undefined, 'queue is for the router')
      .nullable()
      .default(null),
    /** The tunnel subnet and the gateway's tunnel address: `doctor --guard` checks replies to it route via the gateway. */
    tunnelSubnet: z.string().optional(),
    gatewayTunnelAddress: z.string().optional(),
    /** Prometheus /metrics and /healthz over plain HTTP; null turns it off. */
    metricsListen: listenSchema.nullable().default('127.0.0.1:9478'),
    /**
     * While request records cannot be written to the spool (a full disk, a read-only file
     * system): "refuse" answers every request 503 (audit_unavailable, nothing reaches Ollama
     * unrecorded); "serve" keeps serving and counts the requests in
     * wgo_guard_unrecorded_requests_total. Either way it is logged, wgo_guard_audit_ok is 0,
     * /healthz fails and `doctor --guard` says so; the guard recovers by itself once a write succeeds.
     */
    auditFailure: z.enum(['refuse', 'serve']).default('refuse'),
    /**
     * The spool holds only records the gateway has not acknowledged (acknowledged ones are deleted
     * at once), so it has no age rule: none is ever deleted unacknowledged. `maxBytes` bounds its
     * used size; a full spool is a write failure like a full disk, and auditFailure decides.
     */
    spool: z
      .object({ maxBytes: z.number().int().min(MIN_SPOOL_BYTES, `must be at least ${MIN_SPOOL_BYTES} (16 MiB)`).max(2 ** 50).default(DEFAULT_SPOOL_MAX_BYTES) })
      .strict()
      .default({ maxBytes: DEFAULT_SPOOL_MAX_BYTES }),
  })
  .strict();

/** What `add-guard` writes into guard.json (fields with defaults may be left out). */
export type GuardConfigFile = z.input<typeof guardConfigFileSchema>;

/** guard.json as the guard runs with it: defaults filled in, paths absolute, and the file it came from. */
export type GuardConfig = Readonly<Omit<z.output<typeof guardConfigFileSchema>, 'stateDir'> & { file: string; stateDir: string }>;

export function parseGuardConfig(raw: unknown, file: string): GuardConfig {
  const r = guardConfigFileSchema.safeParse(raw);
  if (!r.success) {
    const fields = r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new WgoError('CONFIG_INVALID', `invalid guard config ${file}: ${fields}`);
  }
  const dir = dirname(resolve(file));
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(dir, p));
  const c = r.data;
  return Object.freeze({
    ...c,
    file,
    stateDir: abs(c.stateDir ?? '.'),
    tls: { ca: abs(c.tls.ca), cert: abs(c.tls.cert), key: abs(c.tls.key), syncCert: abs(c.tls.syncCert), syncKey: abs(c.tls.syncKey) },
  });
}

export function loadGuardConfig(file: string): GuardConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new WgoError('NOT_INITIALIZED', `cannot read guard config ${file}: ${(e as Error).message} (write one with "wg-ollama add-guard" on the gateway)`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new WgoError('CONFIG_INVALID', `guard config ${file} is not valid JSON: ${(e as Error).message}`);
  }
  return parseGuardConfig(raw, file);
}
