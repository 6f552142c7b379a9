#!/usr/bin/env node
// The `openai` npm client (v6, custom fetch) through the tunnel with the peer's
// certificate: a streamed chat completion with usage, then the model list.
//   node openai-chat.mjs --url URL --ca CA --cert CRT --key KEY [--model M]
// Prints {ok, chunks, content, finishReason, usage, models} or {ok:false, error, status}.
import OpenAI from 'openai';
import { args, fetchVia, openaiChatAndModels, print, printError, tlsAgent } from './common.mjs';

const a = args({ prompt: { type: 'string', default: 'Why is the sky blue?' } });
const agent = tlsAgent(a);
const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'unused', fetch: fetchVia(agent), maxRetries: 0, timeout: 20_000 });
try {
  print(await openaiChatAndModels(client, a));
} catch (e) {
  printError(e);
} finally {
  await agent.close();
}
