#!/usr/bin/env node
// The `openai` npm client (v6, custom fetch) through the tunnel with the peer's
// certificate: a streamed chat completion with usage, then the model list.
//   node openai-chat.mjs --url URL --ca CA --cert CRT --key KEY [--model M]
// Prints {ok, chunks, content, finishReason, usage, models} or {ok:false, error, status}.
import OpenAI from 'openai';
import { args, fetchVia, print, printError, tlsAgent } from './common.mjs';

const a = args({ prompt: { type: 'string', default: 'Why is the sky blue?' } });
const agent = tlsAgent(a);
const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'unused', fetch: fetchVia(agent), maxRetries: 0, timeout: 20_000 });
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
} finally {
  await agent.close();
}
