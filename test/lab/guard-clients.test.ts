/**
 * Real clients through the real tunnel to the real guard (two-box mode: the
 * guard and the Ollama-API simulator in the GPU namespace, the gateway with
 * its sync API in gw): the `ollama` and `openai` npm clients with the peer's
 * certificate, curl with PEM files and with the .p12, the certificate itself,
 * the records at the gateway, and /metrics + /healthz on both sides.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPU, clientUp, waitFor } from './harness.js';
import {
  GUARD_URL, addPeer, clientArgs, createGuardLab, httpGet, metric, requestLog, runClient, tlsCurl,
  type GuardLab, type Peer, type SimEvent,
} from './guard-harness.js';

interface ChatResult { ok: boolean; chunks: number; content: string; done?: boolean; doneReason?: string; evalCount?: number; promptEvalCount?: number; models: string[]; error?: string }
interface OpenAiResult { ok: boolean; chunks: number; content: string; finishReason: string | null; usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null; models: string[]; error?: string }

describe('guard: real clients through the tunnel', () => {
  let gl: GuardLab;
  let alice: Peer;
  let c1: string;
  const lastArrival = (): SimEvent => gl.sim.events().filter((e) => e.event === 'request').pop()!;

  beforeAll(async () => {
    gl = await createGuardLab('gc');
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    await gl.waitPeers(1);
    c1 = gl.lab.ns('c1');
    await clientUp(gl.lab, c1, 'wgcgc1', alice.config);
  });
  afterAll(async () => {
    await gl?.cleanup();
  });

  it('add-peer --out --json hands out a client certificate for the tunnel address, the CA, the guard URL and a .p12', () => {
    expect(alice.guardUrl).toBe(GUARD_URL);
    expect(alice.files).toEqual(expect.arrayContaining([alice.crt, alice.key, alice.p12, alice.ca]));
    expect(readFileSync(alice.crt, 'utf8')).toBe(alice.certificate);
    expect(readFileSync(alice.ca, 'utf8')).toBe(alice.caCertificate);
    expect(alice.p12Passphrase).toMatch(/^\S{16,}$/);
    const cert = new X509Certificate(alice.certificate);
    const ca = new X509Certificate(alice.caCertificate);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subject).toMatch(/CN=alice/);
    expect(cert.subjectAltName).toBe('IP Address:10.66.0.2');
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage ?? []).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
    expect(BigInt('0x' + cert.serialNumber) >= 2n ** 120n).toBe(true);
  });

  it('the ollama npm client streams a chat and lists the models', async () => {
    const before = gl.sim.count();
    const r = await runClient<ChatResult>(gl.lab, c1, 'ollama-chat.mjs', clientArgs({ ca: alice.ca, crt: alice.crt, key: alice.key }));
    expect(r, r.error).toMatchObject({ ok: true, done: true, doneReason: 'stop', evalCount: 20 });
    expect(r.chunks).toBe(21); // 20 tokens, then the final statistics
    expect(r.content.length).toBeGreaterThan(0);
    expect(r.models).toEqual(['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']);
    const arrivals = gl.sim.events().filter((e) => e.event === 'request').slice(before);
    expect(arrivals.map((e) => `${e.method} ${e.path}`)).toEqual(['POST /api/chat', 'GET /api/tags']);
  });

  it('the openai npm client streams a chat completion with usage and lists the models; its API key never reaches Ollama', async () => {
    const r = await runClient<OpenAiResult>(gl.lab, c1, 'openai-chat.mjs', clientArgs({ ca: alice.ca, crt: alice.crt, key: alice.key }));
    expect(r, r.error).toMatchObject({ ok: true, finishReason: 'stop' });
    expect(r.usage?.completion_tokens).toBe(20);
    expect(r.chunks).toBeGreaterThanOrEqual(21);
    expect(r.content.length).toBeGreaterThan(0);
    expect(r.models).toEqual(['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']);
    const chat = gl.sim.events().find((e) => e.event === 'request' && e.path === '/v1/chat/completions')!;
    expect(chat.body).toMatchObject({ model: 'llama3.2', stream: true, stream_options: { include_usage: true } });
    // What the client sent besides the request: its API key and its own x-stainless-* headers stay at the guard.
    expect(Object.keys(chat.headers ?? {}).filter((h) => h === 'authorization' || h.startsWith('x-stainless'))).toEqual([]);
  });

  it('curl with --cert/--key/--cacert streams NDJSON from /api/generate', async () => {
    const r = await tlsCurl(gl.lab, c1, { ca: alice.ca, crt: alice.crt, key: alice.key }, '/api/generate', {
      data: JSON.stringify({ model: 'llama3.2', prompt: 'hi there' }),
    });
    expect(r.status, r.stderr).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-ndjson');
    const lines = r.body.trim().split('\n').map((l) => JSON.parse(l) as { done: boolean; response: string; eval_count?: number });
    expect(lines).toHaveLength(21);
    expect(lines.at(-1)).toMatchObject({ done: true, eval_count: 20 });
    expect(lastArrival()).toMatchObject({ method: 'POST', path: '/api/generate', body: { model: 'llama3.2', prompt: 'hi there' } });
  });

  it('the .p12 opens with openssl and the printed passphrase, holds the same certificate, and works with curl', async () => {
    const env = { ...process.env, P: alice.p12Passphrase! };
    const { execa } = await import('execa');
    const certs = await execa('openssl', ['pkcs12', '-in', alice.p12, '-passin', 'env:P', '-nokeys'], { env, reject: false });
    expect(certs.exitCode, certs.stderr).toBe(0);
    const pems = certs.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    const norm = (p: string): string => p.replace(/\s+/g, '');
    expect(pems.map(norm)).toEqual(expect.arrayContaining([norm(alice.certificate), norm(alice.caCertificate)]));
    const key = await execa('openssl', ['pkcs12', '-in', alice.p12, '-passin', 'env:P', '-nocerts', '-nodes'], { env, reject: false });
    expect(key.exitCode).toBe(0);
    const { createPrivateKey, createPublicKey } = await import('node:crypto');
    const fromP12 = createPublicKey(createPrivateKey(key.stdout.slice(key.stdout.indexOf('-----BEGIN')))).export({ type: 'spki', format: 'der' });
    expect(Buffer.compare(fromP12, new X509Certificate(alice.certificate).publicKey.export({ type: 'spki', format: 'der' }))).toBe(0);
    const wrong = await execa('openssl', ['pkcs12', '-in', alice.p12, '-passin', 'pass:wrong-passphrase', '-nokeys'], { reject: false });
    expect(wrong.exitCode).not.toBe(0);

    const r = await tlsCurl(gl.lab, c1, { ca: alice.ca }, '/api/version', { extra: ['--cert-type', 'P12', '--cert', `${alice.p12}:${alice.p12Passphrase}`] });
    expect(r.status, r.stderr).toBe(200);
    expect(r.json()).toEqual({ version: '0.12.6' });
  });

  it('every request is recorded at the gateway with peer, source, model, prompt digest and tokens, never the prompt', async () => {
    const want = gl.sim.count();
    let rows = await requestLog(gl.gw);
    await waitFor(async () => (rows = await requestLog(gl.gw)).length >= want, 5000, 'the records to reach the gateway');
    expect(rows).toHaveLength(want);
    for (const r of rows) expect(r).toMatchObject({ guard: 'gpu1', peer: 'alice', source: '10.66.0.2', certSerial: alice.certificateSerial, refusal: null, promptText: null });
    const gen = rows.find((r) => r.path === '/api/generate')!;
    expect(gen).toMatchObject({
      method: 'POST', endpoint: 'generate', model: 'llama3.2:latest', status: 200, evalTokens: 20,
      // The prompt audit's canonical text: the [field, value] pairs the model reads (core/prompt-digest.ts).
      promptSha256: createHash('sha256').update('[["prompt","hi there"]]').digest('hex'), promptLength: Buffer.byteLength('[["prompt","hi there"]]'),
    });
    expect(gen.promptTokens).toBeGreaterThan(0);
    expect(rows.map((r) => r.endpoint)).toEqual(['chat', 'tags', 'v1.chat', 'v1.models', 'generate', 'version']);
    expect(new Set(rows.map((r) => r.guardSeq)).size).toBe(rows.length);
  });

  describe('metrics and health', () => {
    it('the guard counts requests by peer, model and status, and a connection without a certificate as a TLS authentication failure', async () => {
      const gpu = gl.lab.ns('gpu');
      const before = (await httpGet(gl.lab, gpu, 'http://127.0.0.1:9478/metrics')).body;
      const noCert = await tlsCurl(gl.lab, c1, { ca: alice.ca }, '/api/version');
      expect(noCert.status).toBe(401);
      expect(noCert.json()).toEqual({ error: 'client certificate required' });
      const m = await httpGet(gl.lab, gpu, 'http://127.0.0.1:9478/metrics');
      expect(m.status).toBe(200);
      expect(metric(m.body, 'wgo_guard_requests_total', { peer: 'alice', model: 'llama3.2:latest', status: '200' })).toBe(3);
      expect(metric(m.body, 'wgo_guard_requests_total', { peer: '', model: '', status: '401' })).toBe(1);
      expect(metric(m.body, 'wgo_guard_tokens_total', { peer: 'alice', model: 'llama3.2:latest', kind: 'eval' })).toBe(60);
      const fails = (t: string): number => metric(t, 'wgo_guard_tls_auth_failures_total', { reason: 'auth_no_certificate' }) ?? 0;
      expect(fails(before)).toBe(0);
      // Once per connection, at the handshake: not again for the request refused on it.
      expect(fails(m.body)).toBe(1);
      expect(metric(m.body, 'wgo_guard_peers')).toBe(1);
    });

    it('the guard /healthz is 200 and says it is connected with nothing spooled', async () => {
      const h = await httpGet(gl.lab, gl.lab.ns('gpu'), 'http://127.0.0.1:9478/healthz');
      expect(h.status).toBe(200);
      await waitFor(async () => (await gl.health()).spooled === 0, 5000, 'the spool to empty');
      expect(await gl.health()).toMatchObject({ ok: true, name: 'gpu1', peers: 1, gateway: 'connected', spooled: 0 });
    });

    it('the gateway counts the records by peer, model and status, and the WireGuard handshake age per peer', async () => {
      const gw = gl.lab.ns('gw');
      let text = '';
      await waitFor(async () => {
        text = (await httpGet(gl.lab, gw, 'http://127.0.0.1:9477/metrics')).body;
        return metric(text, 'wgo_requests_total', { peer: '', status: '401' }) === 1 && metric(text, 'wgo_peer_handshake_age_seconds', { peer: 'alice' }) !== undefined;
      }, 15_000, 'gateway metrics for the records and the handshake');
      expect(metric(text, 'wgo_requests_total', { peer: 'alice', model: 'llama3.2:latest', status: '200' })).toBe(3);
      expect(metric(text, 'wgo_requests_total', { peer: 'alice', model: '', status: '200' })).toBe(3);
      expect(metric(text, 'wgo_tokens_total', { peer: 'alice', model: 'llama3.2:latest', kind: 'eval' })).toBe(60);
      expect(metric(text, 'wgo_refusals_total', { reason: 'auth_no_certificate' })).toBe(1);
      const age = metric(text, 'wgo_peer_handshake_age_seconds', { peer: 'alice' })!;
      expect(age).toBeGreaterThanOrEqual(0);
      expect(age).toBeLessThan(120);
      expect(metric(text, 'wgo_peers', { status: 'active' })).toBe(1);
      expect(metric(text, 'wgo_guard_last_seen_seconds', { guard: 'gpu1' })).toBeLessThan(60);
      const h = await httpGet(gl.lab, gw, 'http://127.0.0.1:9477/healthz');
      expect(h.status).toBe(200);
      expect(JSON.parse(h.body)).toMatchObject({ ok: true, peers: 1 });
    });

    it('metrics are not reachable through the tunnel', async () => {
      const r = await gl.lab.exec(c1, 'curl', ['-s', '-m', '2', `http://${GPU}:9478/metrics`]);
      expect(r.code).not.toBe(0);
    });
  });
});
