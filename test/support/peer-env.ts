import { existsSync, readdirSync, rmSync } from 'node:fs';
import { parseConfig, type Config, type ConfigInput } from '../../src/config.js';
import { generateKeyPair, type KeyPair } from '../../src/core/keys.js';
import { auditRepository, type AuditRow } from '../../src/db/audit.js';
import { openDatabase, type Db } from '../../src/db/open.js';
import { peerRepository, type PeerRow } from '../../src/db/peers.js';
import { peerService, type PeerService } from '../../src/gateway/peer-service.js';
import { pskStore, type PskStore } from '../../src/gateway/psk-store.js';
import { testCaStore } from './ca.js';
import { BASE_CONFIG } from './gateway-state.js';
import { testDir } from './temp.js';

export const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
export const DAY = 86_400_000;
export { WHO } from './gateway-state.js';

export interface PeerEnv {
  dir: string;
  config: Config;
  db: Db;
  psk: PskStore;
  server: KeyPair;
  svc: PeerService;
  /** The fixed clock: set `env.now` to move time. */
  now: number;
  rows(): PeerRow[];
  pskFiles(): string[];
  audit(): AuditRow[];
  close(): void;
}

/** A peer service on a real in-memory SQLite, a real PSK directory in a temp dir, and a fixed clock. */
export function peerEnv(overrides: Partial<ConfigInput> = {}): PeerEnv {
  // Removed when the test (or, made in a hook, the test process) finishes, also when close() is never called.
  const dir = testDir('peers');
  const config = parseConfig({ stateDir: dir, ...BASE_CONFIG, ...overrides }, 'test');
  const db = openDatabase(':memory:');
  const psk = pskStore(config.paths.pskDir);
  const server = generateKeyPair();
  const env: PeerEnv = {
    dir,
    config,
    db,
    psk,
    server,
    now: T0,
    svc: undefined as unknown as PeerService,
    rows: () => peerRepository(db).all(),
    pskFiles: () => (existsSync(config.paths.pskDir) ? readdirSync(config.paths.pskDir).sort() : []),
    audit: () => auditRepository(db).list({ since: 0 }),
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  env.svc = peerService({ db, config, serverPublicKey: server.publicKey, psk, ca: testCaStore(), clock: () => env.now });
  return env;
}
