import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { overridesFromFlags, setPolicy, type PolicyOptions } from '../../../src/cli/policy.js';
import type { Io } from '../../../src/cli/output.js';
import { type Config } from '../../../src/config.js';
import { DEFAULT_OPTIONS, OPTION_NAMES } from '../../../src/core/model-options.js';
import { DEFAULT_ENDPOINTS } from '../../../src/core/ollama-api.js';
import { DEFAULT_POLICY, type Policy } from '../../../src/core/policy.js';
import { auditRepository } from '../../../src/db/audit.js';
import { openGateway } from '../../../src/gateway/context.js';
import { expectWgoError } from '../../support/errors.js';
import { gatewayState, type GatewayState } from '../../support/gateway-state.js';

const WHO = { actor: 'root', source: 'cli' };

describe('overridesFromFlags', () => {
  test('no flags, no overrides', () => {
    expect(overridesFromFlags({})).toEqual({});
    expect(overridesFromFlags({ json: true, reset: true })).toEqual({});
  });

  test.each<[string, PolicyOptions, Partial<Policy>]>([
    ['endpoints', { endpoints: 'chat, generate,,v1.chat' }, { endpoints: ['chat', 'generate', 'v1.chat'] }],
    ['admin endpoints', { endpoints: 'pull,delete' }, { endpoints: ['pull', 'delete'] }],
    ['models', { models: 'llama3.2, qwen2.5:*' }, { models: ['llama3.2', 'qwen2.5:*'] }],
    ['models any', { models: 'any' }, { models: null }],
    ['models all', { models: 'all' }, { models: null }],
    ['rate per minute (bare)', { rate: '30' }, { requestsPerMinute: 30 }],
    ['rate /min', { rate: '30/min' }, { requestsPerMinute: 30 }],
    ['rate /m', { rate: '30/m' }, { requestsPerMinute: 30 }],
    ['rate /s', { rate: '2/s' }, { requestsPerMinute: 120 }],
    ['rate /sec', { rate: '2/sec' }, { requestsPerMinute: 120 }],
    ['rate /h', { rate: '120/h' }, { requestsPerMinute: 2 }],
    ['burst', { burst: '5' }, { burst: 5 }],
    ['streams', { streams: '2' }, { maxStreams: 2 }],
    ['tokens per day', { tokensPerDay: '100000' }, { tokensPerDay: 100000 }],
    ['tokens per day none', { tokensPerDay: 'none' }, { tokensPerDay: null }],
    ['tokens per day unlimited', { tokensPerDay: 'unlimited' }, { tokensPerDay: null }],
    ['keep-alive seconds', { maxKeepAlive: '300' }, { maxKeepAliveSec: 300 }],
    ['keep-alive duration', { maxKeepAlive: '1h30m' }, { maxKeepAliveSec: 5400 }],
    ['keep-alive off', { maxKeepAlive: 'off' }, { maxKeepAliveSec: null }],
    ['num_ctx', { maxNumCtx: '8192' }, { maxNumCtx: 8192 }],
    ['num_ctx none', { maxNumCtx: 'none' }, { maxNumCtx: null }],
    ['tokens per request', { maxTokensPerRequest: '2048' }, { maxTokensPerRequest: 2048 }],
    ['tokens per request none', { maxTokensPerRequest: 'none' }, { maxTokensPerRequest: null }],
    ['write models', { writeModels: 'alice/*, llama3.2:mine' }, { writeModels: ['alice/*', 'llama3.2:mine'] }],
    ['write models none', { writeModels: 'none' }, { writeModels: [] }],
    ['write models any', { writeModels: 'any' }, { writeModels: null }],
    ['options', { options: 'temperature, top_p,,num_gpu' }, { options: ['temperature', 'top_p', 'num_gpu'] }],
    ['options none', { options: 'none' }, { options: [] }],
    ['options default', { options: 'default' }, { options: [...DEFAULT_OPTIONS] }],
    ['options all', { options: 'all' }, { options: [...OPTION_NAMES] }],
    ['options default and more', { options: 'default,num_gpu,temperature' }, { options: [...DEFAULT_OPTIONS, 'num_gpu'] }],
    ['option limits', { optionLimits: 'num_batch=512, num_thread=8' }, { optionLimits: { num_batch: 512, num_thread: 8 } }],
    ['option limits none', { optionLimits: 'none' }, { optionLimits: {} }],
  ])('%s', (_what, flags, expected) => {
    expect(overridesFromFlags(flags)).toEqual(expected);
  });

  test('all flags together', () => {
    expect(overridesFromFlags({ endpoints: 'chat', models: 'llama3.2', rate: '10', burst: '3', streams: '1', tokensPerDay: '500', maxKeepAlive: '5m', maxNumCtx: '4096' })).toEqual({
      endpoints: ['chat'], models: ['llama3.2'], requestsPerMinute: 10, burst: 3, maxStreams: 1, tokensPerDay: 500, maxKeepAliveSec: 300, maxNumCtx: 4096,
    });
  });

  test.each<[string, PolicyOptions, RegExp]>([
    ['an unknown endpoint', { endpoints: 'chat,shell' }, /unknown endpoint "shell"; known: generate, chat/],
    ['an endpoint in the wrong case', { endpoints: 'Chat' }, /unknown endpoint "Chat"/],
    ['a rate with a unit it does not know', { rate: '10/day' }, /--rate "10\/day" must be N, N\/min, N\/s or N\/h/],
    ['a word for a rate', { rate: 'fast' }, /--rate/],
    ['a negative rate', { rate: '-1' }, /--rate/],
    ['a fractional burst', { burst: '2.5' }, /--burst "2.5" is not a whole number/],
    ['a negative burst', { burst: '-2' }, /--burst/],
    ['streams as a word', { streams: 'many' }, /--streams "many" is not a whole number/],
    ['tokens in exponent form', { tokensPerDay: '1e6' }, /--tokens-per-day "1e6"/],
    ['a keep-alive that is no duration', { maxKeepAlive: 'soon' }, /--max-keep-alive "soon"/],
    ['num_ctx with a unit', { maxNumCtx: '8k' }, /--max-num-ctx "8k"/],
    ['an option Ollama does not have', { options: 'temperature,num_gpus' }, /unknown option "num_gpus"; Ollama's options: num_keep, seed/],
    ['an option in the wrong case', { options: 'Temperature' }, /unknown option "Temperature"/],
    ['a bound without a value', { optionLimits: 'num_batch' }, /--option-limits "num_batch" must be NAME=N/],
    ['a negative bound', { optionLimits: 'num_batch=-1' }, /--option-limits "num_batch=-1" must be NAME=N/],
    ['a bound on num_ctx', { optionLimits: 'num_ctx=4096' }, /num_ctx is bounded by --max-num-ctx/],
    ['a bound on num_predict', { optionLimits: 'num_predict=10' }, /num_predict is bounded by --max-tokens-per-request/],
    ['a bound on a non-numeric option', { optionLimits: 'use_mmap=1' }, /"use_mmap" cannot be bounded; options that can: num_keep/],
  ])('%s is BAD_INPUT', (_what, flags, message) => {
    expect(expectWgoError(() => overridesFromFlags(flags), 'BAD_INPUT').message).toMatch(message);
  });
});

describe('setPolicy (a real gateway state)', () => {
  let state: GatewayState;
  let config: Config;
  let out: string[];
  const io: Io = { out: (t) => void out.push(t), err: () => undefined, env: {} };

  beforeAll(() => {
    state = gatewayState({ name: 'policy', config: { policy: { maxStreams: 3, tokensPerDay: 50_000 } } });
    config = state.config;
    const ctx = openGateway(config);
    try {
      for (const name of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gone']) ctx.peers.add({ name }, WHO);
      ctx.peers.revoke('gone', WHO);
    } finally {
      ctx.close();
    }
  });
  afterAll(() => state.cleanup());

  const DEFAULT = { ...DEFAULT_POLICY, endpoints: [...DEFAULT_ENDPOINTS], maxStreams: 3, tokensPerDay: 50_000 };
  function run(name: string, o: PolicyOptions): { name: string; overrides: Partial<Policy> | null; effective: Policy; changed: boolean } {
    out = [];
    setPolicy(config, name, { ...o, json: true }, io, WHO);
    return JSON.parse(out.join('')) as never;
  }
  function withGateway<T>(fn: (ctx: ReturnType<typeof openGateway>) => T): T {
    const ctx = openGateway(config);
    try {
      return fn(ctx);
    } finally {
      ctx.close();
    }
  }
  const policyAudit = (target: string) =>
    withGateway((ctx) => auditRepository(ctx.db).list({ since: 0 }).filter((a) => a.action === 'peer.policy' && a.target === target));

  test('flags change only their fields, on top of what the peer already has', () => {
    expect(run('alice', { models: 'llama3.2' })).toEqual({ name: 'alice', overrides: { models: ['llama3.2'] }, effective: { ...DEFAULT, models: ['llama3.2'] }, changed: true });
    const second = run('alice', { streams: '1', tokensPerDay: 'none' });
    expect(second.overrides).toEqual({ models: ['llama3.2'], maxStreams: 1, tokensPerDay: null });
    expect(second.effective).toEqual({ ...DEFAULT, models: ['llama3.2'], maxStreams: 1, tokensPerDay: null });
    expect(withGateway((ctx) => ctx.peers.show('alice').policy)).toEqual({ models: ['llama3.2'], maxStreams: 1, tokensPerDay: null });
    expect(policyAudit('alice')).toMatchObject([
      { actor: 'root', source: 'cli', details: { policy: { models: ['llama3.2'] } } },
      { details: { policy: { models: ['llama3.2'], maxStreams: 1, tokensPerDay: null } } },
    ]);
  });

  test('--write-models sets the write allowlist, shown as given', () => {
    expect(run('frank', { writeModels: 'frank/*' })).toMatchObject({ overrides: { writeModels: ['frank/*'] }, effective: { ...DEFAULT, writeModels: ['frank/*'] } });
    out = [];
    setPolicy(config, 'frank', { writeModels: 'frank/*,llama3.2:frank' }, io, WHO);
    expect(out.join('')).toMatch(/^ {2}writeModels +frank\/\*,llama3\.2:frank {2}\(set for this peer\)$/m);
    run('frank', { writeModels: 'none' });
  });

  test('options and their bounds are stored and shown', () => {
    const r = run('dave', { options: 'temperature,num_gpu', optionLimits: 'num_gpu=20' });
    expect(r.overrides).toEqual({ options: ['temperature', 'num_gpu'], optionLimits: { num_gpu: 20 } });
    expect(r.effective).toEqual({ ...DEFAULT, options: ['temperature', 'num_gpu'], optionLimits: { num_gpu: 20 } });
    out = [];
    setPolicy(config, 'dave', { reset: true, optionLimits: 'num_batch=512,num_thread=8' }, io, WHO);
    const text = out.join('');
    expect(text).toMatch(/^ {2}optionLimits +num_batch=512,num_thread=8 {2}\(set for this peer\)$/m);
    expect(text).toMatch(/^ {2}options +num_keep,seed,.*,num_ctx$/m);
    out = [];
    setPolicy(config, 'dave', { reset: true, options: 'none' }, io, WHO);
    expect(out.join('')).toMatch(/^ {2}options +none {2}\(set for this peer\)$/m);
    expect(out.join('')).toMatch(/^ {2}optionLimits +none$/m);
    run('dave', { reset: true });
  });

  test('set-policy --options and --option-limits through the real CLI entry', async () => {
    const file = state.configFile;
    const out: string[] = [];
    const err: string[] = [];
    const cliIo: Io = { out: (t) => void out.push(t), err: (t) => void err.push(t), env: {} };
    const code = await main(['--config', file, 'set-policy', 'dave', '--options', 'temperature,num_batch', '--option-limits', 'num_batch=256', '--json'], cliIo);
    expect({ code, err: err.join('') }).toEqual({ code: 0, err: '' });
    expect(JSON.parse(out.join('')).overrides).toEqual({ options: ['temperature', 'num_batch'], optionLimits: { num_batch: 256 } });
    expect(await main(['--config', file, 'set-policy', 'dave', '--options', 'num_gpus'], cliIo)).toBe(2);
    expect(err.join('')).toMatch(/unknown option "num_gpus"/);
    expect(withGateway((ctx) => ctx.peers.show('dave').policy)).toEqual({ options: ['temperature', 'num_batch'], optionLimits: { num_batch: 256 } });
    run('dave', { reset: true });
  });

  test('the same values again change nothing and write no audit record', () => {
    run('bob', { rate: '10' });
    const again = run('bob', { rate: '10' });
    expect(again.changed).toBe(false);
    expect(policyAudit('bob')).toHaveLength(1);
  });

  test('--reset starts from the configured default; --reset alone drops every override', () => {
    run('carol', { models: 'llama3.2', burst: '4' });
    expect(run('carol', { reset: true, streams: '2' })).toMatchObject({ overrides: { maxStreams: 2 }, effective: { ...DEFAULT, maxStreams: 2 }, changed: true });
    expect(run('carol', { reset: true })).toEqual({ name: 'carol', overrides: null, effective: DEFAULT, changed: true });
    expect(withGateway((ctx) => ctx.peers.show('carol').policy)).toBeNull();
    expect(policyAudit('carol').at(-1)!.details).toEqual({ policy: null });
  });

  test('text output lists the effective policy and marks what is set for the peer', () => {
    out = [];
    setPolicy(config, 'dave', { streams: '2' }, io, WHO);
    const text = out.join('');
    expect(text.split('\n')[0]).toBe('dave: policy');
    expect(text).toMatch(/^ {2}maxStreams +2 {2}\(set for this peer\)$/m);
    expect(text).toMatch(/^ {2}tokensPerDay +50000$/m);
    expect(text).toMatch(/^ {2}models +any$/m);
    expect(text).toMatch(/^ {2}writeModels +none$/m);
    out = [];
    setPolicy(config, 'dave', { streams: '2' }, io, WHO);
    expect(out.join('').split('\n')[0]).toBe('dave: policy (unchanged)');
  });

  test('no flags is BAD_INPUT; values out of range are refused and nothing changes', () => {
    expectWgoError(() => setPolicy(config, 'erin', {}, io, WHO), 'BAD_INPUT');
    expect(expectWgoError(() => setPolicy(config, 'erin', { streams: '0' }, io, WHO), 'BAD_INPUT').message).toMatch(/maxStreams/);
    // 30/h is half a request a minute: not a whole number the policy can hold.
    expect(expectWgoError(() => setPolicy(config, 'erin', { rate: '30/h' }, io, WHO), 'BAD_INPUT').message).toMatch(/multiple of 60/);
    expect(expectWgoError(() => setPolicy(config, 'erin', { models: 'not a model!' }, io, WHO), 'BAD_INPUT').message).toMatch(/models/);
    expect(expectWgoError(() => setPolicy(config, 'erin', { writeModels: '../x' }, io, WHO), 'BAD_INPUT').message).toMatch(/writeModels\.0: model name "\.\.\/x"/);
    expect(expectWgoError(() => setPolicy(config, 'erin', { writeModels: `x@sha256:${'a'.repeat(64)}` }, io, WHO), 'BAD_INPUT').message).toMatch(/digest/);
    expect(withGateway((ctx) => ctx.peers.show('erin').policy)).toBeNull();
    expect(policyAudit('erin')).toEqual([]);
  });

  test('an unknown or revoked peer is refused', () => {
    expectWgoError(() => setPolicy(config, 'nobody', { streams: '2' }, io, WHO), 'NOT_FOUND');
    expectWgoError(() => setPolicy(config, 'gone', { streams: '2' }, io, WHO), 'CONFLICT');
  });

  test('the service refuses unknown fields and wrong types (what the web UI would send)', () => {
    withGateway((ctx) => {
      expect(expectWgoError(() => ctx.peers.setPolicy('erin', { maxStreams: 2, shell: true }, WHO), 'BAD_INPUT').message).toMatch(/shell/);
      expectWgoError(() => ctx.peers.setPolicy('erin', { maxStreams: '2' }, WHO), 'BAD_INPUT');
      expectWgoError(() => ctx.peers.setPolicy('erin', { endpoints: ['chat', 'exec'] }, WHO), 'BAD_INPUT');
      expectWgoError(() => ctx.peers.setPolicy('erin', ['maxStreams'], WHO), 'BAD_INPUT');
      expect(ctx.peers.show('erin').policy).toBeNull();
      // An empty override is the default, stored as none.
      expect(ctx.peers.setPolicy('erin', {}, WHO)).toMatchObject({ changed: false, peer: { policy: null } });
    });
  });
});
