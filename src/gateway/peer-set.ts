import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import { usablePatterns } from '../core/model-name.js';
import { mergePolicy, type Policy } from '../core/policy.js';
import { utcDay } from '../core/rate.js';
import { RECORD_FIELDS } from '../core/request-record.js';
import type { Db } from '../db/open.js';
import { peerRepository } from '../db/peers.js';
import { requestRepository } from '../db/requests.js';
import { tokenRepository } from '../db/tokens.js';
import type { PeerSet, PoolSpec, UsageFigures } from '../core/wire.js';
import { certificateRepository } from '../db/certificates.js';
import { defaultPolicy } from './peer-service.js';

/**
 * The guard's view of the database: every active, unexpired peer with a
 * certificate, its effective policy, its API token's hash (only while its
 * policy allows tokens and the token is bound to its current certificate),
 * and today's token use. The version is the peers' change sequence plus the
 * config's default policy, so any change to a peer (status, certificate,
 * policy, expiry, API token) gives a new version.
 */
export function peerSetSource(db: Db, config: Config) {
  const peers = peerRepository(db);
  const requests = requestRepository(db);
  const apiTokens = tokenRepository(db);
  const defaults = defaultPolicy(config);
  // Whatever of the config reaches guards is part of the version: a changed default policy is a new set.
  const configTag = createHash('sha256').update(JSON.stringify({ logPrompts: config.logPrompts, defaults })).digest('hex').slice(0, 12);
  const notAfter = db.prepare(`SELECT not_after FROM certificates WHERE serial = ?`).pluck();
  const certs = certificateRepository(db);
  /**
   * The pool of GPU hosts (docs/gpu-pool.md), or null when the gateway has none: its routers'
   * client certificates (the only ones a member serves) and its members, reached at their
   * address on the Ollama port, as add-guard wrote their listen.
   */
  const pool = (): PoolSpec | null => {
    const guards = certs.poolGuards();
    if (guards.length === 0) return null;
    const members = guards
      .filter((g) => g.poolRole === 'member')
      .map((g) => ({ name: g.name, url: `https://${g.address.includes(':') ? `[${g.address}]` : g.address}:${config.ollamaPort}`, parallel: g.parallel ?? 4, draining: g.draining, drainedAt: g.drainedAt }));
    return { routers: certs.routerSerials(), members };
  };
  /** The pool is part of the version (so a drain or a new member reaches the router at once), only when there is one: versions stay as they were without. */
  const versionOf = (p: PoolSpec | null): string =>
    `${peers.maxSeq()}.${configTag}${p ? `.${createHash('sha256').update(JSON.stringify(p)).digest('hex').slice(0, 12)}` : ''}`;
  /** Today's charged tokens of the active peers, by name (the UTC day of `now`). */
  const tokensToday = (now: number): Omit<UsageFigures, 'upTo'> => {
    const day = utcDay(now);
    const tokens = requests.tokensOnDay(day);
    return { day, tokensToday: Object.fromEntries(peers.active(now).filter((p) => p.certSerial !== null).map((p) => [p.name, tokens.get(p.id) ?? 0])) };
  };
  return {
    version: (): string => versionOf(pool()),
    load(now: number): PeerSet {
      return db.transaction(() => {
        const p = pool();
        const version = versionOf(p);
        const day = utcDay(now);
        const tokens = requests.tokensOnDay(day);
        const rows = peers.active(now).filter((p) => p.certSerial !== null);
        const stored = apiTokens.byPeerId();
        const list = rows.map((p) => {
          // apiTokens stays at the gateway (guards that predate it refuse unknown policy fields): it shows as tokenSha256.
          const { apiTokens: allowed, ...merged } = p.policy === null ? defaults : mergePolicy(defaults, JSON.parse(p.policy) as Partial<Policy>);
          // Patterns stored by older releases that the name grammar now refuses would fail the guard's schema: dropped (narrowing only).
          const policy = { ...merged, models: usablePatterns(merged.models), writeModels: usablePatterns(merged.writeModels) };
          const token = stored.get(p.id);
          return {
            name: p.name,
            address: p.address,
            serial: p.certSerial!,
            // The certificate's own end counts too: a resumed TLS session is not re-checked by OpenSSL.
            expiresAt: earliest(p.expiresAt, (notAfter.get(p.certSerial) as number | undefined) ?? null),
            policy,
            tokenSha256: allowed && token && token.certSerial === p.certSerial ? token.tokenSha256 : null,
          };
        });
        return {
          version,
          peers: list,
          logPrompts: config.logPrompts,
          tokensToday: Object.fromEntries(rows.map((p) => [p.name, tokens.get(p.id) ?? 0])),
          day,
          recordFields: [...RECORD_FIELDS],
          ...(p ? { pool: p } : {}),
        };
      })();
    },
    /**
     * The daily budget's figures for one guard (core/wire.ts UsageFigures): today's charged tokens
     * of every active peer from all guards, and the highest sequence number stored from this
     * guard's spool — read in one transaction, so the figures include exactly the records up
     * to it. The peer set's tokensToday changes no version: guards get these on every push
     * and from GET /v1/usage instead.
     */
    usage(now: number, guard: string, spool: string): UsageFigures {
      return db.transaction(() => ({ ...tokensToday(now), upTo: requests.spoolSeq(guard, spool) }))();
    },
  };
}

const earliest = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.min(a, b));

export type PeerSetSource = ReturnType<typeof peerSetSource>;

/**
 * What follows the database's peer set (the in-process guard of single-box mode): returns a
 * `changed()` to call on every database change. A version counts as applied only once its set
 * was loaded and handed over — a load that fails (a locked or full database) is reported and
 * tried again at the next call, instead of leaving the guard on an old set until the next change.
 */
export function followPeerSet(source: Pick<PeerSetSource, 'version' | 'load'>, apply: (set: PeerSet) => void, onError: (e: Error) => void, clock: () => number = Date.now): () => void {
  let applied: string | null = null;
  return () => {
    const v = source.version();
    if (v === applied) return;
    try {
      apply(source.load(clock()));
      applied = v;
    } catch (e) {
      onError(e as Error);
    }
  };
}
