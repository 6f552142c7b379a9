#!/usr/bin/env node
// The `openai` npm client as a server-side tool would use it with a peer-bound
// token: `apiKey` is the token, no client certificate, no custom fetch — the
// wg-ollama CA comes from NODE_EXTRA_CA_CERTS, as it would for Open WebUI or n8n.
//   NODE_EXTRA_CA_CERTS=ca.crt node openai-token.mjs --url URL [--model M] < token
// The token is the first line of standard input (never argv). A streamed chat
// completion with usage, then the model list.
// Prints {ok, chunks, content, finishReason, usage, models} or {ok:false, error, status}.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { print, printError } from './common.mjs';

const { values: a } = parseArgs({
  strict: true,
  options: { url: { type: 'string' }, model: { type: 'string', default: 'llama3.2' }, prompt: { type: 'string', default: 'Why is the sky blue?' } },
});
if (!a.url) throw new Error('--url is required');
const token = readFileSync(0, 'utf8').split('\n')[0].trim();
const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: token, maxRetries: 0, timeout: 20_000 });
try {
  const stream = await client.chat.completions.create({
    model: a.model, messages: [{ role: 'user', content: a.prompt }], stream: true, stream_options: { include_usage: true },
  });
  let content = '';
  let chunks = 0;
  let finishReason = null;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    content += chunk.choices[0]?.delta?.content ?? '';
    finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
    if (chunk.usage) usage = chunk.usage;
  }
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  print({ ok: true, chunks, content, finishReason, usage, models });
} catch (e) {
  printError(e);
}
