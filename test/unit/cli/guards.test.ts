import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { addGuard } from '../../../src/cli/guards.js';
import type { Io } from '../../../src/cli/output.js';
import { type Config } from '../../../src/config.js';
import { openGateway } from '../../../src/gateway/context.js';
import { loadGuardConfig } from '../../../src/guard/config.js';
import { testCa } from '../../support/ca.js';
import { gatewayState, type GatewayState } from '../../support/gateway-state.js';

const WHO = { actor: 'root', source: 'cli' };

describe('add-guard (a real gateway state)', () => {
  let state: GatewayState;
  let dir: string;
  let config: Config;
  const io: Io = { out: () => undefined, err: () => undefined, env: {} };
  const guards = () => {
    const ctx = openGateway(config);
    try {
      return ctx.guards.list().map((g) => g.name);
    } finally {
      ctx.close();
    }
  };

  beforeAll(() => {
    state = gatewayState({ name: 'guards', config: { sync: { listen: '192.168.1.1:7443' } } });
    ({ dir, config } = state);
  });
  afterAll(() => state.cleanup());

  test('writes a directory the guard runs from: config, CA, server and sync certificates, keys 0600', async () => {
    const out = join(dir, 'gpu1');
    await addGuard(config, 'gpu1', { address: '192.168.1.10', out }, io, WHO);
    expect(readdirSync(out).sort()).toEqual(['ca.crt', 'guard.crt', 'guard.json', 'guard.key', 'sync.crt', 'sync.key']);
    for (const f of ['guard.key', 'sync.key', 'guard.json']) expect(statSync(join(out, f)).mode & 0o777).toBe(0o600);
    const g = loadGuardConfig(join(out, 'guard.json'));
    expect(g).toMatchObject({ name: 'gpu1', listen: '192.168.1.10:11434', gatewayUrl: 'https://192.168.1.1:7443', tunnelSubnet: '10.66.0.0/24' });
    expect(readFileSync(g.tls.ca, 'utf8')).toBe(testCa().certPem);
    expect(guards()).toEqual(['gpu1']);
  });

  test('an --out that cannot be written is BAD_INPUT before anything is issued: the name stays free', async () => {
    // A file where the directory should go (root can write anywhere, so not a read-only directory).
    const blocker = join(dir, 'file');
    writeFileSync(blocker, '');
    await expect(addGuard(config, 'gpu2', { address: '192.168.1.11', out: join(blocker, 'sub') }, io, WHO)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect(guards()).toEqual(['gpu1']);
    // and with a good directory the same name works
    await addGuard(config, 'gpu2', { address: '192.168.1.11', out: join(dir, 'gpu2') }, io, WHO);
    expect(guards()).toEqual(['gpu1', 'gpu2']);
    expect(existsSync(join(dir, 'gpu2', 'guard.json'))).toBe(true);
  });
});
