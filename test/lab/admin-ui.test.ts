/**
 * The admin UI in the lab: `serve` runs it on a management address of the
 * gateway (its LAN side, plus loopback). From the LAN it answers; from a peer
 * through the real tunnel it is unreachable even when the peer widens its own
 * AllowedIPs to the gateway's tunnel address (the firewall drops it), and a
 * request arriving on the tunnel address is refused by the app itself.
 * `admin add` from the CLI, then sign-in with password + TOTP over curl.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GW_LAN, clientUp, createGateway, createLab, type Gateway, type Lab } from './harness.js';
import { BIN, addPeer, type Peer } from './guard-harness.js';

const ADMIN = `${GW_LAN}:8443`;
const PASSWORD = 'lab admin password 1';

describe('admin UI: reachable from the management network only', () => {
  let lab: Lab;
  let gw: Gateway;
  let alice: Peer;
  let caFile: string;

  beforeAll(async () => {
    lab = await createLab('ga');
    gw = await createGateway(lab, 'wgoga');
    const config = JSON.parse(readFileSync(gw.configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(gw.configFile, JSON.stringify({ ...config, admin: { listen: [ADMIN, '127.0.0.1:8443', '0.0.0.0:9443'], hosts: ['admin.lab.test'] } }, null, 2));
    await gw.start();
    alice = await addPeer(lab, gw, 'alice');
    caFile = alice.ca;
    // The peer widens its own AllowedIPs to the tunnel subnet and the gateway's LAN address: it tries to reach the gateway itself.
    await clientUp(lab, lab.ns('c1'), 'wgcga1', alice.config.replace(/AllowedIPs = (.*)/, `AllowedIPs = $1, 10.66.0.0/24, ${GW_LAN}/32`));
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  const curl = (ns: string, url: string, extra: string[] = []) =>
    lab.exec(ns, 'curl', ['-s', '-g', '--cacert', caFile, '--connect-timeout', '2', '-m', '4', '-o', '/dev/null', '-w', '%{http_code}', ...extra, url]);

  it('answers on its management address with a certificate from the wg-ollama CA', async () => {
    const r = await curl(lab.ns('other'), `https://${ADMIN}/login`);
    expect(r.stdout, r.stderr).toBe('200');
  });

  it('through the tunnel it cannot even be connected to, on any gateway address', async () => {
    // The tunnel works (the peer reaches the GPU host) ...
    const ok = await lab.exec(lab.ns('c1'), 'curl', ['-s', '--connect-timeout', '2', '-m', '4', '-o', '/dev/null', '-w', '%{http_code}', 'http://198.51.100.10:11434/']);
    expect(ok.stdout).not.toBe('000');
    // ... but the admin UI on the gateway's tunnel address and its LAN address gets no TCP connection.
    for (const url of ['https://10.66.0.1:8443/login', 'https://10.66.0.1:9443/login', `https://${ADMIN}/login`]) {
      const r = await curl(lab.ns('c1'), url, ['-k']);
      expect(r.stdout, url).toBe('000');
      expect([7, 28], url).toContain(r.code);
    }
  });

  it('a request arriving on the tunnel address is refused by the app too (defence in depth)', async () => {
    // 0.0.0.0:9443 also listens on the tunnel address. From the gateway itself the firewall does not
    // stand in the way, so this reaches the app, which refuses it.
    const r = await lab.exec(lab.ns('gw'), 'curl', ['-s', '-k', '--connect-timeout', '2', '-m', '4', '-w', ' %{http_code}', 'https://10.66.0.1:9443/login']);
    expect(r.stdout).toBe('The admin UI is not available through the tunnel.\n 403');
    const lan = await curl(lab.ns('other'), `https://${GW_LAN}:9443/login`);
    expect(lan.stdout).toBe('200');
  });

  it('admin add prints a TOTP URI; password + code sign in over HTTPS; the Host header is checked', async () => {
    const add = await gw.cli('admin', 'add', 'root1', '--password-stdin', '--json');
    expect(add.code, add.stderr).toBe(2); // no stdin given
    const r = await lab.exec(lab.ns('gw'), 'node', [BIN, '--config', gw.configFile, 'admin', 'add', 'root1', '--password-stdin', '--json'], { input: `${PASSWORD}\n` });
    expect(r.code, r.stderr).toBe(0);
    const secret = new URL((JSON.parse(r.stdout) as { totpUri: string }).totpUri).searchParams.get('secret')!;
    const jar = `${lab.dir}/cookies.txt`;
    const other = lab.ns('other');
    const base = `https://${ADMIN}`;
    const form = await lab.exec(other, 'curl', ['-s', '-g', '--cacert', caFile, '-c', jar, `${base}/login`]);
    const token = /name="_csrf" value="([^"]+)"/.exec(form.stdout)![1]!;
    const code = await generate({ secret });
    const login = await lab.exec(other, 'curl', ['-s', '-g', '--cacert', caFile, '-b', jar, '-c', jar, '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}',
      '-H', `Origin: ${base}`, '--data-urlencode', `_csrf=${token}`, '--data-urlencode', 'name=root1', '--data-urlencode', `password=${PASSWORD}`, '--data-urlencode', `code=${code}`, `${base}/login`]);
    expect(login.stdout).toBe(`303 ${base}/peers`);
    const peers = await lab.exec(other, 'curl', ['-s', '-g', '--cacert', caFile, '-b', jar, `${base}/peers`]);
    expect(peers.stdout).toContain('data-peer="alice"');
    const wrongHost = await lab.exec(other, 'curl', ['-s', '-g', '-k', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: evil.example', `${base}/login`]);
    expect(wrongHost.stdout).toBe('421');
  });
});
