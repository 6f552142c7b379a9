import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gatewayStateRepository } from '../../../src/db/gateway-state.js';
import { startWebEnv, type WebEnv } from '../../support/web-env.js';

describe('the status page shows the last backup', () => {
  let env: WebEnv;
  let s: { cookie: string; csrf: string };
  beforeAll(async () => {
    env = await startWebEnv();
    s = await env.session('alice', await env.addAdmin('alice'));
  });
  afterAll(() => env.close());
  const fact = async (name: string): Promise<string> => {
    const page = await env.http('GET', '/status', { cookie: s.cookie });
    expect(page.status).toBe(200);
    const m = new RegExp(`<dt>${name}</dt><dd class="([a-z]*)">([^<]*)</dd>`).exec(page.body);
    expect(m, page.body).not.toBeNull();
    return `${m![1]}|${m![2]}`;
  };

  test('"never" (marked bad) before the first backup, then its time, file and size', async () => {
    expect(await fact('Last backup')).toBe('bad|never');
    const at = Date.UTC(2026, 11, 5, 1, 0, 0);
    gatewayStateRepository(env.ctx.db).recordBackup({ at, file: '/var/backups/wg-ollama/wg-ollama-20261205T010000Z.wgobak', size: 3 * 1024 * 1024 });
    expect(await fact('Last backup')).toMatch(/^\|2026-12-05T01:00:00\.000Z \(\d+[smhd] ago\): \/var\/backups\/wg-ollama\/wg-ollama-20261205T010000Z\.wgobak, 3\.0 MiB$/);
  });
});
