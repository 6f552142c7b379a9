/**
 * Model names as Ollama's own parser reads them (issue 10, item 5).
 *
 * The first three tables are Ollama's: types/model/name_test.go of ollama/ollama
 * v0.33.0-rc2 (commit fb30760996871fa9460115c753afd2c60d4ab0f7) — TestParseNameParts,
 * the `testCases` map of TestNameIsValid, TestNameIsValidPart (as whole names),
 * TestDisplayShortest and TestNameparseNameDefault — so a grammar drift on either side shows here.
 * The rest is the guard's reading on top of it: defaults filled in, case folded, and
 * what the guard refuses although Ollama's parser might not (digests, schemes).
 */
import { describe, expect, test } from 'vitest';
import {
  checkModelName,
  displayShortest,
  isFullyQualified,
  nameString,
  normaliseModel,
  parseNameBare,
  withDefaults,
  type BareName,
} from '../../../../src/core/model-name.js';

const part80 = '8'.repeat(80);
const part350 = '3'.repeat(350);
const bare = (o: Partial<BareName>): BareName => ({ host: '', namespace: '', model: '', tag: '', scheme: '', ...o });

describe("Ollama's name_test.go (v0.33.0-rc2)", () => {
  // TestParseNameParts: ParseNameBare's parts, and the file path of ParseName (defaults merged).
  test.each<[string, Partial<BareName>, string]>([
    ['registry.ollama.ai/library/dolphin-mistral:7b-v2.6-dpo-laser-q6_K', { host: 'registry.ollama.ai', namespace: 'library', model: 'dolphin-mistral', tag: '7b-v2.6-dpo-laser-q6_K' }, 'registry.ollama.ai/library/dolphin-mistral/7b-v2.6-dpo-laser-q6_K'],
    ['scheme://host:port/namespace/model:tag', { host: 'host:port', namespace: 'namespace', model: 'model', tag: 'tag', scheme: 'scheme' }, 'host:port/namespace/model/tag'],
    ['host/namespace/model:tag', { host: 'host', namespace: 'namespace', model: 'model', tag: 'tag' }, 'host/namespace/model/tag'],
    ['host:port/namespace/model:tag', { host: 'host:port', namespace: 'namespace', model: 'model', tag: 'tag' }, 'host:port/namespace/model/tag'],
    ['host/namespace/model', { host: 'host', namespace: 'namespace', model: 'model' }, 'host/namespace/model/latest'],
    ['host:port/namespace/model', { host: 'host:port', namespace: 'namespace', model: 'model' }, 'host:port/namespace/model/latest'],
    ['namespace/model', { namespace: 'namespace', model: 'model' }, 'registry.ollama.ai/namespace/model/latest'],
    ['model', { model: 'model' }, 'registry.ollama.ai/library/model/latest'],
    ['h/nn/mm:t', { host: 'h', namespace: 'nn', model: 'mm', tag: 't' }, 'h/nn/mm/t'],
    [`${part80}/${part80}/${part80}:${part80}`, { host: part80, namespace: part80, model: part80, tag: part80 }, `${part80}/${part80}/${part80}/${part80}`],
    [`${part350}/${part80}/${part80}:${part80}`, { host: part350, namespace: part80, model: part80, tag: part80 }, `${part350}/${part80}/${part80}/${part80}`],
  ])('ParseNameBare(%j)', (input, want, filepath) => {
    expect(parseNameBare(input)).toEqual(bare(want));
    const n = withDefaults(parseNameBare(input));
    expect([n.host, n.namespace, n.model, n.tag].join('/')).toBe(filepath);
  });

  // TestNameIsValid's testCases: ParseNameBare(s).IsValid(), and a valid name prints back as itself.
  test.each<[string, boolean]>([
    ['', false],
    ['_why/_the/_lucky:_stiff', true],
    ['h/n/m:t', true],
    ['host/namespace/model:tag', true],
    ['host/namespace/model', false],
    ['namespace/model', false],
    ['model', false],
    [`${part80}/${part80}/${part80}:${part80}`, true],
    [`${part350}/${part80}/${part80}:${part80}`, true],
    ['h/nn/mm:t', true],
    ['m', false],
    ['n/m:', false],
    ['h/n/m', false],
    ['@t', false],
    ['m@d', false],
    ['^', false],
    ['mm:', false],
    ['/nn/mm', false],
    ['//', false],
    ['//mm', false],
    ['hh//', false],
    ['//mm:@', false],
    ['00@', false],
    ['@', false],
    ['-hh/nn/mm:tt', false],
    ['hh/-nn/mm:tt', false],
    ['hh/nn/-mm:tt', false],
    ['hh/nn/mm:-tt', false],
    ['host:https/namespace/model:tag', true],
    ['host/name:space/model:tag', false],
    // TestNameIsValidPart, each part in a whole name
    ['a./n/m:t', true],
    ['a.b/n/m:t', true],
    ['a:123/n/m:t', true],
    ['h/bb/m:t', true],
    ['h/a./m:t', false],
    ['h/n/-h:t', false],
    // one over each length limit
    [`${'3'.repeat(351)}/n/m:t`, false],
    [`h/${'8'.repeat(81)}/m:t`, false],
    [`h/n/${'8'.repeat(81)}:t`, false],
    [`h/n/m:${'8'.repeat(81)}`, false],
  ])('IsValid(ParseNameBare(%j)) = %s', (input, valid) => {
    const n = parseNameBare(input);
    expect(isFullyQualified(n)).toBe(valid);
    if (valid) expect(nameString(n)).toBe(input);
  });

  test.each([
    ['registry.ollama.ai/library/model:latest', 'model:latest'],
    ['registry.ollama.ai/library/model:tag', 'model:tag'],
    ['registry.ollama.ai/namespace/model:tag', 'namespace/model:tag'],
    ['host/namespace/model:tag', 'host/namespace/model:tag'],
    ['host/library/model:tag', 'host/library/model:tag'],
  ])('DisplayShortest(%j) = %j', (input, want) => {
    expect(displayShortest(parseNameBare(input))).toBe(want);
  });

  test('ParseName("xx").String() fills every default', () => {
    expect(nameString(withDefaults(parseNameBare('xx')))).toBe('registry.ollama.ai/library/xx:latest');
  });
});

describe("the guard's reading: checkModelName", () => {
  test.each<[string, string, string]>([
    ['llama3.2', 'registry.ollama.ai/library/llama3.2:latest', 'llama3.2:latest'],
    ['Llama3.2:3B', 'registry.ollama.ai/library/llama3.2:3b', 'llama3.2:3b'],
    ['library/llama3.2', 'registry.ollama.ai/library/llama3.2:latest', 'llama3.2:latest'],
    ['registry.ollama.ai/library/llama3.2:1b', 'registry.ollama.ai/library/llama3.2:1b', 'llama3.2:1b'],
    ['REGISTRY.OLLAMA.AI/Library/llama3.2', 'registry.ollama.ai/library/llama3.2:latest', 'llama3.2:latest'],
    ['registry.ollama.ai/user/model', 'registry.ollama.ai/user/model:latest', 'user/model:latest'],
    ['hf.co/Bartowski/Model-GGUF:Q4_K_M', 'hf.co/bartowski/model-gguf:q4_k_m', 'hf.co/bartowski/model-gguf:q4_k_m'],
    ['localhost:5000/ns/model', 'localhost:5000/ns/model:latest', 'localhost:5000/ns/model:latest'],
    // Ollama reads host "library" here, not the namespace: a different model from ns/m.
    ['library/ns/m', 'library/ns/m:latest', 'library/ns/m:latest'],
    // and host evil.io: a legal name (pulling it is a write, see writeModels)
    ['evil.io/x/y', 'evil.io/x/y:latest', 'evil.io/x/y:latest'],
    ['gpt-oss:20b-cloud', 'registry.ollama.ai/library/gpt-oss:20b-cloud', 'gpt-oss:20b-cloud'],
  ])('%j reads as %j, shown as %j', (input, full, display) => {
    expect(checkModelName(input)).toEqual({ ok: true, full, display });
    expect(normaliseModel(input)).toBe(display);
  });

  test.each<[string, string, RegExp]>([
    ['empty', '', /empty/],
    ['a path (Ollama reads host "..", namespace "..", model "x")', '../../x', /host "\.\." is not valid/],
    ['a deeper path', '../../../etc/passwd', /"\.\.\/\.\.\/\.\.\/etc\/passwd"/],
    ['a NUL byte', 'llama3.2\u0000', /control character/],
    ['a newline', 'llama3.2\nx', /control character/],
    ['an ESC', '\u001b[31mllama', /control character/],
    ['300 characters', 'a'.repeat(300), /model "a{10}.*" is not valid/],
    ['an empty namespace', '/llama3.2', /empty namespace/],
    ['an empty part in the middle', 'h//m', /empty namespace/],
    ['an empty tag', 'llama3.2:', /empty tag/],
    ['an empty model', 'ns/:x', /empty model/],
    ['a digest', `llama3.2@sha256:${'a'.repeat(64)}`, /digest/],
    ['a digest after a tag', `llama3.2:1b@sha256:${'a'.repeat(64)}`, /digest/],
    ['a bare digest', `@sha256:${'a'.repeat(64)}`, /digest/],
    ['an https scheme', 'https://registry.ollama.ai/library/llama3.2', /scheme/],
    ['an http scheme', 'http://evil.io/x/y:latest', /scheme/],
    ['leading space', ' llama3.2', /not valid/],
    ['trailing space', 'llama3.2 ', /not valid/],
    ['a dot in the namespace', 'registry.ollama.ai/llama3.2', /namespace "registry\.ollama\.ai" is not valid/],
    ['four parts', 'a/b/c/d', /host "a\/b" is not valid/],
    ['non-ASCII', 'llamа3.2', /not valid/],
    ['a colon in the model', 'x:20b:cloud', /model "x:20b" is not valid/],
    ['a wildcard', 'llama3.2:*', /tag "\*" is not valid/],
  ])('%s: refused with a clear reason', (_what, input, reason) => {
    const r = checkModelName(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(reason);
  });

  test('an error message never carries raw control bytes, and stays short', () => {
    const r = checkModelName(`\u001b]8;;https://evil\u0007${'x'.repeat(1000)}`);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
      expect(r.error.length).toBeLessThan(300);
    }
  });
});
