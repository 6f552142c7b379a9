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
import { openaiChatAndModels, print, printError } from './common.mjs';

const { values: a } = parseArgs({
  strict: true,
  options: { url: { type: 'string' }, model: { type: 'string', default: 'llama3.2' }, prompt: { type: 'string', default: 'Why is the sky blue?' } },
});
if (!a.url) throw new Error('--url is required');
const token = readFileSync(0, 'utf8').split('\n')[0].trim();
const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: token, maxRetries: 0, timeout: 20_000 });
try {
  print(await openaiChatAndModels(client, a));
} catch (e) {
  printError(e);
}
