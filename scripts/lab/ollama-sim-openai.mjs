// The OpenAI-compatible endpoints (/v1/*) of the Ollama simulator, shaped as
// Ollama's middleware/openai.go shapes them: ids "chatcmpl-N"/"cmpl-N",
// system_fingerprint "fp_ollama", SSE chunks, a usage chunk with no choices when
// stream_options.include_usage is set, and {"error":{message,type,param,code}}.
import {
  OPENAI_JSON_TYPE, countTokens, embedVector, json, messagesText, numPredict, parseJsonBody,
} from './ollama-sim-data.mjs';

export function openaiError(ctx, status, message) {
  const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error';
  json(ctx, status, { error: { message, type, param: null, code: null } }, OPENAI_JSON_TYPE);
}

/**
 * @param core the simulator's shared state and machinery:
 *   { models: Map<name, modifiedAt>, existing(name), resolveModel(ctx, name, need, fail), markLoaded(name), generate(ctx, n, promptCount, sink) }
 * @returns handlers keyed "METHOD /path", plus model(ctx, name) for GET /v1/models/:model
 */
export function openaiRoutes(core) {
  const withBody = (fn) => (ctx) => {
    const parsed = parseJsonBody(ctx.buf);
    if (!parsed.ok) return openaiError(ctx, 400, parsed.error === 'missing request body' ? 'EOF' : parsed.error);
    return fn(ctx, parsed.value);
  };

  const completions = (kind) => (ctx, body) => {
    ctx.kind = kind === 'chat' ? 'chat' : 'generate';
    if (kind === 'chat' && (!Array.isArray(body.messages) || body.messages.length === 0)) {
      return openaiError(ctx, 400, "[] is too short - 'messages'");
    }
    if (kind === 'completion' && body.prompt !== undefined && typeof body.prompt !== 'string') {
      return openaiError(ctx, 400, 'json: cannot unmarshal array into Go struct field CompletionRequest.prompt of type string');
    }
    const full = core.resolveModel(ctx, body.model, 'completion', (s, m) => openaiError(ctx, s, m));
    if (!full) return;
    core.markLoaded(full);
    const stream = body.stream === true; // OpenAI's default is not to stream
    const limit = numPredict(body.max_tokens);
    const n = limit ?? core.cfg.tokens;
    const finishReason = limit !== undefined ? 'length' : 'stop';
    const promptCount = countTokens(kind === 'chat' ? messagesText(body.messages) : body.prompt);
    const usage = { prompt_tokens: promptCount, completion_tokens: n, total_tokens: promptCount + n };
    const created = Math.floor(Date.now() / 1000);
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${Math.floor(Math.random() * 999)}`;
    const includeUsage = body.stream_options?.include_usage === true;
    const choice = (text, reason) => (kind === 'chat'
      ? { index: 0, delta: { role: 'assistant', content: text }, finish_reason: reason }
      : { text, index: 0, finish_reason: reason });
    // Ollama's completions endpoint puts a zero usage on every chunk when usage is asked for.
    const zero = includeUsage && kind === 'completion' ? { usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } } : {};
    const chunk = (choices, extra = zero) => ({
      id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created, model: body.model,
      system_fingerprint: 'fp_ollama', choices, ...extra,
    });
    const sse = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
    if (stream) ctx.res.setHeader('Content-Type', 'text/event-stream');
    let text = '';
    core.generate(ctx, n, promptCount, {
      token: (t) => {
        text += t;
        return stream ? ctx.res.write(sse(chunk([choice(t, null)]))) : true;
      },
      done: () => {
        if (stream) {
          let out = sse(chunk([choice('', finishReason)]));
          if (includeUsage) out += sse(chunk([], { usage }));
          return ctx.res.end(out + 'data: [DONE]\n\n');
        }
        const choices = kind === 'chat'
          ? [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finishReason }]
          : [{ text, index: 0, finish_reason: finishReason }];
        json(ctx, 200, { id, object: kind === 'chat' ? 'chat.completion' : 'text_completion', created,
          model: body.model, system_fingerprint: 'fp_ollama', choices, usage }, OPENAI_JSON_TYPE);
      },
    });
  };

  const embeddings = (ctx, body) => {
    const input = body.input === '' ? [''] : body.input;
    if (input === undefined || input === null || (Array.isArray(input) && input.length === 0)) {
      return openaiError(ctx, 400, 'invalid input');
    }
    const format = typeof body.encoding_format === 'string' ? body.encoding_format.toLowerCase() : 'float';
    if (format !== 'float' && format !== 'base64') {
      return openaiError(ctx, 400, `Invalid value for 'encoding_format' = ${body.encoding_format}. Supported values: ['float', 'base64'].`);
    }
    const full = core.resolveModel(ctx, body.model, null, (s, m) => openaiError(ctx, s, m));
    if (!full) return;
    core.markLoaded(full);
    const texts = (Array.isArray(input) ? input : [input]).map(String);
    const data = texts.map((t, index) => {
      const v = embedVector(t);
      const embedding = format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v;
      return { object: 'embedding', embedding, index };
    });
    const tokens = texts.reduce((a, t) => a + countTokens(t), 0);
    json(ctx, 200, { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } }, OPENAI_JSON_TYPE);
  };

  /** owned_by is the name's namespace: "library" for library models. */
  const entry = (name, at) => {
    const parts = name.split('/');
    return { id: name, object: 'model', created: Math.floor(Date.parse(at) / 1000),
      owned_by: parts.length > 1 ? parts[parts.length - 2] : 'library' };
  };

  return {
    'POST /v1/chat/completions': withBody(completions('chat')),
    'POST /v1/completions': withBody(completions('completion')),
    'POST /v1/embeddings': withBody(embeddings),
    'GET /v1/models': (ctx) => json(ctx, 200, { object: 'list', data: [...core.models].map(([n, at]) => entry(n, at)) }, OPENAI_JSON_TYPE),
    model(ctx, name) {
      const full = core.existing(name);
      if (!full) return openaiError(ctx, 404, `model '${name}' not found`);
      json(ctx, 200, { ...entry(full, core.models.get(full)), id: name }, OPENAI_JSON_TYPE);
    },
  };
}
