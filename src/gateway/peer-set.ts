import type { Config } from '../config.js';
import { mergePolicy, type Policy } from '../core/policy.js';
import { utcDay } from '../core/rate.js';
import type { Db } from '../db/open.js';
import { peerRepository } from '../db/peers.js';
import { requestRepository } from '../db/requests.js';
import type { PeerSet } from '../guard/peer-set.js';
import { defaultPolicy } from './peer-service.js';

/**
 * The guard's view of the database: every active, unexpired peer with a
 * certificate, its effective policy, and today's token use. The version is the
 * peers' change sequence plus the config's default policy, so any change to a
 * peer (status, certificate, policy, expiry) gives a new version.
 */
export function peerSetSource(db: Db, config: Config) {
  const peers = peerRepository(db);
  const requests = requestRepository(db);
  const defaults = defaultPolicy(config);
  const configTag = `${config.logPrompts ? 1 : 0}`;
  return {
    version: (): string => `${peers.maxSeq()}.${configTag}`,
    load(now: number): PeerSet {
      return db.transaction(() => {
        const version = `${peers.maxSeq()}.${configTag}`;
        const day = utcDay(now);
        const dayStart = Date.parse(`${day}T00:00:00Z`);
        const tokens = requests.tokensSince(dayStart);
        const rows = peers.active(now).filter((p) => p.certSerial !== null);
        const list = rows.map((p) => ({
          name: p.name,
          address: p.address,
          serial: p.certSerial!,
          expiresAt: p.expiresAt,
          policy: p.policy === null ? defaults : mergePolicy(defaults, JSON.parse(p.policy) as Partial<Policy>),
        }));
        return {
          version,
          peers: list,
          logPrompts: config.logPrompts,
          tokensToday: Object.fromEntries(rows.map((p) => [p.name, tokens.get(p.id) ?? 0])),
          day,
        };
      })();
    },
  };
}

export type PeerSetSource = ReturnType<typeof peerSetSource>;
