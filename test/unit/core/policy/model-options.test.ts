/**
 * Ollama's model options through decideBody: the allowlist (sampling options
 * by default, runner options that reload the model or grab the GPU only when
 * a policy lists them), their types, the admin's upper bounds, and the
 * maxTokensPerRequest clamp on num_predict / max_tokens.
 */
import { describe, expect, test } from 'vitest';
import { matchEndpoint } from '../../../../src/core/ollama-api.js';
import { DEFAULT_POLICY, decideBody, mergePolicy, policyOverrideSchema, policySchema, type Policy } from '../../../../src/core/policy.js';

const policy = (o: Partial<Policy> = {}): Policy => mergePolicy(DEFAULT_POLICY, o);

function decide(path: string, body: unknown, o: Partial<Policy> = {}) {
  const m = matchEndpoint(path, 'POST');
  if (m.kind !== 'ok') throw new Error(`POST ${path} does not match`);
  return decideBody({ ...m, body: Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body)), policy: policy(o) });
}
/** What Ollama would receive, parsed; throws when the request was refused. */
function sent(path: string, body: unknown, o: Partial<Policy> = {}): Record<string, any> {
  const r = decide(path, body, o);
  if (!r.ok) throw new Error(`refused: ${JSON.stringify(r.refusal)}`);
  return JSON.parse(r.forward.toString()) as Record<string, any>;
}
const chat = (options?: unknown) => ({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], ...(options === undefined ? {} : { options }) });

describe('the options a peer may set', () => {
  test.each<[string, unknown]>([
    ['num_gpu', 999],
    ['num_batch', 8192],
    ['num_thread', 64],
    ['main_gpu', 1],
    ['use_mmap', false],
    ['use_mlock', true],
    ['numa', true],
    ['low_vram', true],
    ['draft_num_predict', 16],
    ['num_gqa', 8],
  ])('a runner option (%s) is refused by default, naming the option and the policy field', (name, value) => {
    const r = decide('/api/chat', chat({ temperature: 0.2, [name]: value }));
    expect(r).toEqual({
      ok: false,
      refusal: {
        status: 403,
        reason: 'option_denied',
        error: `option "${name}" is not allowed for this peer (an admin can allow it in the policy's "options" list)`,
      },
    });
  });

  test('runner options reload the model for embeddings too', () => {
    expect(decide('/api/embed', { model: 'x', input: 'hi', options: { num_gpu: 999 } })).toMatchObject({ ok: false, refusal: { reason: 'option_denied' } });
    expect(decide('/api/embeddings', { model: 'x', prompt: 'hi', options: { use_mlock: true } })).toMatchObject({ ok: false, refusal: { reason: 'option_denied' } });
  });

  test('the sampling options, their retired names and num_ctx pass by default, unchanged', () => {
    const options = {
      temperature: 0.7, top_k: 40, top_p: 0.9, min_p: 0.05, typical_p: 1, repeat_last_n: 64, repeat_penalty: 1.1,
      presence_penalty: 0.5, frequency_penalty: 0.5, seed: 42, stop: ['\n\n', 'User:'], num_predict: 128, num_keep: 4,
      mirostat: 2, mirostat_tau: 5, mirostat_eta: 0.1, tfs_z: 1, penalize_newline: false, num_ctx: 8192,
    };
    expect(sent('/api/chat', chat(options)).options).toEqual(options);
    expect(sent('/api/generate', { model: 'x', prompt: 'p', options: {} }).options).toEqual({});
  });

  test('what clients send when nobody asked: the Ollama CLI (options {}), Go clients (options null), ollama-js (none)', () => {
    expect(sent('/api/chat', chat({})).options).toEqual({});
    expect(sent('/api/chat', chat(null)).options).toBeNull();
    expect(sent('/api/chat', chat())).not.toHaveProperty('options');
  });

  test('a null value is skipped by Ollama and so is not refused', () => {
    expect(sent('/api/chat', chat({ num_gpu: null, temperature: null })).options).toEqual({ num_gpu: null, temperature: null });
  });

  test('an admin can allow a runner option, and take a sampling option away', () => {
    expect(sent('/api/chat', chat({ num_gpu: 20, temperature: 0 }), { options: ['num_gpu', 'temperature'] }).options).toEqual({ num_gpu: 20, temperature: 0 });
    expect(decide('/api/chat', chat({ top_p: 0.5 }), { options: ['num_gpu', 'temperature'] })).toMatchObject({
      ok: false,
      refusal: { status: 403, reason: 'option_denied' },
    });
    expect(decide('/api/chat', chat({ temperature: 0 }), { options: [] })).toMatchObject({ ok: false, refusal: { reason: 'option_denied' } });
  });

  test.each(['temprature', 'NUM_GPU', 'Temperature', 'keep_alive', '__proto__', 'constructor', 'num_gpu '])('an option Ollama does not know (%j) is 400', (name) => {
    const b = Buffer.from(`{"model":"x","messages":[],"options":{${JSON.stringify(name)}:1}}`);
    expect(decide('/api/chat', b)).toEqual({
      ok: false,
      refusal: { status: 400, reason: 'unknown_option', error: `unknown option ${JSON.stringify(name)}: not one of Ollama's model options` },
    });
  });

  test.each<[string, unknown]>([
    ['an array', [['num_gpu', 1]]],
    ['a string', 'num_gpu=1'],
    ['a number', 1],
    ['true', true],
  ])('options that are %s: 400', (_, options) => {
    expect(decide('/api/generate', { model: 'x', prompt: 'p', options })).toEqual({
      ok: false,
      refusal: { status: 400, reason: 'bad_option', error: 'options must be a JSON object' },
    });
  });

  test.each<[string, unknown, string]>([
    ['num_ctx', '99999', 'options.num_ctx must be a number'],
    ['num_gpu', '999', 'options.num_gpu must be a number'],
    ['num_gpu', true, 'options.num_gpu must be a number'],
    ['temperature', 'hot', 'options.temperature must be a number'],
    ['num_predict', [1], 'options.num_predict must be a number'],
    ['use_mmap', 'no', 'options.use_mmap must be true or false'],
    ['use_mmap', 0, 'options.use_mmap must be true or false'],
    ['stop', 'User:', 'options.stop must be an array of strings'],
    ['stop', ['a', 1], 'options.stop must be an array of strings'],
  ])('options.%s = %j: 400 bad_option (Ollama would fail it too, after loading the model)', (name, value, error) => {
    const o: Partial<Policy> = { options: ['num_ctx', 'num_gpu', 'temperature', 'num_predict', 'use_mmap', 'stop'] };
    expect(decide('/api/chat', chat({ [name]: value }), o)).toEqual({ ok: false, refusal: { status: 400, reason: 'bad_option', error } });
  });

  test('the OpenAI-compatible API has no options field: Ollama ignores it there, so does the guard', () => {
    expect(sent('/v1/chat/completions', { model: 'x', messages: [], options: { num_gpu: 999 } }).options).toEqual({ num_gpu: 999 });
  });

  test('endpoints that run no model are not checked', () => {
    expect(sent('/api/show', { model: 'x', options: { num_gpu: 999, nonsense: 1 } }).options).toEqual({ num_gpu: 999, nonsense: 1 });
  });
});

describe('upper bounds for the options an admin allows (optionLimits)', () => {
  const admin: Partial<Policy> = { options: ['num_batch', 'num_thread', 'num_gpu', 'top_k'], optionLimits: { num_batch: 512, num_thread: 8, num_gpu: 20 } };

  test.each<[string, number, number]>([
    ['num_batch', 8192, 512],
    ['num_batch', 256, 256],
    ['num_batch', 512, 512],
    ['num_thread', 64, 8],
    ['num_gpu', 999, 20],
    ['num_gpu', -1, -1],
    ['num_gpu', 1e300, 20],
    ['num_batch', 4096.5, 512],
  ])('%s %d → %d', (name, given, expected) => {
    expect(sent('/api/generate', { model: 'x', prompt: 'p', options: { [name]: given } }, admin).options).toEqual({ [name]: expected });
  });

  test('options without a bound are left as sent', () => {
    expect(sent('/api/generate', { model: 'x', prompt: 'p', options: { top_k: 1000 } }, admin).options).toEqual({ top_k: 1000 });
  });

  test('a bound does not allow an option', () => {
    expect(decide('/api/generate', { model: 'x', prompt: 'p', options: { num_batch: 64 } }, { optionLimits: { num_batch: 512 } })).toMatchObject({
      ok: false,
      refusal: { reason: 'option_denied' },
    });
  });

  test('maxNumCtx still bounds num_ctx', () => {
    expect(sent('/api/chat', chat({ num_ctx: 131072, temperature: 0.2 }), { maxNumCtx: 8192 }).options).toEqual({ num_ctx: 8192, temperature: 0.2 });
    expect(sent('/api/embed', { model: 'x', input: 'a', options: { num_ctx: 131072 } }, { maxNumCtx: 8192 }).options).toEqual({ num_ctx: 8192 });
  });
});

describe('maxTokensPerRequest', () => {
  const cap = { maxTokensPerRequest: 256 };

  test.each<[string, unknown, number]>([
    ['absent', undefined, 256],
    ['null', null, 256],
    ['-1 (unbounded)', -1, 256],
    ['-2 (fill the context)', -2, 256],
    ['0 (unbounded in Ollama\'s own runner)', 0, 256],
    ['0.5 (Ollama truncates it to 0)', 0.5, 256],
    ['above the bound', 100_000, 256],
    ['past int64', 1e30, 256],
    ['the bound', 256, 256],
    ['below the bound', 100, 100],
  ])('native num_predict %s (%j) → %d', (_, given, expected) => {
    const options = given === undefined ? {} : { num_predict: given };
    expect(sent('/api/generate', { model: 'x', prompt: 'p', options }, cap).options.num_predict).toBe(expected);
    expect(sent('/api/chat', chat(options), cap).options.num_predict).toBe(expected);
  });

  test('no options at all: the clamp is written in, other options kept', () => {
    expect(sent('/api/chat', chat(), cap).options).toEqual({ num_predict: 256 });
    expect(sent('/api/chat', chat(null), cap).options).toEqual({ num_predict: 256 });
    expect(sent('/api/chat', chat({ temperature: 0 }), cap).options).toEqual({ temperature: 0, num_predict: 256 });
  });

  test('a peer that may set no option still gets the clamp, and may not send num_predict itself', () => {
    expect(sent('/api/generate', { model: 'x', prompt: 'p' }, { ...cap, options: [] }).options).toEqual({ num_predict: 256 });
    expect(decide('/api/generate', { model: 'x', prompt: 'p', options: { num_predict: 10 } }, { ...cap, options: [] })).toMatchObject({
      ok: false,
      refusal: { status: 403, reason: 'option_denied' },
    });
  });

  test('num_predict that is not a number: 400', () => {
    expect(decide('/api/generate', { model: 'x', prompt: 'p', options: { num_predict: '100' } }, cap)).toMatchObject({ ok: false, refusal: { status: 400, reason: 'bad_option' } });
  });

  test('without a bound, num_predict -1 goes to Ollama as sent', () => {
    expect(sent('/api/generate', { model: 'x', prompt: 'p', options: { num_predict: -1 } }).options).toEqual({ num_predict: -1 });
    expect(sent('/api/generate', { model: 'x', prompt: 'p' })).not.toHaveProperty('options');
  });

  test('embeddings generate nothing: left alone', () => {
    expect(sent('/api/embed', { model: 'x', input: 'a' }, cap)).not.toHaveProperty('options');
    expect(sent('/v1/embeddings', { model: 'x', input: 'a' }, cap)).not.toHaveProperty('max_tokens');
  });

  test.each(['/v1/chat/completions', '/v1/completions'])('%s: max_tokens absent, negative or above → the bound', (path) => {
    const b = path === '/v1/completions' ? { model: 'x', prompt: 'p' } : { model: 'x', messages: [] };
    expect(sent(path, b, cap).max_tokens).toBe(256);
    expect(sent(path, { ...b, max_tokens: null }, cap).max_tokens).toBe(256);
    expect(sent(path, { ...b, max_tokens: -1 }, cap).max_tokens).toBe(256);
    expect(sent(path, { ...b, max_tokens: 0 }, cap).max_tokens).toBe(256);
    expect(sent(path, { ...b, max_tokens: 4096 }, cap).max_tokens).toBe(256);
    expect(sent(path, { ...b, max_tokens: 10 }, cap).max_tokens).toBe(10);
    expect(sent(path, b)).not.toHaveProperty('max_tokens');
  });

  test('max_completion_tokens (which Ollama does not read) is bounded too when sent, and max_tokens written beside it', () => {
    const r = sent('/v1/chat/completions', { model: 'x', messages: [], max_completion_tokens: 4096 }, cap);
    expect(r).toMatchObject({ max_completion_tokens: 256, max_tokens: 256 });
    const small = sent('/v1/chat/completions', { model: 'x', messages: [], max_completion_tokens: 10 }, cap);
    expect(small).toMatchObject({ max_completion_tokens: 10, max_tokens: 256 });
    expect(sent('/v1/chat/completions', { model: 'x', messages: [] }, cap)).not.toHaveProperty('max_completion_tokens');
  });

  test.each([
    '{"model":"x","messages":[],"max_tokens":10,"MAX_TOKENS":100000}',
    '{"model":"x","messages":[],"Max_Tokens":100000}',
    '{"model":"x","messages":[],"max_Completion_tokens":100000}',
    '{"model":"x","messages":[],"Temperature":2}',
  ])('a case variant Go would read as a bounded field is refused: %s', (raw) => {
    expect(decide('/v1/chat/completions', Buffer.from(raw), cap)).toMatchObject({ ok: false, refusal: { status: 400, reason: 'ambiguous_field' } });
  });

  test.each<[string, unknown]>([
    ['max_tokens', '100'],
    ['max_tokens', 1.5],
    ['max_completion_tokens', 'lots'],
  ])('%s = %j: 400 bad_option', (field, value) => {
    expect(decide('/v1/chat/completions', { model: 'x', messages: [], [field]: value }, cap)).toEqual({
      ok: false,
      refusal: { status: 400, reason: 'bad_option', error: `${field} must be a whole number` },
    });
  });
});

describe('the OpenAI-compatible fields Ollama turns into options', () => {
  test('all pass under the default policy', () => {
    const b = { model: 'x', messages: [], max_tokens: 10, temperature: 0.2, seed: 1, stop: ['x'], frequency_penalty: 0.1, presence_penalty: 0.1, top_p: 0.9 };
    expect(sent('/v1/chat/completions', b)).toEqual(b);
  });

  test.each<[string, string, unknown, string]>([
    ['/v1/chat/completions', 'temperature', 0.2, 'temperature'],
    ['/v1/chat/completions', 'max_tokens', 10, 'num_predict'],
    ['/v1/completions', 'seed', 7, 'seed'],
    ['/v1/completions', 'stop', 'x', 'stop'],
    ['/v1/chat/completions', 'top_p', 0.5, 'top_p'],
    ['/v1/chat/completions', 'frequency_penalty', 1, 'frequency_penalty'],
    ['/v1/completions', 'presence_penalty', 1, 'presence_penalty'],
  ])('%s %s = %j sets option %s: refused when the policy does not allow it', (path, field, value, option) => {
    const r = decide(path, { model: 'x', messages: [], prompt: 'p', [field]: value }, { options: ['num_ctx'] });
    expect(r).toEqual({
      ok: false,
      refusal: {
        status: 403,
        reason: 'option_denied',
        error: `${field} sets option "${option}", which is not allowed for this peer (an admin can allow it in the policy's "options" list)`,
      },
    });
  });
});

describe('policy fields', () => {
  test('defaults: the sampling options and num_ctx, no bounds', () => {
    const p = policySchema.parse({});
    expect(p.options).toEqual(expect.arrayContaining(['temperature', 'top_p', 'stop', 'num_predict', 'num_ctx', 'mirostat']));
    expect(p.options).not.toEqual(expect.arrayContaining(['num_gpu']));
    for (const runner of ['num_gpu', 'num_batch', 'num_thread', 'main_gpu', 'use_mmap', 'use_mlock', 'numa', 'low_vram', 'draft_num_predict']) {
      expect(p.options).not.toContain(runner);
    }
    expect(p.optionLimits).toEqual({});
  });

  test('a policy with options and bounds round-trips', () => {
    const o = { options: ['temperature', 'num_gpu'], optionLimits: { num_gpu: 20, num_batch: 512 } };
    expect(policyOverrideSchema.parse(o)).toEqual(o);
    expect(policySchema.parse(o)).toMatchObject(o);
  });

  test.each<[string, unknown]>([
    ['an unknown option', { options: ['temprature'] }],
    ['options that are not a list', { options: 'temperature' }],
    ['a bound for an unknown option', { optionLimits: { num_gpus: 1 } }],
    ['a bound for num_ctx (that is maxNumCtx)', { optionLimits: { num_ctx: 1 } }],
    ['a bound for num_predict (that is maxTokensPerRequest)', { optionLimits: { num_predict: 1 } }],
    ['a bound for a non-numeric option', { optionLimits: { use_mmap: 1 } }],
    ['a negative bound', { optionLimits: { num_batch: -1 } }],
    ['a fractional bound', { optionLimits: { num_batch: 1.5 } }],
  ])('refuses %s', (_, input) => {
    expect(policyOverrideSchema.safeParse(input).success).toBe(false);
    expect(policySchema.safeParse(input).success).toBe(false);
  });

  test('mergePolicy copies the lists and bounds it takes', () => {
    const limits = { num_batch: 512 };
    const merged = mergePolicy(DEFAULT_POLICY, { optionLimits: limits, options: ['temperature'] });
    merged.optionLimits.num_batch = 1;
    merged.options.push('num_gpu');
    expect(limits).toEqual({ num_batch: 512 });
    expect(DEFAULT_POLICY.options).not.toContain('num_gpu');
  });
});
