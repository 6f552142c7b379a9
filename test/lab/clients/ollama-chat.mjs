#!/usr/bin/env node
// The `ollama` npm client through the tunnel with the peer's certificate:
// a streamed chat, then the model list.
//   node ollama-chat.mjs --url URL --ca CA --cert CRT --key KEY [--model M] [--prompt TEXT]
// Prints {ok, chunks, content, done, doneReason, promptEvalCount, evalCount, models} or {ok:false, error, status}.
import { Ollama } from 'ollama';
import { args, fetchVia, print, printError, tlsAgent } from './common.mjs';

const a = args({ prompt: { type: 'string', default: 'Why is the sky blue?' } });
const agent = tlsAgent(a);
const ollama = new Ollama({ host: a.url, fetch: fetchVia(agent) });
try {
  const stream = await ollama.chat({ model: a.model, messages: [{ role: 'user', content: a.prompt }], stream: true });
  let content = '';
  let chunks = 0;
  let last = null;
  for await (const part of stream) {
    chunks++;
    content += part.message?.content ?? '';
    last = part;
  }
  const models = (await ollama.list()).models.map((m) => m.name);
  print({ ok: true, chunks, content, done: last?.done, doneReason: last?.done_reason, promptEvalCount: last?.prompt_eval_count, evalCount: last?.eval_count, models });
} catch (e) {
  printError(e);
} finally {
  await agent.close();
}
