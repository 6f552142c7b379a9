import type { Config } from '../config.js';
import type { DesiredPeer, DesiredState } from '../core/desired.js';
import { gatewayAddress, intToIp, parseCidr } from '../core/ipv4.js';
import { isKeyText, publicKeyOf } from '../core/keys.js';
import { openDatabase, type Db } from '../db/open.js';
import { WgoError } from '../errors.js';
import { peerRepository, type PeerRow } from '../db/peers.js';
import { readSecretFile } from '../system/files.js';
import { permittedForConfig } from '../core/ca-names.js';
import { caStore, type CaStore } from './ca-store.js';
import { guardService, type GuardService } from './guard-service.js';
import { peerService, type PeerService } from './peer-service.js';
import { pskStore, type PskStore } from './psk-store.js';
import { denialJournal, saveDenials, type DenialJournal } from './denials.js';
import { join } from 'node:path';

/** Everything a verb needs about one gateway: config, database, keys, services. */
export interface GatewayContext {
  config: Config;
  db: Db;
  privateKey: string;
  serverPublicKey: string;
  psk: PskStore;
  peers: PeerService;
  guards: GuardService;
  ca: CaStore;
  /** Revokes and disables a full disk kept out of the database (gateway/denials.ts). */
  denials: DenialJournal;
  close(): void;
}

export function openGateway(config: Config): GatewayContext {
  const privateKey = readSecretFile(config.paths.serverKey);
  const serverPublicKey = publicKeyOf(privateKey);
  const db = openDatabase(config.paths.db);
  const psk = pskStore(config.paths.pskDir);
  const ca = caStore(config.paths, { permitted: permittedForConfig(config) });
  const denials = denialJournal(join(config.stateDir, 'denials'));
  const peers = peerService({ db, config, serverPublicKey, psk, ca, denials });
  // While there is space: the journal exists, and denials kept while the disk was full are saved
  // before this verb changes anything (so that a later enable is not undone by an older disable).
  try {
    if (denials.ensure()) saveDenials(denials, (d) => peers.saveDenial(d));
  } catch {
    /* the daemon keeps trying; a verb that writes reports the disk itself */
  }
  return {
    config,
    db,
    privateKey,
    serverPublicKey,
    psk,
    ca,
    denials,
    peers,
    guards: guardService({ db, config, ca }),
    close: () => db.close(),
  };
}

/**
 * Desired kernel state from the database: every active, unexpired peer. A
 * peer whose preshared key file cannot be read is left out (fail closed) and
 * reported through onError.
 *
 * `full()` gives the whole state; with `version` (changes to the database by
 * any connection) it is reused until something commits or the first loaded
 * peer expires, so a reconcile with nothing to do reads no rows or key files.
 * `changes()` reads only the peers changed since the last load (by change
 * sequence) and says what they were and are: the daemon's fast path. It is
 * null when there is no complete baseline to compare with.
 */
export interface DesiredStore {
  full(): DesiredState;
  changes(): DesiredChanges | null;
}

export interface DesiredChanges {
  before: Map<number, DesiredPeer>;
  after: Map<number, DesiredPeer | null>;
  state: DesiredState;
}

export function createDesiredStore(
  ctx: GatewayContext,
  onError: (msg: string) => void,
  clock: () => number = Date.now,
  version?: () => number,
): DesiredStore {
  const repo = peerRepository(ctx.db);
  const net = parseCidr(ctx.config.subnet);
  const addressCidr = `${intToIp(gatewayAddress(net))}/${net.prefix}`;
  let map = new Map<number, DesiredPeer>();
  let seq = -1;
  let complete = false;
  let loadedVersion: number | undefined;
  let state: DesiredState | null = null;
  let validUntil = Infinity;

  /** The desired value of a row, or null (inactive, expired, or its key file unusable). */
  const desiredOf = (p: PeerRow, now: number): DesiredPeer | null => {
    if (p.status !== 'active' || (p.expiresAt !== null && p.expiresAt <= now)) return null;
    let presharedKey: string | null = null;
    if (p.pskRef) {
      try {
        presharedKey = ctx.psk.read(p.pskRef);
        if (!isKeyText(presharedKey)) throw new WgoError('INTERNAL', 'its preshared key file is malformed');
      } catch (e) {
        onError(`peer ${p.name} left out: ${(e as Error).message}`);
        complete = false;
        return null;
      }
    }
    return {
      id: p.id,
      name: p.name,
      publicKey: p.publicKey,
      presharedKey,
      presharedKeyFile: p.pskRef ? ctx.psk.path(p.pskRef) : null,
      address: p.address,
      expiresAt: p.expiresAt,
    };
  };

  const build = (v: number | undefined): DesiredState => {
    validUntil = Infinity;
    for (const p of map.values()) if (p.expiresAt !== null) validUntil = Math.min(validUntil, p.expiresAt);
    loadedVersion = v;
    state = {
      iface: ctx.config.interface,
      listenPort: ctx.config.listenPort,
      addressCidr,
      ollamaHost: ctx.config.ollamaHost,
      ollamaPort: ctx.config.ollamaPort,
      peers: [...map.values()],
    };
    return state;
  };

  return {
    full() {
      const now = clock();
      const v = version?.();
      if (state && complete && v !== undefined && v === loadedVersion && now < validUntil) return state;
      complete = true;
      const next = new Map<number, DesiredPeer>();
      ctx.db.transaction(() => {
        seq = repo.maxSeq();
        for (const row of repo.active(now)) {
          const d = desiredOf(row, now);
          if (d) next.set(d.id, d);
        }
      })();
      map = next;
      return build(v);
    },
    changes() {
      if (!state || !complete) return null;
      const now = clock();
      const v = version?.();
      const before = new Map<number, DesiredPeer>();
      const after = new Map<number, DesiredPeer | null>();
      ctx.db.transaction(() => {
        for (const row of repo.changedSince(seq)) {
          const old = map.get(row.id);
          if (old) before.set(row.id, old);
          const d = desiredOf(row, now);
          after.set(row.id, d);
          if (d) map.set(row.id, d);
          else map.delete(row.id);
          seq = Math.max(seq, row.changeSeq);
        }
      })();
      if (after.size === 0) {
        loadedVersion = v;
        return { before, after, state: state! };
      }
      return { before, after, state: build(v) };
    },
  };
}

/** The whole desired state, as a function (see DesiredStore.full). */
export function desiredLoader(ctx: GatewayContext, onError: (msg: string) => void, clock: () => number = Date.now, version?: () => number) {
  const store = createDesiredStore(ctx, onError, clock, version);
  return (): DesiredState => store.full();
}
