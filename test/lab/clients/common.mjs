// Shared by the lab's client scripts: argv, an undici Agent that presents the
// peer's client certificate and trusts the wg-ollama CA (or, for a plain http
// URL such as the local connector's, no TLS at all), and JSON output.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Agent, fetch } from 'undici';

/** --url --ca [--cert --key] [--model], plus the script's own options. */
export function args(extra = {}) {
  const { values } = parseArgs({
    strict: true,
    options: {
      url: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
      model: { type: 'string', default: 'llama3.2' }, ...extra,
    },
  });
  if (!values.url) throw new Error('--url is required');
  // https needs the CA to trust; plain http (the local connector) needs no TLS material at all.
  if (values.url.startsWith('https:') && !values.ca) throw new Error('--ca is required for an https --url');
  return values;
}

export function tlsOptions(a) {
  if (!a.ca) return {};
  return { ca: readFileSync(a.ca), ...(a.cert ? { cert: readFileSync(a.cert), key: readFileSync(a.key) } : {}) };
}

export const tlsAgent = (a, opts = {}) => new Agent({ connect: { ...tlsOptions(a), timeout: 5000 }, ...opts });

/** A fetch that goes through `dispatcher`, for clients that take a custom fetch. */
export const fetchVia = (dispatcher) => (input, init = {}) => fetch(input, { ...init, dispatcher });

export const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

/** Prints an error as the result: message, a code if any, an HTTP status if the client gave one. */
export function printError(e) {
  print({
    ok: false,
    error: String(e?.error?.message ?? e?.error ?? e?.message ?? e),
    name: e?.name ?? null,
    code: e?.code ?? e?.cause?.code ?? null,
    status: e?.status ?? e?.status_code ?? null,
  });
  process.exitCode = 1;
}

/**
 * What the openai-* client scripts do with a configured `openai` client: a streamed chat
 * completion with usage, then the model list. Returns {ok, chunks, content, finishReason, usage, models}.
 */
export async function openaiChatAndModels(client, a) {
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
  return { ok: true, chunks, content, finishReason, usage, models };
}
