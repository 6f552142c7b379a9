import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { permitEntry } from './core/ca-names.js';
import { WgoError } from './errors.js';
import { contains, ipToInt, isIpv4, parseCidr, poolSize } from './core/ipv4.js';
import { limitsSchema, listenSchema } from './core/limits.js';
import { policyOverrideSchema } from './core/policy.js';
import { parseDuration } from './core/duration.js';
import { MIN_DATABASE_BYTES, MIN_RETENTION_MS } from './core/retention.js';

/** Where the config lives when neither --config nor WG_OLLAMA_CONFIG says otherwise. */
export const DEFAULT_CONFIG_FILE = '/etc/wg-ollama/config.json';
export const DEFAULT_STATE_DIR = '/var/lib/wg-ollama';

const HOSTNAME_RE = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

const port = z.number().int().min(1).max(65535);

function isPermitEntry(text: string): boolean {
  try {
    permitEntry(text);
    return true;
  } catch {
    return false;
  }
}

/** `host:port` as a WireGuard client will dial it: DNS name, IPv4, or [IPv6]. */
export const endpointSchema = z.string().refine((text) => {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(text);
  if (!m) return false;
  const p = Number(m[2]);
  if (p < 1 || p > 65535) return false;
  const host = m[1]!;
  return host.startsWith('[') || isIpv4(host) || (HOSTNAME_RE.test(host) && !/^[\d.]+$/.test(host));
}, 'must be HOST:PORT (a DNS name, an IPv4 address or [IPv6], and a port 1-65535)');

export const interfaceNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,14}$/, 'must be 1-15 characters of letters, digits, "_", "." or "-"');

/** A retention age: a duration of at least a day (`90d`, `12w`). */
const retentionAge = z.string().superRefine((text, ctx) => {
  let ms: number;
  try {
    ms = parseDuration(text, '');
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message.trim() });
    return;
  }
  if (ms < MIN_RETENTION_MS) ctx.addIssue({ code: 'custom', message: `"${text}" is shorter than a day (the least kept is 1d)` });
});

/** Default database ceiling: 2 GiB, some five million request records at ~400 bytes each with their indexes. */
export const DEFAULT_MAX_DATABASE_BYTES = 2 * 1024 ** 3;

/**
 * How long the logs are kept, and how big the database may grow (README, Retention). `serve`
 * prunes older rows in small batches (at start, then every hour). Peers, certificates, keys,
 * guards and admins are never pruned, only these logs.
 */
export const retentionSchema = z
  .object({
    /** LLM request records (and the daily token sums derived from them). */
    requests: retentionAge.default('90d'),
    /** Connection events (handshakes, endpoint changes, traffic). */
    connections: retentionAge.default('30d'),
    /** The admin audit log: pruned by age only, never to make room. */
    audit: retentionAge.default('400d'),
    /**
     * Ceiling of the database's used size, in bytes: above it the oldest request records and
     * connection events go, whatever their age, down to 90 % of it. Minimum 64 MiB.
     */
    maxDatabaseBytes: z.number().int().min(MIN_DATABASE_BYTES, `must be at least ${MIN_DATABASE_BYTES} (64 MiB)`).max(2 ** 50).default(DEFAULT_MAX_DATABASE_BYTES),
  })
  .strict();

const schema = z
  .object({
    /** State directory (mode 0700): database, server key, preshared keys, control socket. */
    stateDir: z.string().refine(isAbsolute, 'must be an absolute path'),
    /** Name of the WireGuard interface the gateway owns. */
    interface: interfaceNameSchema,
    /** UDP port WireGuard listens on. */
    listenPort: port,
    /** Tunnel subnet; the gateway takes its first host address, peers the rest. */
    subnet: z.string(),
    /** Public `host:port` clients dial; written into every client config. */
    endpoint: endpointSchema,
    /** The GPU host running Ollama (or the guard): the only address peers may reach. */
    ollamaHost: z.string().refine(isIpv4, 'must be an IPv4 address'),
    /** TCP port of Ollama (or the guard) on ollamaHost. */
    ollamaPort: port,
    /** PersistentKeepalive written into client configs (0 = off). */
    persistentKeepalive: z.number().int().min(0).max(65535).default(25),
    /** Give each peer a preshared key (post-quantum hedge); on by default. */
    presharedKeys: z.boolean().default(true),
    /** `kernel`, `userspace` (wireguard-go) or `auto` (kernel if it has WireGuard). */
    wireguard: z.enum(['auto', 'kernel', 'userspace']).default('auto'),
    /** Program run for the userspace implementation. */
    wireguardGo: z.string().min(1).default('wireguard-go'),
    /** Seconds between periodic reconciles (drift repair, expiry). */
    reconcileIntervalSec: z.number().min(0.5).max(3600).default(3),
    /** Seconds between reads of the WireGuard peer table by the connection monitor. */
    monitorIntervalSec: z.number().min(0.5).max(3600).default(5),
    /** A handshake older than this means the peer's connection is lost. */
    handshakeTimeoutSec: z.number().int().min(10).max(3600).default(180),
    /** Minimum seconds between traffic records of one peer. */
    trafficIntervalSec: z.number().min(1).max(86400).default(60),
    /** Let `serve` switch on net.ipv4.ip_forward when it is off. */
    manageForwarding: z.boolean().default(true),
    /** Longest validity of a peer's client certificate (a peer with an earlier expiry gets that). */
    certificateDays: z.number().int().min(1).max(3650).default(365),
    /** The policy every peer gets unless `set-policy` overrides fields for it. */
    policy: policyOverrideSchema.default({}),
    /** Store the text of prompts and messages in the request log (off: only SHA-256 and length). */
    logPrompts: z.boolean().default(false),
    /** Guard sync API (mTLS) for guards on other hosts: where it listens and the URL guards dial. */
    sync: z
      .object({
        /** IP:PORT on the network the GPU hosts reach (never the tunnel). */
        listen: listenSchema,
        /** URL written into guard configs; default https://<listen>. */
        url: z.string().url().optional(),
      })
      .strict()
      .optional(),
    /** Prometheus /metrics and /healthz over plain HTTP; null turns it off. */
    metricsListen: listenSchema.nullable().default('127.0.0.1:9477'),
    /** Admin web UI (HTTPS, password + TOTP). Never reachable from the tunnel; null turns it off. */
    admin: z
      .object({
        /** IP:PORT addresses to serve on: loopback by default, plus management addresses. */
        listen: z.array(listenSchema).min(1).max(8).default(['127.0.0.1:8443']),
        /** Host names (besides the listen addresses and localhost) the UI answers to; any other Host header is refused. */
        hosts: z.array(z.string().regex(HOSTNAME_RE, 'must be a DNS name')).max(16).default([]),
        /** An admin-provided certificate and key (PEM files); default: issued by the wg-ollama CA. */
        tls: z.object({ cert: z.string().refine(isAbsolute, 'must be an absolute path'), key: z.string().refine(isAbsolute, 'must be an absolute path') }).strict().optional(),
        /** Lifetime of a one-time enrollment link, in minutes. */
        enrollMinutes: z.number().int().min(1).max(7 * 24 * 60).default(15),
      })
      .strict()
      .nullable()
      .default({ listen: ['127.0.0.1:8443'], hosts: [], enrollMinutes: 15 }),
    /**
     * Names the CA may sign for besides those this config implies (tunnel
     * subnet, ollamaHost, sync and admin addresses, localhost, admin.hosts,
     * guard.dnsNames): IP addresses or CIDR networks and DNS names (".lab.example"
     * for every name below it) of guards added later. The CA certificate carries
     * them as X.509 name constraints from `init` on; after a change run
     * `wg-ollama reissue-ca`.
     */
    ca: z
      .object({
        permit: z.array(z.string().refine(isPermitEntry, 'must be an IP address, a CIDR network, a DNS name or .domain')).max(64).default([]),
      })
      .strict()
      .optional(),
    /** Log retention and the database size ceiling. */
    retention: retentionSchema.default({ requests: '90d', connections: '30d', audit: '400d', maxDatabaseBytes: DEFAULT_MAX_DATABASE_BYTES }),
    /** Single-box mode: `serve` also runs the guard in-process, sharing the database. */
    guard: z
      .object({
        /** Where the guard listens; its address must be ollamaHost:ollamaPort as peers dial it. */
        listen: listenSchema,
        /** Ollama itself, bound to loopback. */
        upstream: z.string().url().default('http://127.0.0.1:11434'),
        /** Extra DNS names for the guard's server certificate. */
        dnsNames: z.array(z.string().regex(HOSTNAME_RE, 'must be a DNS name')).max(16).default([]),
        limits: limitsSchema.default(limitsSchema.parse({})),
        /**
         * While request records cannot be written to the database (a full disk): "refuse" answers
         * every request 503 audit_unavailable (nothing served unrecorded); "serve" keeps serving.
         */
        auditFailure: z.enum(['refuse', 'serve']).default('refuse'),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    let net;
    try {
      net = parseCidr(c.subnet);
    } catch (e) {
      ctx.addIssue({ code: 'custom', path: ['subnet'], message: (e as Error).message });
      return;
    }
    if (net.prefix < 16 || net.prefix > 29) {
      ctx.addIssue({ code: 'custom', path: ['subnet'], message: 'prefix must be between /16 and /29' });
    }
    if (isIpv4(c.ollamaHost) && contains(net, ipToInt(c.ollamaHost))) {
      ctx.addIssue({ code: 'custom', path: ['ollamaHost'], message: 'must not be inside the tunnel subnet' });
    }
    if (poolSize(net) < 1) ctx.addIssue({ code: 'custom', path: ['subnet'], message: 'has no room for peers' });
    for (const [i, l] of (c.admin?.listen ?? []).entries()) {
      const host = l.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
      if (isIpv4(host) && contains(net, ipToInt(host))) {
        ctx.addIssue({ code: 'custom', path: ['admin', 'listen', i], message: 'must not be inside the tunnel subnet (the admin UI is never reachable from the tunnel)' });
      }
    }
    if (c.guard && c.guard.listen !== `${c.ollamaHost}:${c.ollamaPort}`) {
      ctx.addIssue({ code: 'custom', path: ['guard', 'listen'], message: `must be ollamaHost:ollamaPort (${c.ollamaHost}:${c.ollamaPort}), the address peers dial` });
    }
  });

export type ConfigInput = z.input<typeof schema>;
export type Config = Readonly<z.output<typeof schema>> & { readonly file: string; readonly paths: StatePaths };

export interface StatePaths {
  db: string;
  serverKey: string;
  pskDir: string;
  socket: string;
  /** The CA: certificate (public) and key (0600). */
  caCert: string;
  caKey: string;
  /** Certificates the gateway itself serves with (sync API, single-box guard, admin UI). */
  tlsDir: string;
  /** Key (0600) sealing the admins' TOTP secrets in the database. */
  adminKey: string;
}

export function statePaths(stateDir: string): StatePaths {
  return {
    db: join(stateDir, 'wg-ollama.db'),
    serverKey: join(stateDir, 'server.key'),
    pskDir: join(stateDir, 'psk'),
    socket: join(stateDir, 'control.sock'),
    caCert: join(stateDir, 'ca.crt'),
    caKey: join(stateDir, 'ca.key'),
    tlsDir: join(stateDir, 'tls'),
    adminKey: join(stateDir, 'admin.key'),
  };
}

/** Validates a config object; errors name every bad field. */
export function parseConfig(raw: unknown, file: string): Config {
  const result = schema.safeParse(raw);
  if (!result.success) {
    const fields = result.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new WgoError('CONFIG_INVALID', `invalid config ${file}: ${fields}`);
  }
  return Object.freeze({ ...result.data, file, paths: statePaths(result.data.stateDir) });
}

/** Which config file to use: --config, then WG_OLLAMA_CONFIG, then the default. */
export function configFileFrom(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? (env.WG_OLLAMA_CONFIG || DEFAULT_CONFIG_FILE);
}

/** Reads and validates the config file. The only place that reads process.env is the caller of this. */
export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new WgoError('NOT_INITIALIZED', `no config at ${file}: run "wg-ollama init" first (or pass --config)`);
    }
    throw new WgoError('CONFIG_INVALID', `cannot read config ${file}: ${(e as Error).message}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new WgoError('CONFIG_INVALID', `config ${file} is not valid JSON: ${(e as Error).message}`);
  }
  return parseConfig(raw, file);
}
