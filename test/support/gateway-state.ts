/**
 * A real gateway state for tests: a private temp dir holding the config file
 * and the state dir (0700), the server's WireGuard key and the shared test CA
 * (so no RSA key is made per test). Nothing is opened: `open()` gives a
 * gateway context the caller closes; `cleanup()` removes the whole dir.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type Config, type ConfigInput } from '../../src/config.js';
import { generateKeyPair } from '../../src/core/keys.js';
import { openGateway, type GatewayContext } from '../../src/gateway/context.js';
import { writeSecretFile } from '../../src/system/files.js';
import { testCa } from './ca.js';

/** The settings every test gateway shares unless a test overrides them. */
export const BASE_CONFIG = {
  interface: 'wgo0',
  listenPort: 51820,
  subnet: '10.66.0.0/24',
  endpoint: 'vpn.example.com:51820',
  ollamaHost: '192.168.1.10',
  ollamaPort: 11434,
} as const;

export const WHO = { actor: 'root', source: 'cli' };

export interface GatewayState {
  /** The temp dir: config.json and state/ live in it. */
  dir: string;
  configFile: string;
  config: Config;
  /** A gateway context on this state (opens and migrates the database). */
  open(): GatewayContext;
  /** Runs fn on a fresh context and closes it. */
  withGateway<T>(fn: (ctx: GatewayContext) => T): T;
  cleanup(): void;
}

export interface GatewayStateOptions {
  /** Names the temp dir (wgo-<name>-XXXX) so a leftover says which test made it. */
  name?: string;
  /** Settings over BASE_CONFIG. */
  config?: Partial<ConfigInput>;
  /** Write the server key and the test CA (default true); false leaves an empty state dir. */
  keys?: boolean;
  /** Create the state dir (default true). */
  stateDir?: boolean;
}

export function gatewayState(o: GatewayStateOptions = {}): GatewayState {
  const dir = mkdtempSync(join(tmpdir(), `wgo-${o.name ?? 'state'}-`));
  const raw = { stateDir: join(dir, 'state'), ...BASE_CONFIG, ...o.config };
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(raw, null, 2));
  const config = parseConfig(raw, configFile);
  if (o.stateDir !== false || o.keys !== false) mkdirSync(config.stateDir, { mode: 0o700, recursive: true });
  if (o.keys !== false) {
    writeSecretFile(config.paths.serverKey, generateKeyPair().privateKey + '\n');
    writeSecretFile(config.paths.caKey, testCa().keyPem + testCa().certPem);
  }
  const open = (): GatewayContext => openGateway(config);
  return {
    dir,
    configFile,
    config,
    open,
    withGateway(fn) {
      const ctx = open();
      try {
        return fn(ctx);
      } finally {
        ctx.close();
      }
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
