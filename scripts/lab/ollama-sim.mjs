#!/usr/bin/env node
// An Ollama API simulator for tests, the demo and benchmarks: the native /api/*
// endpoints and the OpenAI-compatible /v1/* ones, answering as Ollama does, with
// token generation paced by timers so a client that goes away really stops work.
// Every request is recorded (in memory, and optionally as JSON lines in a file)
// as soon as its body has arrived, before any answer.
//
//   node ollama-sim.mjs --listen 127.0.0.1:11434 [--token-rate 50] [--tokens 20] [--record FILE] [--answer TEXT]
//
// Record lines: {"event":"request",id,at,method,path,headers,body,bodyBytes,remoteAddress}
//               {"event":"end",id,at,status,aborted,tokens,durationMs}
import { appendFileSync, realpathSync } from 'node:fs';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  capabilities, contextIds, countTokens, embedVector, json, keepAliveMs, messagesText, modelDetails,
  normalizeModelName, now, numPredict, parseJsonBody, progressSteps, resolveOptions, send, sha256hex,
  showResponse, tagEntry, tokenAt,
} from './ollama-sim-data.mjs';
import { openaiRoutes } from './ollama-sim-openai.mjs';

const LOAD_NS = 12_000_000; // the load_duration reported: the simulated model is always warm

/**
 * @param {{ tokenRate?: number, tokens?: number, models?: string[], record?: string, version?: string, answer?: string }} [options]
 */
export function createSimulator(options = {}) {
  const cfg = resolveOptions(options);
  // --answer: the generated text is this one, four characters a token, repeated to the token count.
  const answerPieces = cfg.answer === undefined ? null : cfg.answer.match(/[\s\S]{1,4}/gu);
  const nthToken = (i) => (answerPieces ? answerPieces[i % answerPieces.length] : tokenAt(i));
  const modifiedAt = new Date().toISOString();
  const models = new Map(cfg.models.map((m) => [normalizeModelName(m), modifiedAt]));
  const loaded = new Map(); // model name → expiry (ms since epoch)
  const blobs = new Set();
  const requests = [];
  let nextId = 1;

  const writeRecord = (line) => {
    if (cfg.record) appendFileSync(cfg.record, JSON.stringify(line) + '\n');
  };

  const server = createServer((req, res) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('error', () => {}); // a client gone mid-body: nothing was recorded, nothing to answer
    req.on('end', () => {
      const buf = Buffer.concat(parts);
      let body = null;
      try { body = buf.length > 0 ? JSON.parse(buf.toString('utf8')) : null; } catch { body = null; }
      const rec = {
        id: nextId++, at: new Date().toISOString(), method: req.method, path: req.url, headers: req.headers,
        body, bodyBytes: buf.length, remoteAddress: req.socket.remoteAddress ?? null,
        aborted: false, ended: false, status: null, tokens: 0,
      };
      requests.push(rec);
      const { aborted, ended, status, tokens, ...arrival } = rec;
      writeRecord({ event: 'request', ...arrival });
      const ctx = { req, res, rec, buf, started: process.hrtime.bigint(), closed: false, cancel: () => {} };
      let finished = false;
      res.on('finish', () => { finished = true; });
      res.on('close', () => {
        ctx.closed = true;
        ctx.cancel();
        Object.assign(rec, { ended: true, aborted: !finished, status: res.headersSent ? res.statusCode : null });
        const durationMs = Number(process.hrtime.bigint() - ctx.started) / 1e6;
        writeRecord({ event: 'end', id: rec.id, at: new Date().toISOString(), status: rec.status,
          aborted: rec.aborted, tokens: rec.tokens, durationMs: Math.round(durationMs * 10) / 10 });
      });
      route(ctx);
    });
  });

  // ---- routing ----------------------------------------------------------------------------

  const routes = {
    'GET /': root, 'HEAD /': root,
    'GET /api/version': (ctx) => json(ctx, 200, { version: cfg.version }),
    'HEAD /api/version': (ctx) => json(ctx, 200, { version: cfg.version }),
    'GET /api/tags': tags, 'HEAD /api/tags': tags,
    'GET /api/ps': ps,
    'POST /api/generate': (ctx) => withBody(ctx, nativeGenerate('generate')),
    'POST /api/chat': (ctx) => withBody(ctx, nativeGenerate('chat')),
    'POST /api/embed': (ctx) => withBody(ctx, embed),
    'POST /api/embeddings': (ctx) => withBody(ctx, embeddingsLegacy),
    'POST /api/show': (ctx) => withBody(ctx, show),
    'POST /api/pull': (ctx) => withBody(ctx, pullPushCreate('pull')),
    'POST /api/push': (ctx) => withBody(ctx, pullPushCreate('push')),
    'POST /api/create': (ctx) => withBody(ctx, pullPushCreate('create')),
    'POST /api/copy': (ctx) => withBody(ctx, copy),
    'DELETE /api/delete': (ctx) => withBody(ctx, remove),
  };
  const { model: openaiModel, ...openaiHandlers } = openaiRoutes({ cfg, models, existing, resolveModel, markLoaded, generate });
  Object.assign(routes, openaiHandlers);

  function route(ctx) {
    const path = new URL(ctx.req.url ?? '/', 'http://sim').pathname;
    const handler = routes[`${ctx.req.method} ${path}`];
    if (handler) return handler(ctx);
    const blob = /^\/api\/blobs\/([^/]+)$/.exec(path);
    if (blob && (ctx.req.method === 'HEAD' || ctx.req.method === 'POST')) return blobHandler(ctx, decodeURIComponent(blob[1]));
    const model = /^\/v1\/models\/([^/]+)$/.exec(path);
    if (model && ctx.req.method === 'GET') return openaiModel(ctx, decodeURIComponent(model[1]));
    send(ctx, 404, 'text/plain', '404 page not found'); // gin's router, for any unmatched method or path
  }

  function withBody(ctx, fn) {
    const parsed = parseJsonBody(ctx.buf);
    if (!parsed.ok) return json(ctx, 400, { error: parsed.error });
    return fn(ctx, parsed.value);
  }

  /** Resolves a request's model; answers the error itself and returns null when it cannot. */
  function resolveModel(ctx, name, need, fail) {
    if (typeof name !== 'string' || name === '') return fail(400, 'model is required'), null;
    const full = normalizeModelName(name);
    if (!models.has(full)) return fail(404, `model "${name}" not found, try pulling it first`), null;
    if (need && !capabilities(full).includes(need)) {
      return fail(400, `"${name}" does not support ${ctx.kind}`), null;
    }
    return full;
  }

  // ---- native inference -------------------------------------------------------------------

  function nativeGenerate(kind) {
    return (ctx, body) => {
      ctx.kind = kind;
      const fail = (status, error) => json(ctx, status, { error });
      const full = resolveModel(ctx, body.model, 'completion', fail);
      if (!full) return;
      const stream = body.stream !== false;
      const promptText = kind === 'chat' ? messagesText(body.messages) : [body.system, body.prompt].filter(Boolean).join('\n');
      const head = { model: body.model, created_at: '' };
      const emptyInput = kind === 'chat' ? !Array.isArray(body.messages) || body.messages.length === 0 : !body.prompt;
      if (emptyInput) { // Ollama loads (or, with keep_alive 0, unloads) the model and answers at once
        const unload = keepAliveMs(body.keep_alive) === 0;
        unload ? loaded.delete(full) : markLoaded(full, body.keep_alive);
        const msg = kind === 'chat' ? { message: { role: 'assistant', content: '' } } : { response: '' };
        return json(ctx, 200, { ...head, created_at: now(), ...msg, done: true, done_reason: unload ? 'unload' : 'load' });
      }
      markLoaded(full, body.keep_alive);
      const limit = numPredict(body.options?.num_predict);
      const n = limit ?? cfg.tokens;
      const doneReason = limit !== undefined ? 'length' : 'stop';
      const piece = (text) => (kind === 'chat' ? { message: { role: 'assistant', content: text } } : { response: text });
      const final = (stats) => ({
        ...head, created_at: now(), ...piece(''), done: true, done_reason: doneReason,
        ...(kind === 'generate' ? { context: contextIds(promptText, stats.prompt_eval_count + stats.eval_count) } : {}),
        ...stats,
      });
      if (stream) ctx.res.setHeader('Content-Type', 'application/x-ndjson');
      let text = '';
      generate(ctx, n, countTokens(promptText), {
        token: (t) => {
          text += t;
          return stream ? ctx.res.write(JSON.stringify({ ...head, created_at: now(), ...piece(t), done: false }) + '\n') : true;
        },
        done: (stats) => {
          const last = final(stats);
          if (stream) return ctx.res.end(JSON.stringify(last) + '\n');
          json(ctx, 200, { ...last, ...piece(text) });
        },
      });
    };
  }

  /**
   * Produces n tokens on timers, tokenRate per second (0: one per event-loop turn), waiting for
   * 'drain' when the socket pushes back. A closed response cancels the pending timer.
   */
  function generate(ctx, n, promptCount, { token, done }) {
    const interval = cfg.tokenRate > 0 ? 1000 / cfg.tokenRate : 0;
    const t0 = performance.now();
    let i = 0;
    const finish = () => {
      const evalNs = Math.round((performance.now() - t0) * 1e6);
      done(metrics(ctx, { prompt_eval_count: promptCount, prompt_eval_duration: promptCount * 40_000,
        eval_count: n, eval_duration: evalNs }));
    };
    const step = () => {
      if (ctx.closed) return;
      if (i >= n) return finish();
      const writable = token(nthToken(i));
      ctx.rec.tokens = ++i;
      if (i >= n) return finish();
      if (!writable) {
        const onDrain = () => schedule();
        ctx.res.once('drain', onDrain);
        ctx.cancel = () => ctx.res.off('drain', onDrain);
      } else schedule();
    };
    const schedule = () => {
      if (ctx.closed) return;
      if (interval === 0) {
        const h = setImmediate(step);
        ctx.cancel = () => clearImmediate(h);
      } else {
        const h = setTimeout(step, Math.max(0, t0 + (i + 1) * interval - performance.now()));
        ctx.cancel = () => clearTimeout(h);
      }
    };
    schedule();
  }

  /** Ollama's duration statistics (nanoseconds); zero counts are left out, as Go's omitempty does. */
  function metrics(ctx, fields) {
    const all = { total_duration: Number(process.hrtime.bigint() - ctx.started) + LOAD_NS, load_duration: LOAD_NS, ...fields };
    return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== 0));
  }

  function embed(ctx, body) {
    const full = resolveModel(ctx, body.model, null, (s, error) => json(ctx, s, { error }));
    if (!full) return;
    const input = body.input;
    if (input === undefined || input === null || input === '' || (Array.isArray(input) && input.length === 0)) {
      return json(ctx, 200, { model: body.model, embeddings: [] });
    }
    const texts = Array.isArray(input) ? input.map(String) : [String(input)];
    markLoaded(full, body.keep_alive);
    json(ctx, 200, { model: body.model, embeddings: texts.map((t) => embedVector(t)),
      ...metrics(ctx, { prompt_eval_count: texts.reduce((a, t) => a + countTokens(t), 0) }) });
  }

  function embeddingsLegacy(ctx, body) {
    const full = resolveModel(ctx, body.model, null, (s, error) => json(ctx, s, { error }));
    if (!full) return;
    markLoaded(full, body.keep_alive);
    json(ctx, 200, { embedding: body.prompt ? embedVector(String(body.prompt)) : [] });
  }

  // ---- model management -------------------------------------------------------------------

  function root(ctx) { send(ctx, 200, 'text/plain; charset=utf-8', 'Ollama is running'); }

  function tags(ctx) {
    json(ctx, 200, { models: [...models].map(([name, at]) => tagEntry(name, at)) });
  }

  function ps(ctx) {
    const t = Date.now();
    for (const [name, exp] of loaded) if (exp <= t || !models.has(name)) loaded.delete(name);
    json(ctx, 200, { models: [...loaded].map(([name, exp]) => {
      const { size, digest } = tagEntry(name, models.get(name));
      return { name, model: name, size, digest, details: modelDetails(name), expires_at: new Date(exp).toISOString(),
        size_vram: size, context_length: 4096 };
    }) });
  }

  function existing(name) {
    return typeof name === 'string' && name !== '' && models.has(normalizeModelName(name)) ? normalizeModelName(name) : null;
  }

  function show(ctx, body) {
    const name = body.model || body.name;
    if (!name) return json(ctx, 400, { error: 'model is required' });
    const full = existing(name);
    if (!full) return json(ctx, 404, { error: `model '${name}' not found` });
    json(ctx, 200, showResponse(full, models.get(full), body.verbose === true));
  }

  function copy(ctx, body) {
    if (!body.source || !body.destination) return json(ctx, 400, { error: 'source and destination are required' });
    const src = existing(body.source);
    if (!src) return json(ctx, 404, { error: `model "${body.source}" not found` });
    models.set(normalizeModelName(String(body.destination)), now());
    send(ctx, 200, null, '');
  }

  function remove(ctx, body) {
    const name = body.model || body.name;
    if (!name) return json(ctx, 400, { error: 'model is required' });
    const full = existing(name);
    if (!full) return json(ctx, 404, { error: `model '${name}' not found` });
    models.delete(full);
    loaded.delete(full);
    send(ctx, 200, null, '');
  }

  function pullPushCreate(kind) {
    return (ctx, body) => {
      const name = body.model || body.name;
      if (!name) return json(ctx, 400, { error: 'model is required' });
      const full = normalizeModelName(String(name));
      if (kind === 'push' && !models.has(full)) return json(ctx, 404, { error: `model "${name}" not found` });
      const steps = progressSteps(kind, full);
      if (kind !== 'push') models.set(full, now());
      if (body.stream === false) return json(ctx, 200, { status: 'success' });
      ctx.res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
      ctx.res.end(steps.map((s) => JSON.stringify(s) + '\n').join(''));
    };
  }

  function blobHandler(ctx, digest) {
    if (ctx.req.method === 'HEAD') return send(ctx, blobs.has(digest) ? 200 : 404, null, '');
    if (!/^sha256[:-][0-9a-f]{64}$/.test(digest)) return json(ctx, 400, { error: 'invalid digest format' });
    const actual = `sha256:${sha256hex(ctx.buf)}`;
    if (actual !== digest.replace('-', ':')) {
      return json(ctx, 400, { error: `digest mismatch, expected "${digest}", got "${actual}"` });
    }
    blobs.add(digest);
    send(ctx, 201, null, '');
  }

  function markLoaded(name, keepAlive) {
    const ms = keepAliveMs(keepAlive);
    if (ms === 0) loaded.delete(name);
    else loaded.set(name, ms < 0 ? Date.UTC(2318, 0) : Date.now() + ms);
  }

  return { server, requests, clear: () => { requests.length = 0; } };
}

// ---- CLI ------------------------------------------------------------------------------------

const USAGE = 'usage: ollama-sim.mjs --listen HOST:PORT [--token-rate N] [--tokens N] [--models a,b,c] [--record FILE] [--ollama-version V] [--answer TEXT]';

function fail(message) {
  process.stderr.write(`ollama-sim: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseListen(s) {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s ?? '');
  if (!m || Number(m[3]) > 65535) fail(`--listen must be HOST:PORT (IPv6 as [ADDR]:PORT), got ${JSON.stringify(s ?? '')}`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

function main(argv) {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: {
      listen: { type: 'string' }, 'token-rate': { type: 'string' }, tokens: { type: 'string' },
      models: { type: 'string' }, record: { type: 'string' }, 'ollama-version': { type: 'string' }, answer: { type: 'string' },
      help: { type: 'boolean' },
    } }));
  } catch (e) {
    return fail(e.message);
  }
  if (values.help) return void process.stdout.write(USAGE + '\n');
  if (values.listen === undefined) fail('--listen is required');
  const { host, port } = parseListen(values.listen);
  const num = (flag, int) => {
    const s = values[flag];
    if (s === undefined) return undefined;
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n) || n < 0 || (int && !Number.isInteger(n))) {
      fail(`--${flag} must be ${int ? 'an integer' : 'a number'} ≥ 0, got ${JSON.stringify(s)}`);
    }
    return n;
  };
  const models = values.models?.split(',').map((m) => m.trim()).filter(Boolean);
  if (models && models.length === 0) fail('--models needs at least one model name');
  if (values.answer === '') fail('--answer must not be empty');
  const sim = createSimulator({ tokenRate: num('token-rate', false), tokens: num('tokens', true), models,
    record: values.record, version: values['ollama-version'], answer: values.answer });
  sim.server.on('error', (e) => {
    process.stderr.write(`ollama-sim: cannot listen on ${values.listen}: ${e.message}\n`);
    process.exit(1);
  });
  sim.server.listen(port, host, () => {
    const a = sim.server.address();
    const shown = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    process.stdout.write(JSON.stringify({ listening: shown }) + '\n');
  });
  const stop = () => {
    sim.server.close(() => process.exit(0));
    sim.server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

const invokedDirectly = (() => {
  try { return process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href; } catch { return false; }
})();
if (invokedDirectly) main(process.argv.slice(2));
