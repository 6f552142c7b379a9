import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { createSimulator, type Simulator, type SimulatorOptions } from '../../../scripts/lab/ollama-sim.mjs';
import { waitFor } from '../../support/wait.js';

const SIM_PATH = new URL('../../../scripts/lab/ollama-sim.mjs', import.meta.url).pathname;
const started: Simulator[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const sim of started.splice(0)) {
    sim.server.closeAllConnections();
    await new Promise((resolve) => sim.server.close(resolve));
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(options: SimulatorOptions = {}): Promise<{ sim: Simulator; base: string }> {
  const sim = createSimulator({ tokenRate: 0, tokens: 5, ...options });
  started.push(sim);
  await new Promise<void>((resolve) => sim.server.listen(0, '127.0.0.1', resolve));
  return { sim, base: `http://127.0.0.1:${(sim.server.address() as AddressInfo).port}` };
}

function post(base: string, path: string, body: unknown, method = 'POST'): Promise<Response> {
  return fetch(base + path, { method, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

function ndjson(text: string): Record<string, any>[] {
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function tempFile(name: string): string {
  const d = mkdtempSync(join(tmpdir(), 'ollama-sim-'));
  dirs.push(d);
  return join(d, name);
}

describe('native API', () => {
  test('a streamed generate sends one NDJSON line per token, then the statistics', async () => {
    const { base } = await start({ tokens: 4 });
    const res = await post(base, '/api/generate', { model: 'llama3.2', prompt: 'Why is the sky blue?' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = ndjson(await res.text());
    expect(lines).toHaveLength(5);
    expect(lines.slice(0, 4).every((l) => l.done === false && l.model === 'llama3.2' && typeof l.created_at === 'string')).toBe(true);
    expect(lines.slice(0, 4).map((l) => l.response).join('')).toBe('The sky is blue');
    const last = lines[4]!;
    expect(last).toMatchObject({ done: true, done_reason: 'stop', response: '', eval_count: 4, prompt_eval_count: 5 });
    expect(last.context).toHaveLength(9);
    for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration']) expect(last[k]).toBeGreaterThan(0);
  });

  test('tokens are paced at tokenRate: 10 tokens at 100/s take at least 80 ms', async () => {
    const { base } = await start({ tokenRate: 100, tokens: 10 });
    const t0 = performance.now();
    const lines = ndjson(await (await post(base, '/api/generate', { model: 'llama3.2', prompt: 'x' })).text());
    expect(performance.now() - t0).toBeGreaterThanOrEqual(80);
    expect(lines.at(-1)!.eval_count).toBe(10);
    expect(lines.at(-1)!.eval_duration).toBeGreaterThanOrEqual(80e6);
  });

  test('stream:false answers one JSON object; num_predict sets the length and done_reason', async () => {
    const { base } = await start({ tokens: 6 });
    const res = await post(base, '/api/chat', {
      model: 'qwen2.5:0.5b', stream: false, options: { num_predict: 3 }, messages: [{ role: 'user', content: 'hello' }],
    });
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = JSON.parse(await res.text());
    expect(body).toMatchObject({ model: 'qwen2.5:0.5b', message: { role: 'assistant', content: 'The sky is' },
      done: true, done_reason: 'length', eval_count: 3, prompt_eval_count: 2 });
    expect(body).not.toHaveProperty('context');
  });

  test('errors are worded as Ollama words them', async () => {
    const { base } = await start();
    const cases: [string, unknown, number, string][] = [
      ['/api/generate', { model: 'nope', prompt: 'x' }, 404, 'model "nope" not found, try pulling it first'],
      ['/api/chat', { messages: [] }, 400, 'model is required'],
      ['/api/generate', '{"model":', 400, 'unexpected EOF'],
      ['/api/generate', 'hello', 400, "invalid character 'h' looking for beginning of value"],
      ['/api/generate', '', 400, 'missing request body'],
      ['/api/generate', { model: 'nomic-embed-text', prompt: 'x' }, 400, '"nomic-embed-text" does not support generate'],
      ['/api/show', { model: 'nope' }, 404, "model 'nope' not found"],
    ];
    for (const [path, body, status, error] of cases) {
      const res = await post(base, path, body);
      expect([path, res.status, await res.json()]).toEqual([path, status, { error }]);
    }
    for (const [method, path] of [['GET', '/api/nothing'], ['GET', '/api/generate'], ['PUT', '/']]) {
      const res = await fetch(base + path, { method });
      expect([res.status, res.headers.get('content-type'), await res.text()]).toEqual([404, 'text/plain', '404 page not found']);
    }
  });

  test('root, version, embeddings, pull, copy, delete and blobs', async () => {
    const { base } = await start({ version: '9.9.9' });
    expect(await (await fetch(base + '/')).text()).toBe('Ollama is running');
    expect((await fetch(base + '/', { method: 'HEAD' })).status).toBe(200);
    expect(await (await fetch(base + '/api/version')).json()).toEqual({ version: '9.9.9' });

    const a = (await (await post(base, '/api/embed', { model: 'nomic-embed-text', input: ['a', 'b', 'a'] })).json()) as { embeddings: number[][] };
    expect(a.embeddings).toHaveLength(3);
    expect(a.embeddings[0]).toHaveLength(8);
    expect(a.embeddings[0]).toEqual(a.embeddings[2]);
    expect(a.embeddings[0]).not.toEqual(a.embeddings[1]);
    expect(Math.hypot(...a.embeddings[0]!)).toBeCloseTo(1, 4);
    const legacy = await (await post(base, '/api/embeddings', { model: 'nomic-embed-text', prompt: 'a' })).json();
    expect(legacy).toEqual({ embedding: a.embeddings[0] });

    const pull = await post(base, '/api/pull', { model: 'gemma3:1b' });
    expect(pull.headers.get('content-type')).toBe('application/x-ndjson');
    const statuses = ndjson(await pull.text()).map((l) => l.status);
    expect(statuses[0]).toBe('pulling manifest');
    expect(statuses.at(-1)).toBe('success');
    expect(await (await post(base, '/api/pull', { model: 'phi3', stream: false })).json()).toEqual({ status: 'success' });
    expect((await post(base, '/api/copy', { source: 'gemma3:1b', destination: 'mine' })).status).toBe(200);
    const names = async () => ((await (await fetch(base + '/api/tags')).json()) as { models: { name: string }[] }).models.map((m) => m.name);
    expect(await names()).toEqual(expect.arrayContaining(['gemma3:1b', 'phi3:latest', 'mine:latest']));
    const del = await post(base, '/api/delete', { model: 'mine' }, 'DELETE');
    expect([del.status, await del.text()]).toEqual([200, '']);
    expect(await names()).not.toContain('mine:latest');
    expect((await post(base, '/api/delete', { model: 'mine' }, 'DELETE')).status).toBe(404);

    const data = 'blob contents';
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    expect((await fetch(`${base}/api/blobs/${digest}`, { method: 'HEAD' })).status).toBe(404);
    expect((await post(base, `/api/blobs/${digest}`, 'other contents')).status).toBe(400);
    expect((await post(base, `/api/blobs/${digest}`, data)).status).toBe(201);
    expect((await fetch(`${base}/api/blobs/${digest}`, { method: 'HEAD' })).status).toBe(200);
  });

  test('the ollama client streams chat and generate, lists, shows, embeds and sees running models', async () => {
    const { base } = await start({ tokens: 3 });
    const ollama = new Ollama({ host: base });
    const chat: string[] = [];
    let chatDone: Record<string, any> | undefined;
    for await (const part of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true })) {
      if (part.done) chatDone = part;
      else chat.push(part.message.content);
    }
    expect(chat.join('')).toBe('The sky is');
    expect(chatDone).toMatchObject({ done_reason: 'stop', eval_count: 3, message: { role: 'assistant', content: '' } });

    let generated = '';
    let final: Record<string, any> | undefined;
    for await (const part of await ollama.generate({ model: 'qwen2.5:0.5b', prompt: 'abcdefghi', stream: true })) {
      generated += part.response;
      if (part.done) final = part;
    }
    expect(generated).toBe('The sky is');
    expect(final).toMatchObject({ prompt_eval_count: 3, eval_count: 3 });

    const list = await ollama.list();
    expect(list.models.map((m) => m.name)).toEqual(['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']);
    expect(list.models[0]!.details).toMatchObject({ format: 'gguf', family: 'llama', quantization_level: 'Q4_K_M' });
    expect((await ollama.show({ model: 'llama3.2' })).capabilities).toContain('completion');
    const emb = await ollama.embed({ model: 'nomic-embed-text', input: 'hello' });
    expect(emb.embeddings).toHaveLength(1);
    expect(emb.embeddings[0]).toHaveLength(8);
    expect((await ollama.ps()).models.map((m) => m.name).sort()).toEqual(['llama3.2:latest', 'nomic-embed-text:latest', 'qwen2.5:0.5b']);
    await expect(ollama.chat({ model: 'missing', messages: [{ role: 'user', content: 'x' }] }))
      .rejects.toMatchObject({ status_code: 404, error: 'model "missing" not found, try pulling it first' });
  });
});

describe('OpenAI compatibility', () => {
  test('the openai client streams a chat with usage, and lists models', async () => {
    const { base } = await start({ tokens: 4 });
    const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'x' });
    const stream = await openai.chat.completions.create({
      model: 'llama3.2', messages: [{ role: 'user', content: 'abcdefgh' }], stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    const finish: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      expect(chunk.id).toMatch(/^chatcmpl-\d+$/);
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta.content ?? '';
        finish.push(c.finish_reason);
      }
    }
    expect(text).toBe('The sky is blue');
    expect(finish).toEqual([null, null, null, null, 'stop']);
    expect(usage).toEqual({ prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 });

    const models = [];
    for await (const m of openai.models.list()) models.push(m);
    expect(models).toContainEqual(expect.objectContaining({ id: 'qwen2.5:0.5b', object: 'model', owned_by: 'library' }));
    expect(await openai.models.retrieve('llama3.2')).toMatchObject({ id: 'llama3.2', object: 'model' });

    const done = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect(done.choices[0]).toMatchObject({ message: { role: 'assistant', content: 'The sky' }, finish_reason: 'length' });
    expect(done.usage).toEqual({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });

    const emb = await openai.embeddings.create({ model: 'nomic-embed-text', input: ['a', 'b'] });
    expect(emb.data.map((d) => d.index)).toEqual([0, 1]);
    expect(emb.data[0]!.embedding).toHaveLength(8);

    const err = await openai.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err.status).toBe(404);
    expect(err.error).toEqual({ message: 'model "nope" not found, try pulling it first', type: 'not_found_error', param: null, code: null });
  });

  test('SSE framing: data lines, no usage chunk unless asked, [DONE] last; completions too', async () => {
    const { base } = await start({ tokens: 2 });
    const res = await post(base, '/v1/chat/completions', { model: 'llama3.2', stream: true, messages: [{ role: 'user', content: 'x' }] });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const events = (await res.text()).split('\n\n').filter(Boolean);
    expect(events.every((e) => e.startsWith('data: '))).toBe(true);
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    expect(chunks).toHaveLength(3);
    expect(chunks.some((c) => 'usage' in c)).toBe(false);
    expect(chunks[0]).toMatchObject({ system_fingerprint: 'fp_ollama', choices: [{ index: 0, delta: { role: 'assistant', content: 'The' } }] });

    const comp = await post(base, '/v1/completions', { model: 'llama3.2', prompt: 'x', stream: true, stream_options: { include_usage: true } });
    const cchunks = (await comp.text()).split('\n\n').filter(Boolean).slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    expect(cchunks.map((c) => c.object)).toEqual(Array(4).fill('text_completion'));
    expect(cchunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } });
    const empty = await post(base, '/v1/chat/completions', { model: 'llama3.2', messages: [] });
    expect([empty.status, ((await empty.json()) as { error: { message: string } }).error.message]).toEqual([400, "[] is too short - 'messages'"]);
  });
});

describe('recording and aborts', () => {
  test('a client abort mid-stream stops generation and marks the request aborted', async () => {
    const record = tempFile('requests.jsonl');
    const { sim, base } = await start({ tokenRate: 200, tokens: 1000, record });
    const ollama = new Ollama({ host: base });
    const stream = await ollama.generate({ model: 'llama3.2', prompt: 'long', stream: true });
    let seen = 0;
    let afterAbort = 0;
    let aborted = false;
    await expect((async () => {
      for await (const _part of stream) {
        if (aborted) afterAbort++;
        if (++seen === 3) {
          // The request line is on disk while the request is still running.
          const lines = readFileSync(record, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
          expect(lines).toEqual([expect.objectContaining({ event: 'request', method: 'POST', path: '/api/generate' })]);
          stream.abort();
          aborted = true;
        }
      }
    })()).rejects.toThrow(/abort/i);
    expect(afterAbort).toBe(0);
    const rec = sim.requests[0]!;
    await waitFor(() => rec.ended);
    expect(rec).toMatchObject({ aborted: true, ended: true, method: 'POST', path: '/api/generate' });
    expect(rec.body).toMatchObject({ model: 'llama3.2', prompt: 'long', stream: true });
    const tokensAtAbort = rec.tokens;
    await new Promise((r) => setTimeout(r, 100));
    expect(rec.tokens).toBe(tokensAtAbort);
    expect(tokensAtAbort).toBeLessThan(50);
    const lines = readFileSync(record, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ event: 'end', id: rec.id, aborted: true, tokens: tokensAtAbort });
  });

  test('every request is recorded with headers, body and size; a completed one is not aborted; clear() empties', async () => {
    const record = tempFile('r.jsonl');
    const { sim, base } = await start({ record });
    const body = JSON.stringify({ model: 'llama3.2', prompt: 'hi', stream: false });
    await (await fetch(`${base}/api/generate?x=1`, { method: 'POST', body, headers: { 'x-test': 'yes' } })).json();
    await (await fetch(`${base}/nowhere`)).text();
    await waitFor(() => sim.requests.every((r) => r.ended));
    expect(sim.requests.map((r) => [r.method, r.path, r.status, r.aborted])).toEqual([
      ['POST', '/api/generate?x=1', 200, false], ['GET', '/nowhere', 404, false],
    ]);
    expect(sim.requests[0]).toMatchObject({ bodyBytes: body.length, remoteAddress: '127.0.0.1', tokens: 5 });
    expect(sim.requests[0]!.headers['x-test']).toBe('yes');
    const lines = readFileSync(record, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.event, l.id])).toEqual([['request', 1], ['end', 1], ['request', 2], ['end', 2]]);
    expect(lines[0]).toMatchObject({ body: { model: 'llama3.2', prompt: 'hi', stream: false }, bodyBytes: body.length });
    expect(lines[0]).not.toHaveProperty('aborted');
    sim.clear();
    expect(sim.requests).toEqual([]);
  });

  test('a non-streaming request abandoned while it waits is marked aborted', async () => {
    const { sim, base } = await start({ tokenRate: 100, tokens: 100 });
    const ac = new AbortController();
    const pending = fetch(`${base}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', prompt: 'x', stream: false }), signal: ac.signal });
    await waitFor(() => sim.requests.length === 1 && sim.requests[0]!.tokens >= 2);
    ac.abort();
    await expect(pending).rejects.toThrow();
    await waitFor(() => sim.requests[0]!.ended);
    expect(sim.requests[0]).toMatchObject({ aborted: true, status: null }); // nothing had been sent
    expect(sim.requests[0]!.tokens).toBeLessThan(100);
  });

  test('options are validated', () => {
    expect(() => createSimulator({ tokenRate: -1 })).toThrow(/tokenRate/);
    expect(() => createSimulator({ tokens: 1.5 })).toThrow(/tokens/);
    expect(() => createSimulator({ models: [''] })).toThrow(/models/);
    expect(() => createSimulator({ answer: '' })).toThrow(/answer/);
  });

  test('answer: the generated text is that string, four characters a token, repeated to the token count (chat and /v1 alike)', async () => {
    const answer = '<b>hi</b><script>x()</script>';
    const { base } = await start({ tokens: 10, answer });
    const lines = ndjson(await (await post(base, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'q' }] })).text());
    expect(lines.slice(0, -1).map((l) => l.message.content)).toEqual(['<b>h', 'i</b', '><sc', 'ript', '>x()', '</sc', 'ript', '>', '<b>h', 'i</b']);
    expect(lines.at(-1)).toMatchObject({ done: true, eval_count: 10 });
    const v1 = await (await post(base, '/v1/chat/completions', { model: 'llama3.2', messages: [{ role: 'user', content: 'q' }] })).json();
    expect(v1.choices[0].message.content).toBe(answer + '<b>hi</b');
  });
});

describe('CLI', () => {
  function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [SIM_PATH, ...args]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  test.each([
    [['--listen', 'bad'], /--listen must be HOST:PORT/],
    [[], /--listen is required/],
    [['--listen', '127.0.0.1:0', '--token-rate', 'fast'], /--token-rate must be a number/],
    [['--listen', '127.0.0.1:0', '--tokens', '2.5'], /--tokens must be an integer/],
    [['--listen', '127.0.0.1:0', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['--listen', '127.0.0.1:0', '--answer', ''], /--answer must not be empty/],
  ])('%j exits 2 with a clear message', async (args, message) => {
    const { code, stderr } = await run(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr).toContain('usage:');
  });

  test('listens, says where, answers, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [SIM_PATH, '--listen', '127.0.0.1:0', '--tokens', '2', '--ollama-version', '1.2.3']);
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const line = await new Promise<string>((resolve) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
    });
    const { listening } = JSON.parse(line);
    expect(listening).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await (await fetch(`http://${listening}/api/version`)).json()).toEqual({ version: '1.2.3' });
    const lines = ndjson(await (await post(`http://${listening}`, '/api/generate', { model: 'llama3.2', prompt: 'x' })).text());
    expect(lines.at(-1)).toMatchObject({ done: true, eval_count: 2 });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
