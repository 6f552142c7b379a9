/**
 * Model names are the client's choice: as metric labels they must stay few
 * and well-formed (issue 10, item 6). Both the gateway's and the guard's
 * metrics label through one labeller.
 */
import { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { modelLabeller } from '../../../src/core/metric-labels.js';
import { gatewayMetrics } from '../../../src/gateway/metrics.js';
import { guardMetrics } from '../../../src/guard/metrics.js';
import { openDatabase } from '../../../src/db/open.js';
import type { RequestRecord } from '../../../src/core/request-record.js';

const record = (model: string | null, status: number, refusal: string | null = null): Omit<RequestRecord, 'seq'> => ({
  at: 0, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model, promptSha256: null, promptLength: null,
  promptText: null, status, bytesIn: 0, bytesOut: 0, promptTokens: 1, evalTokens: 1, ttfbMs: null, durationMs: 1, refusal,
});

async function modelLabels(registry: Registry, metric: string): Promise<Set<string>> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === metric)!;
  return new Set(m.values.map((v) => String(v.labels.model)));
}

describe('modelLabeller', () => {
  test.each<[string, string | null, boolean, string]>([
    ['a served model', 'llama3.2:latest', true, 'llama3.2:latest'],
    ['a namespaced one', 'user/model:tag', true, 'user/model:tag'],
    ['no model', null, true, ''],
    ['a refused or failed request', 'llama3.2:latest', false, 'other'],
    ['path tricks', '../../x', true, 'other'],
    ['a scheme prefix', 'https://evil.io/x:latest', true, 'other'],
    ['a newline', 'x\ny', true, 'other'],
    ['upper case (never normalised so)', 'LLAMA', true, 'other'],
    ['300 characters', 'a'.repeat(300), true, 'other'],
    // only the display form of a name Ollama's grammar reads (core/model-name.ts) is a label
    ['a name on another host', 'hf.co/user/model:q4_k_m', true, 'hf.co/user/model:q4_k_m'],
    ['not the shortest form', 'library/llama3.2:latest', true, 'other'],
    ['the default host written out', 'registry.ollama.ai/library/llama3.2:latest', true, 'other'],
    ['a namespace Ollama refuses', 'registry.ollama.ai/llama3.2:latest', true, 'other'],
    ['no tag', 'llama3.2', true, 'other'],
    ['a digest', 'llama3.2@sha256:abc', true, 'other'],
    ['a tag over 80 characters', `x:${'t'.repeat(81)}`, true, 'other'],
  ])('%s', (_what, model, served, want) => {
    expect(modelLabeller(10)(model, served)).toBe(want);
  });

  test('at most `max` distinct names; later ones are "other"', () => {
    const label = modelLabeller(3);
    expect(['a:1', 'b:1', 'c:1', 'd:1', 'a:1'].map((m) => label(m, true))).toEqual(['a:1', 'b:1', 'c:1', 'other', 'a:1']);
  });
});

describe('the metrics use it', () => {
  test('gateway: 1,000 made-up models and 404s give a bounded set of model labels', async () => {
    const registry = new Registry();
    const m = gatewayMetrics(registry, openDatabase(':memory:'));
    m.records([record('llama3.2:latest', 200), record('../../etc/passwd', 404, null), record('llama3.2:latest', 403, 'model_denied')]);
    m.records(Array.from({ length: 1000 }, (_, i) => record(`made-up-${i}:latest`, 200)));
    const labels = await modelLabels(registry, 'wgo_requests_total');
    expect(labels.has('../../etc/passwd')).toBe(false);
    expect(labels.has('other')).toBe(true);
    expect(labels.size).toBeLessThanOrEqual(66);
    expect((await modelLabels(registry, 'wgo_tokens_total')).size).toBeLessThanOrEqual(66);
  });

  test('guard: the same bound', async () => {
    const registry = new Registry();
    const m = guardMetrics(registry);
    for (let i = 0; i < 1000; i++) m.request('alice', `made-up-${i}:latest`, 200, 'chat', 0.01);
    m.request('alice', 'x\u001b[31m', 200, 'chat', 0.01);
    const labels = await modelLabels(registry, 'wgo_guard_requests_total');
    expect(labels.size).toBeLessThanOrEqual(66);
    expect([...labels].some((l) => l.includes('\u001b'))).toBe(false);
  });
});
