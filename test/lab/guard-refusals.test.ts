/**
 * Refusals at the guard's TLS and request layers, through the real tunnel:
 * each answered with its exact status and Ollama-style JSON error, recorded
 * at the gateway with its reason, and never reaching the simulator.
 * Certificates: none, another CA's, expired, another peer's; path tricks
 * towards pull and delete; head, body and framing limits.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientUp, createGateway, waitFor } from './harness.js';
import {
  addPeer, clientArgs, createGuardLab, requestLog, runClient, tlsCurl,
  type Creds, type GuardLab, type HttpResult, type Peer,
} from './guard-harness.js';

/** Method, request target, status, error: every way towards pull and delete ends at the guard. */
const PATH_CASES: [string, string, number, string][] = [
  ['POST', '/api/pull', 403, 'endpoint "pull" is not allowed for this peer'],
  ['DELETE', '/api/delete', 403, 'endpoint "delete" is not allowed for this peer'],
  ['POST', '/api/pull?x=/api/tags', 403, 'endpoint "pull" is not allowed for this peer'],
  ['POST', '/api//pull', 400, 'invalid request path: path has an empty segment ("//")'],
  ['POST', '//api/pull', 400, 'invalid request path: path has an empty segment ("//")'],
  ['POST', '/api/./pull', 400, 'invalid request path: path has a "." segment'],
  ['POST', '/api/tags/../pull', 400, 'invalid request path: path has a ".." segment'],
  ['DELETE', '/api/x/../delete', 400, 'invalid request path: path has a ".." segment'],
  ['POST', '/api/%70ull', 400, 'invalid request path: path contains "%"'],
  ['POST', '/api/tags/%2e%2e/pull', 400, 'invalid request path: path contains "%"'],
  ['POST', '/api%2fpull', 400, 'invalid request path: path contains "%"'],
  ['POST', '/api/pull/', 400, 'invalid request path: path ends with "/"'],
  ['DELETE', '/api/delete/', 400, 'invalid request path: path ends with "/"'],
  ['POST', '/api/pull;v=1', 400, 'invalid request path: path contains ";"'],
  ['POST', '/api\\pull', 400, 'invalid request path: path contains "\\"'],
  ['POST', 'http://127.0.0.1:11434/api/pull', 400, 'invalid request path: request target must be a path starting with "/"'],
  ['POST', '/API/PULL', 404, 'path "/API/PULL" not found'],
  ['DELETE', '/api/Delete', 404, 'path "/api/Delete" not found'],
  ['GET', '/api/pull', 405, 'method GET is not allowed for /api/pull'],
  ['POST', '/api/delete', 405, 'method POST is not allowed for /api/delete'],
];

describe('guard: refusals through the tunnel', () => {
  let gl: GuardLab;
  let alice: Peer;
  let bob: Peer;
  let carol: Peer;
  let foreign: Creds;
  let c1: string;
  let c2: string;
  let allowed = 0;
  const as = (p: Peer): Creds => ({ ca: p.ca, crt: p.crt, key: p.key });

  /** The request was refused with exactly this answer, and the simulator saw nothing of it. */
  const refused = async (send: () => Promise<HttpResult>, status: number, error: string): Promise<HttpResult> => {
    const before = gl.sim.count();
    const r = await send();
    expect(r.status, `${r.stderr} ${r.body}`).toBe(status);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.json()).toEqual({ error });
    expect(gl.sim.count()).toBe(before);
    return r;
  };

  beforeAll(async () => {
    gl = await createGuardLab('gr', { guardLimits: { maxBodyBytes: 65_536, maxHeaderBytes: 8192 } });
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    bob = await addPeer(gl.lab, gl.gw, 'bob');
    carol = await addPeer(gl.lab, gl.gw, 'carol', ['--expires', '2s']);
    c1 = gl.lab.ns('c1');
    c2 = gl.lab.ns('c2');
    await clientUp(gl.lab, c1, 'wgcgr1', alice.config);
    await clientUp(gl.lab, c2, 'wgcgr2', bob.config);
    // A second wg-ollama installation (its own CA) issues a certificate for the same name and tunnel address.
    const other = await createGateway(gl.lab, 'wgogrx', ['--listen-port', '51999']);
    const dir = join(gl.lab.dir, 'foreign');
    const r = await other.cli('add-peer', 'alice', '--out', dir);
    expect(r.code, r.stderr).toBe(0);
    foreign = { ca: alice.ca, crt: join(dir, 'alice.crt'), key: join(dir, 'alice.key') };
    const sanity = await tlsCurl(gl.lab, c1, as(alice), '/api/version');
    expect(sanity.status).toBe(200);
    allowed++;
  });
  afterAll(async () => {
    await gl?.cleanup();
  });

  describe('certificates', () => {
    it('none: 401', async () => {
      await refused(() => tlsCurl(gl.lab, c1, { ca: alice.ca }, '/api/generate', { data: '{"model":"llama3.2","prompt":"hi"}' }), 401, 'client certificate required');
    });

    it('one from another CA, for the right name and address: 401', async () => {
      expect(new X509Certificate(readFileSync(foreign.crt!)).subjectAltName).toBe('IP Address:10.66.0.2');
      await refused(() => tlsCurl(gl.lab, c1, foreign, '/api/version'), 401, 'client certificate is not from this wg-ollama CA');
    });

    it("an expired one (carol's, presented through alice's tunnel): 401", async () => {
      const notAfter = Date.parse(new X509Certificate(carol.certificate).validTo);
      await waitFor(() => Date.now() > notAfter + 1000, 10_000, "carol's certificate to expire");
      await refused(() => tlsCurl(gl.lab, c1, as(carol), '/api/version'), 401, 'client certificate has expired');
    });

    it("peer A's certificate from peer B's tunnel address: 403", async () => {
      await refused(() => tlsCurl(gl.lab, c2, as(alice), '/api/version'), 403, 'client certificate belongs to 10.66.0.2, not to 10.66.0.3');
      // ...and with its own certificate bob is served.
      expect((await tlsCurl(gl.lab, c2, as(bob), '/api/version')).status).toBe(200);
      allowed++;
    });

    it('a real client without a certificate gets the same answer', async () => {
      const r = await runClient<{ ok: boolean; status: number; error: string }>(gl.lab, c1, 'ollama-chat.mjs', clientArgs({ ca: alice.ca }));
      expect(r).toMatchObject({ ok: false, status: 401, error: 'client certificate required' });
    });
  });

  describe('path tricks towards pull and delete', () => {
    it.each(PATH_CASES)('%s %s → %i', async (method, target, status, error) => {
      const r = await refused(() => tlsCurl(gl.lab, c1, as(alice), '/', { method, data: '{"model":"llama3.2"}', extra: ['--request-target', target] }), status, error);
      if (status === 405) expect(r.headers.allow).toBe(method === 'GET' ? 'POST' : 'DELETE');
    });
  });

  describe('limits', () => {
    it('a declared body over the limit: 413', async () => {
      const body = JSON.stringify({ model: 'llama3.2', prompt: 'x'.repeat(70_000) });
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/api/generate', { data: body }), 413, 'request body too large (limit 65536 bytes)');
    });

    it('a chunked body over the limit: 413', async () => {
      const body = JSON.stringify({ model: 'llama3.2', prompt: 'x'.repeat(70_000) });
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/api/generate', { data: body, headers: ['transfer-encoding: chunked'] }), 413, 'request body too large (limit 65536 bytes)');
    });

    it('request headers over the limit: 431', async () => {
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/api/version', { headers: [`x-filler: ${'a'.repeat(9000)}`] }), 431, 'request headers too large');
    });

    it('Content-Length together with Transfer-Encoding: 400, connection closed', async () => {
      const before = gl.sim.count();
      const request = 'POST /api/generate HTTP/1.1\\r\\nHost: guard\\r\\nContent-Type: application/json\\r\\nContent-Length: 40\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n';
      const r = await runClient<{ status: number; response: string; closed: boolean }>(gl.lab, c1, 'raw.mjs', [...clientArgs(as(alice)), '--request', request]);
      expect(r.status).toBe(400);
      expect(r.closed).toBe(true);
      expect(r.response).toMatch(/\r\n\r\n\{"error":"request has both Content-Length and Transfer-Encoding"\}$/);
      expect(gl.sim.count()).toBe(before);
    });
  });

  it('every refusal is recorded at the gateway with its reason; only the allowed requests reached Ollama', async () => {
    expect(gl.sim.count()).toBe(allowed);
    const want = allowed + 3 /* certificates */ + 1 /* wrong source */ + 1 /* real client */ + PATH_CASES.length + 4 /* limits */;
    let rows = await requestLog(gl.gw);
    await waitFor(async () => (rows = await requestLog(gl.gw)).length >= want, 5000, `${want} records at the gateway`);
    expect(rows).toHaveLength(want);
    const reasons = new Map<string, number>();
    for (const r of rows) reasons.set(r.refusal ?? 'served', (reasons.get(r.refusal ?? 'served') ?? 0) + 1);
    expect(Object.fromEntries(reasons)).toEqual({
      served: allowed, auth_no_certificate: 2, auth_untrusted: 1, auth_expired: 1, auth_wrong_source: 1,
      endpoint_denied: 3, path_not_canonical: 13, unknown_endpoint: 2, method_not_allowed: 2,
      body_too_large: 2, headers_too_large: 1, ambiguous_length: 1,
    });
    const wrong = rows.find((r) => r.refusal === 'auth_wrong_source')!;
    // Not authenticated, so no peer name; the certificate (alice's) and the address it came from (bob's) are kept.
    expect(wrong).toMatchObject({ peer: null, source: '10.66.0.3', status: 403, certSerial: alice.certificateSerial });
    for (const r of rows.filter((x) => x.refusal?.startsWith('auth_') && x.refusal !== 'auth_wrong_source')) expect(r).toMatchObject({ peer: null, certSerial: null, source: '10.66.0.2', status: 401 });
  });
});
