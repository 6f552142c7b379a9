import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parseConfig, type Config } from '../../../src/config.js';
import { generateKeyPair } from '../../../src/core/keys.js';
import { peerRepository } from '../../../src/db/peers.js';
import { desiredLoader, openGateway, type GatewayContext } from '../../../src/gateway/context.js';
import { writeSecretFile } from '../../../src/system/files.js';
import { expectWgoError } from '../../support/errors.js';
import { DAY, WHO } from '../../support/peer-env.js';

let dir: string;
let config: Config;
let ctx: GatewayContext | undefined;
const server = generateKeyPair();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-ctx-'));
  config = parseConfig(
    {
      stateDir: dir, interface: 'wgo0', listenPort: 51820, subnet: '10.66.0.0/24',
      endpoint: 'vpn.example.com:51820', ollamaHost: '192.168.1.10', ollamaPort: 11434,
    },
    'test',
  );
});
afterEach(() => {
  ctx?.close();
  ctx = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('openGateway', () => {
  test('reads the server key, derives its public key, opens the database', () => {
    writeSecretFile(config.paths.serverKey, server.privateKey + '\n');
    ctx = openGateway(config);
    expect(ctx.privateKey).toBe(server.privateKey);
    expect(ctx.serverPublicKey).toBe(server.publicKey);
    expect(ctx.peers.add({ name: 'alice' }, WHO).config).toContain(`PublicKey = ${server.publicKey}`);
  });

  test('without a server key it is NOT_INITIALIZED', () => {
    expectWgoError(() => openGateway(config), 'NOT_INITIALIZED');
  });
});

describe('desiredLoader', () => {
  let now: number;
  beforeEach(() => {
    writeSecretFile(config.paths.serverKey, server.privateKey + '\n');
    ctx = openGateway(config);
    now = Date.now();
  });

  test('active, unexpired peers with their PSK and its file; the gateway address with the prefix', () => {
    const c = ctx!;
    c.peers.add({ name: 'alice' }, WHO);
    c.peers.add({ name: 'bob', expiresInMs: DAY }, WHO);
    c.peers.add({ name: 'carol' }, WHO);
    c.peers.add({ name: 'dave' }, WHO);
    c.peers.disable('carol', WHO);
    c.peers.revoke('dave', WHO);
    const errors: string[] = [];
    const load = desiredLoader(c, (m) => errors.push(m), () => now);
    const rows = peerRepository(c.db);
    const a = rows.byName('alice')!;
    const first = load();
    expect(first).toEqual({
      iface: 'wgo0',
      listenPort: 51820,
      addressCidr: '10.66.0.1/24',
      ollamaHost: '192.168.1.10',
      ollamaPort: 11434,
      peers: [
        {
          id: a.id, name: 'alice', publicKey: a.publicKey, presharedKey: c.psk.read(a.pskRef!),
          presharedKeyFile: join(config.paths.pskDir, `${a.pskRef}.psk`), address: '10.66.0.2', expiresAt: null,
        },
        expect.objectContaining({ name: 'bob', address: '10.66.0.3' }),
      ],
    });
    now = Date.now() + 2 * DAY;
    expect(load().peers.map((p) => p.name)).toEqual(['alice']);
    expect(errors).toEqual([]);
  });

  test('a peer whose PSK file is unreadable is left out (fail closed) and reported', () => {
    const c = ctx!;
    c.peers.add({ name: 'alice' }, WHO);
    c.peers.add({ name: 'bob' }, WHO);
    unlinkSync(c.psk.path(peerRepository(c.db).byName('alice')!.pskRef!));
    const errors: string[] = [];
    expect(desiredLoader(c, (m) => errors.push(m), () => now)().peers.map((p) => p.name)).toEqual(['bob']);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^peer alice left out: cannot read /);
  });
});
