import type { Config } from '../config.js';
import type { DesiredPeer, DesiredState } from '../core/desired.js';
import { gatewayAddress, intToIp, parseCidr } from '../core/ipv4.js';
import { isKeyText, publicKeyOf } from '../core/keys.js';
import { openDatabase, type Db } from '../db/open.js';
import { peerRepository } from '../db/peers.js';
import { readSecretFile } from '../system/files.js';
import { peerService, type PeerService } from './peer-service.js';
import { pskStore, type PskStore } from './psk-store.js';

/** Everything a verb needs about one gateway: config, database, keys, services. */
export interface GatewayContext {
  config: Config;
  db: Db;
  privateKey: string;
  serverPublicKey: string;
  psk: PskStore;
  peers: PeerService;
  close(): void;
}

export function openGateway(config: Config): GatewayContext {
  const privateKey = readSecretFile(config.paths.serverKey);
  const serverPublicKey = publicKeyOf(privateKey);
  const db = openDatabase(config.paths.db);
  const psk = pskStore(config.paths.pskDir);
  return {
    config,
    db,
    privateKey,
    serverPublicKey,
    psk,
    peers: peerService({ db, config, serverPublicKey, psk }),
    close: () => db.close(),
  };
}

/**
 * Desired kernel state from the database: every active, unexpired peer. A
 * peer whose preshared key file cannot be read is left out (fail closed) and
 * reported through onError.
 *
 * With `version` (the connection's PRAGMA data_version) the result is reused
 * until another process commits or the first loaded peer expires: a
 * reconcile with nothing to do then reads no rows and no key files.
 */
export function desiredLoader(ctx: GatewayContext, onError: (msg: string) => void, clock: () => number = Date.now, version?: () => number) {
  const repo = peerRepository(ctx.db);
  const net = parseCidr(ctx.config.subnet);
  const addressCidr = `${intToIp(gatewayAddress(net))}/${net.prefix}`;
  let cached: { version: number; validUntil: number; state: DesiredState } | null = null;
  return (): DesiredState => {
    const now = clock();
    const v = version?.();
    if (cached && v !== undefined && cached.version === v && now < cached.validUntil) return cached.state;
    const peers: DesiredPeer[] = [];
    let complete = true;
    let validUntil = Infinity;
    for (const p of repo.active(now)) {
      if (p.expiresAt !== null) validUntil = Math.min(validUntil, p.expiresAt);
      let presharedKey: string | null = null;
      if (p.pskRef) {
        try {
          presharedKey = ctx.psk.read(p.pskRef);
          if (!isKeyText(presharedKey)) throw new Error('its preshared key file is malformed');
        } catch (e) {
          onError(`peer ${p.name} left out: ${(e as Error).message}`);
          complete = false;
          continue;
        }
      }
      peers.push({
        id: p.id,
        name: p.name,
        publicKey: p.publicKey,
        presharedKey,
        presharedKeyFile: p.pskRef ? ctx.psk.path(p.pskRef) : null,
        address: p.address,
        expiresAt: p.expiresAt,
      });
    }
    const state: DesiredState = {
      iface: ctx.config.interface,
      listenPort: ctx.config.listenPort,
      addressCidr,
      ollamaHost: ctx.config.ollamaHost,
      ollamaPort: ctx.config.ollamaPort,
      peers,
    };
    cached = v !== undefined && complete ? { version: v, validUntil, state } : null;
    return state;
  };
}
