/**
 * The connector in front of the real in-process guard (test/unit/guard/guard-env.ts):
 * the guard and the Ollama simulator on loopback, alice's certificate in a
 * connect profile, and the connector on 127.0.0.1:0 forwarding to the guard.
 */
import { once } from 'node:events';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { parseConnectListen } from '../../src/core/connect.js';
import { renderConnectProfile } from '../../src/core/connect-profile.js';
import { createConnector, type Connector } from '../../src/connect/proxy.js';
import { startEnv, type EnvOptions, type GuardEnv } from './guard-env.js';
import { testDir } from './temp.js';

export interface ConnectEnv {
  env: GuardEnv;
  connector: Connector;
  /** http://127.0.0.1:PORT of the connector. */
  url: string;
  /** Connector failures it logged (502s). */
  warnings: string[];
  /** A 0600 connect profile for alice, in a temporary directory. */
  profileFile: string;
  close(): Promise<void>;
}

export function profileFor(env: GuardEnv, peer: string, guardUrl = `https://127.0.0.1:${env.port}`): string {
  const c = env.certs.get(peer)!;
  return renderConnectProfile({ peer, guardUrl, ca: env.ca.certPem, certificate: c.certPem, key: c.keyPem });
}

export function writeProfile(text: string, mode = 0o600): string {
  const file = join(testDir('connect'), 'alice.connect.json');
  writeFileSync(file, text, { mode });
  chmodSync(file, mode);
  return file;
}

/** A connector for `peer` in front of a guard URL (default: the env's guard). */
export async function startConnector(env: GuardEnv, o: { peer?: string; guardUrl?: string; tls?: { ca: string; cert: string; key: string }; connectTimeoutMs?: number } = {}) {
  const peer = o.peer ?? 'alice';
  const c = env.certs.get(peer)!;
  const warnings: string[] = [];
  const connector = createConnector({
    guardUrl: o.guardUrl ?? `https://127.0.0.1:${env.port}`,
    tls: o.tls ?? { ca: env.ca.certPem, cert: c.certPem, key: c.keyPem },
    listen: parseConnectListen('127.0.0.1:0')!,
    allowRemote: false,
    log: { warn: (t) => void warnings.push(t) },
    connectTimeoutMs: o.connectTimeoutMs ?? 2000,
  });
  connector.server.listen(0, '127.0.0.1');
  await once(connector.server, 'listening');
  const port = (connector.server.address() as AddressInfo).port;
  return { connector, warnings, url: `http://127.0.0.1:${port}` };
}

export async function startConnectEnv(o: EnvOptions = {}): Promise<ConnectEnv> {
  const env = await startEnv(o);
  const c = await startConnector(env);
  const profileFile = writeProfile(profileFor(env, 'alice'));
  return {
    env,
    ...c,
    profileFile,
    async close() {
      await c.connector.close();
      await env.close();
      rmSync(dirname(profileFile), { recursive: true, force: true });
    },
  };
}
