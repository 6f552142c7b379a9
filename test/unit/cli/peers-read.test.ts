/**
 * list-peers and show-peer through the CLI functions on a real gateway state
 * directory: the shape they print, and link data only for the current key.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Io } from '../../../src/cli/output.js';
import { listPeers, showPeer } from '../../../src/cli/peers.js';
import { type Config } from '../../../src/config.js';
import { connectionRepository } from '../../../src/db/connections.js';
import { openGateway } from '../../../src/gateway/context.js';
import { gatewayState, type GatewayState } from '../../support/gateway-state.js';

const WHO = { actor: 'root', source: 'cli' };
const ENDPOINT = '203.0.113.8:9999';

describe('list-peers and show-peer', () => {
  let state: GatewayState;
  let config: Config;
  beforeAll(() => {
    state = gatewayState({ name: 'peers-read' });
    config = state.config;
    const ctx = openGateway(config);
    try {
      const alice = ctx.peers.add({ name: 'alice' }, WHO).peer;
      connectionRepository(ctx.db).saveTick(Date.now(), [{
        peerId: alice.id,
        state: { publicKey: alice.publicKey, endpoint: ENDPOINT, latestHandshake: Math.floor(Date.now() / 1000) - 5, connected: true, rxSeen: 0, txSeen: 0, rxPending: 0, txPending: 0, rxTotal: 10, txTotal: 20, trafficAt: Date.now() },
        events: [],
      }]);
    } finally {
      ctx.close();
    }
  });
  afterAll(() => state.cleanup());

  const json = async (fn: (io: Io) => Promise<void>): Promise<unknown> => {
    const out: string[] = [];
    await fn({ out: (t) => void out.push(t), err: () => undefined, env: {} });
    return JSON.parse(out.join(''));
  };

  test('the JSON keeps its fields; the endpoint and handshake of a key that was rotated away are not shown', async () => {
    const [before] = (await json((io) => listPeers(config, { json: true }, io))) as Record<string, unknown>[];
    expect(Object.keys(before!)).toEqual(['id', 'name', 'address', 'publicKey', 'status', 'createdAt', 'expiresAt', 'revokedAt', 'certificateSerial', 'policy', 'endpoint', 'latestHandshake', 'connected', 'rxBytes', 'txBytes']);
    expect(before).toMatchObject({ endpoint: ENDPOINT, connected: true, rxBytes: 10, txBytes: 20 });
    const ctx = openGateway(config);
    try {
      ctx.peers.rotate('alice', {}, WHO);
    } finally {
      ctx.close();
    }
    const [after] = (await json((io) => listPeers(config, { json: true }, io))) as Record<string, unknown>[];
    expect(after).toMatchObject({ endpoint: null, latestHandshake: null, connected: false, rxBytes: 10, txBytes: 20 });
    const shown = (await json((io) => showPeer(config, 'alice', { json: true }, io))) as Record<string, unknown>;
    expect(shown).toMatchObject({ name: 'alice', endpoint: null, latestHandshake: null, apiToken: 'none' });
    await expect(showPeer(config, 'nobody', {}, { out: () => undefined, err: () => undefined, env: {} })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
