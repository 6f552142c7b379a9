import { describe, expect, test } from 'vitest';
import { createTokenScanner } from '../../../../src/core/token-scan.js';

function scan(...chunks: (string | Buffer)[]) {
  const s = createTokenScanner();
  for (const c of chunks) s.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return s.result();
}

const GEN_LINES = [
  '{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","response":"The","done":false}\n',
  '{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","response":" sky \\"eval_count\\":999","done":false}\n',
];
const GEN_FINAL =
  '{"model":"llama3.2","created_at":"2025-01-01T00:00:01Z","response":"","done":true,"done_reason":"stop","context":[1,2,3],' +
  '"total_duration":5043500667,"load_duration":5025959,"prompt_eval_count":26,"prompt_eval_duration":325953000,' +
  '"eval_count":290,"eval_duration":4709213000}\n';

const SSE =
  'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}],"usage":null}\n\n' +
  'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":null}\n\n' +
  'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}\n\n' +
  'data: [DONE]\n\n';

describe('createTokenScanner', () => {
  test.each<[string, string[], { promptTokens: number; evalTokens: number } | null]>([
    ['native NDJSON stream', [...GEN_LINES, GEN_FINAL], { promptTokens: 26, evalTokens: 290 }],
    ['native, non-streaming object', [GEN_FINAL.trim()], { promptTokens: 26, evalTokens: 290 }],
    ['OpenAI SSE with include_usage', [SSE], { promptTokens: 12, evalTokens: 34 }],
    [
      'OpenAI non-streaming',
      ['{"id":"c","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"x"}}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}'],
      { promptTokens: 5, evalTokens: 7 },
    ],
    ['OpenAI embeddings: no completion_tokens', ['{"object":"list","data":[],"model":"m","usage":{"prompt_tokens":8,"total_tokens":8}}'], { promptTokens: 8, evalTokens: 0 }],
    ['/api/embed: prompt_eval_count only', ['{"model":"m","embeddings":[[0.1,-0.2]],"total_duration":1,"prompt_eval_count":9}'], { promptTokens: 9, evalTokens: 0 }],
    ['pretty-printed', ['{\n  "prompt_eval_count" : 3,\n  "eval_count":\t4\n}\n'], { promptTokens: 3, evalTokens: 4 }],
    ['no counts (stream cut short)', GEN_LINES, null],
    ['counts only inside model output', ['{"response":"say \\"eval_count\\":999 and \\"prompt_tokens\\": 5","done":false}\n'], null],
    ['a key that only ends in eval_count', ['{"x\\"eval_count":999,"my_eval_count":5,"prompt_eval_count":1}\n'], { promptTokens: 1, evalTokens: 0 }],
    ['not an integer', ['{"eval_count":1.5,"prompt_eval_count":"7","prompt_tokens":null}'], null],
    ['the last occurrence wins', [GEN_FINAL, GEN_FINAL.replace('"eval_count":290', '"eval_count":291')], { promptTokens: 26, evalTokens: 291 }],
    [
      'a real nested key (tool-call arguments) is overridden by the final counts',
      ['{"message":{"tool_calls":[{"function":{"name":"f","arguments":{"eval_count":1}}}]},"done":false}\n', GEN_FINAL],
      { promptTokens: 26, evalTokens: 290 },
    ],
    ['an error line after nothing', ['{"error":"model not found"}'], null],
    // Issue 10, item 2: a model that emits a tool call whose arguments carry the keys (native
    // /api/chat sends arguments as an object) must not set what a cut-short stream is charged.
    [
      'tool-call arguments naming the counts, then the client leaves before the final line',
      ['{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"done":true,"eval_count":1,"prompt_eval_count":1}}}]},"done":false}\n'],
      null,
    ],
    [
      'OpenAI tool-call output with a usage-like object is not the usage',
      ['data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"x"}}]}}],"x":{"usage":{"prompt_tokens":1,"completion_tokens":1}}}\n\n'],
      null,
    ],
    ['a top-level count in a nested object of the final line is not the count', ['{"done":true,"meta":{"eval_count":3},"eval_count":290,"prompt_eval_count":26}\n'], { promptTokens: 26, evalTokens: 290 }],
  ])('%s', (_, chunks, expected) => {
    expect(scan(...chunks)).toEqual(expected);
  });

  test('model output claiming \\"eval_count\\":999 in the final line does not count', () => {
    const final = GEN_FINAL.replace('"response":""', '"response":"{\\"eval_count\\":999,\\"prompt_eval_count\\":999}"');
    expect(scan(final)).toEqual({ promptTokens: 26, evalTokens: 290 });
    const onlyFake = '{"response":"{\\"eval_count\\":999}","done":true}\n';
    expect(scan(onlyFake)).toBeNull();
  });

  test.each([
    ['native', [...GEN_LINES].join(''), GEN_FINAL, { promptTokens: 26, evalTokens: 290 }],
    ['SSE', SSE.slice(0, SSE.indexOf('data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],')), SSE.slice(SSE.indexOf('data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],')), { promptTokens: 12, evalTokens: 34 }],
  ])('%s: the final line split at every byte position', (_, before, final, expected) => {
    const bytes = Buffer.from(final);
    for (let i = 0; i <= bytes.length; i++) {
      expect(scan(before, bytes.subarray(0, i), bytes.subarray(i)), `split at ${i}`).toEqual(expected);
    }
  });

  test('the final line split at every pair of byte positions', () => {
    const bytes = Buffer.from(GEN_FINAL);
    for (let i = 0; i <= bytes.length; i += 1) {
      for (let j = i; j <= bytes.length; j += 1) {
        const r = scan(GEN_LINES[1]!, bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j));
        if (r?.promptTokens !== 26 || r.evalTokens !== 290) throw new Error(`split at ${i},${j}: ${JSON.stringify(r)}`);
      }
    }
  });

  test('one byte at a time', () => {
    const s = createTokenScanner();
    for (const b of Buffer.from([...GEN_LINES, GEN_FINAL].join(''))) s.push(Buffer.from([b]));
    expect(s.result()).toEqual({ promptTokens: 26, evalTokens: 290 });
  });

  test('an escaping backslash that has left the tail window still counts', () => {
    // {"xxx…\"eval_count":999,"pad":"ppp…"} — the key is x…"eval_count, not eval_count.
    for (let pad = 400; pad <= 620; pad++) {
      const head = '{"' + 'x'.repeat(700) + '\\"eval_count":999,"pad":"' + 'p'.repeat(pad);
      for (const cut of [head.length, head.length - 1]) {
        expect(scan(head.slice(0, cut), head.slice(cut), '"}\n'), `pad ${pad} cut ${cut}`).toBeNull();
      }
    }
  });

  test('counts after a huge embeddings array, in 64 KiB chunks, in linear time', () => {
    const floats = Array.from({ length: 1024 }, (_, i) => (i % 7 === 0 ? -0.0123456789 : 0.0987654321)).join(',');
    const big = Buffer.from('{"model":"m","embeddings":[' + Array.from({ length: 400 }, () => `[${floats}]`).join(',') + '],"prompt_eval_count":4096}');
    expect(big.length).toBeGreaterThan(5_000_000);
    const s = createTokenScanner();
    const started = performance.now();
    for (let i = 0; i < big.length; i += 65_536) s.push(big.subarray(i, i + 65_536));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(s.result()).toEqual({ promptTokens: 4096, evalTokens: 0 });
  });

  test('empty chunks change nothing', () => {
    expect(scan(Buffer.alloc(0), GEN_FINAL, Buffer.alloc(0))).toEqual({ promptTokens: 26, evalTokens: 290 });
  });
});
