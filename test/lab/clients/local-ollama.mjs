#!/usr/bin/env node
// Popular Ollama and OpenAI clients exactly as a person uses them against a
// local Ollama: default host, no TLS options, no certificate, no key. With the
// connector running, they reach the team's GPU through the tunnel.
//   node local-ollama.mjs --client ollama|openai|langchain|ai-sdk [--model M]
// Prints {ok, client, chunks, content, ...} or {ok:false, error, status}.
import { parseArgs } from 'node:util';
import { print, printError } from './common.mjs';

const { values: a } = parseArgs({ options: { client: { type: 'string' }, model: { type: 'string', default: 'llama3.2' } } });
const prompt = 'Why is the sky blue?';

async function viaOllama() {
  const { Ollama } = await import('ollama');
  const ollama = new Ollama(); // default host: http://127.0.0.1:11434
  let chunks = 0;
  let content = '';
  let last = null;
  for await (const part of await ollama.chat({ model: a.model, messages: [{ role: 'user', content: prompt }], stream: true })) {
    chunks++;
    content += part.message?.content ?? '';
    last = part;
  }
  const models = (await ollama.list()).models.map((m) => m.name);
  return { chunks, content, done: last?.done, evalCount: last?.eval_count, models };
}

async function viaOpenAi() {
  const { default: OpenAI } = await import('openai');
  // What every "OpenAI-compatible" setting asks for: a base URL and some API key.
  const openai = new OpenAI({ baseURL: 'http://127.0.0.1:11434/v1', apiKey: 'ollama' });
  let chunks = 0;
  let content = '';
  let finishReason = null;
  const stream = await openai.chat.completions.create({ model: a.model, messages: [{ role: 'user', content: prompt }], stream: true });
  for await (const c of stream) {
    chunks++;
    content += c.choices[0]?.delta?.content ?? '';
    finishReason = c.choices[0]?.finish_reason ?? finishReason;
  }
  const models = [];
  for await (const m of openai.models.list()) models.push(m.id);
  return { chunks, content, finishReason, models };
}

async function viaLangchain() {
  const { ChatOllama } = await import('@langchain/ollama');
  const chat = new ChatOllama({ model: a.model }); // default baseUrl: http://127.0.0.1:11434
  let chunks = 0;
  let content = '';
  for await (const c of await chat.stream(prompt)) {
    chunks++;
    content += typeof c.content === 'string' ? c.content : '';
  }
  return { chunks, content };
}

async function viaAiSdk() {
  const { streamText } = await import('ai');
  const { ollama } = await import('ollama-ai-provider-v2'); // default baseURL: http://127.0.0.1:11434/api
  const r = streamText({ model: ollama(a.model), prompt });
  let chunks = 0;
  let content = '';
  for await (const t of r.textStream) {
    chunks++;
    content += t;
  }
  const usage = await r.usage;
  return { chunks, content, finishReason: await r.finishReason, outputTokens: usage?.outputTokens ?? null };
}

const clients = { ollama: viaOllama, openai: viaOpenAi, langchain: viaLangchain, 'ai-sdk': viaAiSdk };
try {
  const run = clients[a.client];
  if (!run) throw new Error(`--client must be one of ${Object.keys(clients).join(', ')}`);
  print({ ok: true, client: a.client, ...(await run()) });
} catch (e) {
  printError(e);
}
