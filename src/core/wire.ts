/**
 * What crosses the guard sync API, defined once: each message is one zod
 * schema with its type inferred from it. The gateway produces these
 * (gateway/peer-set.ts, gateway/sync-api.ts) and the guard parses them
 * (guard/sync-client.ts) with the same schemas; request records have theirs in
 * core/request-record.ts.
 *
 *   GET  /v1/peers?after=VERSION&wait=SEC   → PeerSet (200), nothing new (204)
 *   GET  /v1/usage?spool=ID                 → UsageFigures
 *   POST /v1/records PushRequest            → PushAnswer
 *   POST /v1/pool    PoolReport (routers)   → 204
 *   any refusal                             → {"error": "..."} (4xx/5xx)
 *
 * Guards and gateways of different releases talk to each other:
 * - A guard drops fields it does not know (these objects are not strict), except
 *   in a peer's policy (policySchema, strict): the gateway leaves apiTokens out,
 *   and any new policy field must be one a guard can do without.
 * - Fields a newer release added are optional, absent from older gateways:
 *   tokenSha256 and recordFields in the peer set, rejected and usage in the push answer.
 * - A gateway refuses record fields it does not know (requestRecordSchema is strict):
 *   a guard sends only those its peer set names in recordFields (recordForGateway).
 */
import { z } from 'zod';
import { WgoError } from '../errors.js';
import { policySchema, type RequestPolicy } from './policy.js';

/** Most records accepted in one push. */
export const MAX_PUSH_RECORDS = 1000;
/** A guard's spool id (guard/spool.ts): the gateway keys records by (guard, spool, seq). */
export const SPOOL_ID = /^[0-9a-f]{16,64}$/;

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** A UTC day, YYYY-MM-DD (core/rate.ts utcDay). */
const utcDay = z.string().max(16);

/** One peer as the guard knows it: who may present which certificate, from where, under what policy. */
export const guardPeerSchema = z.object({
  name: z.string().min(1).max(64),
  /** Tunnel address: a certificate is accepted only from this source address. */
  address: z.string().min(1).max(64),
  /** Serial of the peer's current client certificate (normalised hex). */
  serial: z.string().regex(/^[0-9a-f]{1,64}$/),
  /** The peer's own expiry or its certificate's, whichever is first (ms); null: none. */
  expiresAt: z.number().nullable(),
  /** The policy the guard applies. apiTokens is the gateway's business (it shows as tokenSha256): not kept even if sent. */
  policy: policySchema.transform(({ apiTokens: _gatewayOnly, ...policy }): RequestPolicy => policy),
  /**
   * SHA-256 (hex) of the peer's API token: present only while its policy allows
   * tokens and the token is bound to `serial`. Absent in sets from older gateways.
   */
  tokenSha256: z.string().regex(/^[0-9a-f]{64}$/).nullable().optional(),
});
export type GuardPeer = z.output<typeof guardPeerSchema>;

const guardName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,31}$/);
/** Most members (and routers) a pool has: the gateway refuses more, so no set it makes breaks a guard's schema. */
export const MAX_POOL_MEMBERS = 64;
/** Most model names a report carries per host, and their longest: the router cuts its lists to these. */
export const MAX_REPORT_MODELS = 1000;
export const MAX_REPORT_NAME = 256;

/**
 * A pool of GPU hosts (docs/gpu-pool.md), in every guard's peer set when the gateway has one:
 * the router forwards to `members`; a member serves only the client certificates of `routers`.
 */
export const poolSchema = z.object({
  routers: z.array(z.object({ name: guardName, serial: z.string().regex(/^[0-9a-f]{1,64}$/) })).max(MAX_POOL_MEMBERS),
  members: z
    .array(z.object({
      name: guardName,
      url: z.string().max(300).regex(/^https:\/\/[^/?#\s]+$/, 'must be https://HOST:PORT'),
      parallel: z.number().int().min(1).max(256),
      draining: z.boolean(),
      /** Which drain (the gateway's ms stamp); the router echoes it in its reports. Absent from older gateways. */
      drainedAt: z.number().int().min(0).nullable().optional(),
    }))
    .max(MAX_POOL_MEMBERS),
});
export type PoolSpec = z.output<typeof poolSchema>;

/** The versioned set of active peers the guard enforces; it changes only as a whole. */
export const peerSetSchema = z.object({
  version: z.string().max(64),
  peers: z.array(guardPeerSchema),
  /** Keep prompt text in request records (the gateway's logPrompts). */
  logPrompts: z.boolean(),
  /**
   * Tokens each peer used today as the gateway knew it when the set was made (UTC day). No
   * version follows it, so it is only a lower bound for the budget (guard/budget.ts); the
   * current figures come with every record push and from GET /v1/usage (UsageFigures).
   */
  tokensToday: z.record(z.string(), z.number().min(0)),
  /** The UTC day tokensToday is for. */
  day: utcDay,
  /** Record fields the gateway stores beyond the original ones (core/request-record.ts RECORD_FIELDS); absent from older gateways. */
  recordFields: z.array(z.string().max(32)).max(32).optional(),
  /** The pool of GPU hosts; absent when the gateway has none, and from older gateways. */
  pool: poolSchema.optional(),
});
export type PeerSet = z.output<typeof peerSetSchema>;

/**
 * The daily budget's figures for one guard (guard/budget.ts): today's charged tokens of every
 * active peer, from all guards, and `upTo`, the highest sequence number of this guard's spool
 * they include. Answered by GET /v1/usage and with every push.
 */
export const usageSchema = z.object({
  day: utcDay,
  tokensToday: z.record(z.string().max(64), z.number().min(0)),
  upTo: count,
});
export type UsageFigures = z.output<typeof usageSchema>;

/** POST /v1/records. Each record is checked on its own (requestRecordSchema): one malformed record never blocks the rest. */
export const pushRequestSchema = z.strictObject({
  /** The guard's spool id; absent from guards that predate it. */
  spool: z.string().regex(SPOOL_ID).optional(),
  records: z.array(z.unknown()).max(MAX_PUSH_RECORDS),
});
export type PushRequest = z.output<typeof pushRequestSchema>;

/** The answer to a push. The guard acknowledges the whole batch on any 200: a record the gateway cannot store would block every later one. */
export const pushAnswerSchema = z.object({
  /** Records in the push, stored now, and the highest seq among the well-formed ones (for people reading logs; the guard needs none of them). */
  received: count,
  stored: count,
  upTo: count,
  /** Records refused as malformed, with why; absent from older gateways. */
  rejected: z.array(z.object({ seq: z.unknown(), error: z.string() })).optional(),
  /** The budget's figures read after the insert; absent when the push named no spool, and from older gateways. */
  usage: usageSchema.optional(),
});
export type PushAnswer = z.output<typeof pushAnswerSchema>;

/** What the router saw of one member at its last probe (POST /v1/pool): list-guards, status and the admin UI show it. */
export const poolHostReportSchema = z.object({
  name: guardName,
  health: z.enum(['healthy', 'cooldown', 'unprobed']),
  draining: z.boolean(),
  /** The drain the router applied (the peer set's drainedAt); absent from older routers. */
  drainedAt: z.number().int().min(0).nullable().optional(),
  parallel: z.number().int().min(1).max(256),
  inFlight: count,
  /** Requests waiting that this host could take. */
  queued: count,
  models: z.array(z.string().max(MAX_REPORT_NAME)).max(MAX_REPORT_MODELS),
  loaded: z.array(z.string().max(MAX_REPORT_NAME)).max(MAX_REPORT_MODELS),
});
export type PoolHostReport = z.output<typeof poolHostReportSchema>;

/** POST /v1/pool, from the router every 2 s: each member as it sees it, and how many requests wait for a slot in all. */
export const poolReportSchema = z.object({
  hosts: z.array(poolHostReportSchema).max(MAX_POOL_MEMBERS),
  queued: count,
});
export type PoolReport = z.output<typeof poolReportSchema>;

/** Zod's issues on one line: "path: message; path: message", cut at `max` characters. */
export function issuesText(e: z.ZodError, max = 300): string {
  return e.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ').slice(0, max);
}

/**
 * Parses the text of a sync API message with its schema; what is not JSON or does not fit
 * throws a BAD_INPUT error that names the message and the fields (`what`, e.g. "peer set").
 */
export function parseWire<S extends z.ZodType>(schema: S, text: string, what: string): z.output<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new WgoError('BAD_INPUT', `the ${what} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new WgoError('BAD_INPUT', `malformed ${what}: ${issuesText(r.error)}`, { cause: r.error });
  return r.data;
}
