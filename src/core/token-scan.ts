/**
 * Finds the token counts in an Ollama response while it streams past, without
 * holding the body: Ollama's own final statistics — `prompt_eval_count` and
 * `eval_count` at the top level of a JSON document (the final NDJSON line, or
 * the one object of a non-streamed answer) — and OpenAI's top-level
 * `"usage":{"prompt_tokens":N,"completion_tokens":M}` (SSE `data:` lines or
 * one object).
 *
 * It follows the JSON structure byte by byte (strings, escapes, nesting) so
 * that only those positions count: a key of the same name anywhere deeper —
 * in a tool call's arguments, which native /api/chat sends as an object the
 * model wrote — is not a count, and neither is model text (inside strings).
 * A stream cut before the final statistics therefore has no counts, and is
 * charged an estimate instead (see the guard's exchange). Each newline-
 * separated document is read on its own; the last count seen wins.
 */

const MAX_DIGITS = 15;
/** Longest key that matters ("prompt_eval_count", "completion_tokens"); longer strings are not collected. */
const MAX_KEY = 17;

type Key = 'prompt_eval_count' | 'eval_count' | 'prompt_tokens' | 'completion_tokens';
const TOP_KEYS: ReadonlySet<string> = new Set(['prompt_eval_count', 'eval_count']);
const USAGE_KEYS: ReadonlySet<string> = new Set(['prompt_tokens', 'completion_tokens']);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

export interface TokenScanner {
  /** Feed the next response chunk, as sent to the client. */
  push(chunk: Buffer): void;
  /** The counts found so far (last occurrence wins), or null when none were seen. */
  result(): { promptTokens: number; evalTokens: number } | null;
}

export function createTokenScanner(): TokenScanner {
  // The structure so far: one entry per open container — true for an object, false for an array —
  // and, for depth 2, whether it is the value of the top-level key "usage".
  const stack: boolean[] = [];
  let usageObject = false;
  let inString = false;
  let escaped = false;
  /** Where the next string in an object is a key. */
  let expectKey = false;
  /** The key string being read (only at depth 1, or 2 inside "usage"); null when not collected. */
  let keyBytes: number[] | null = null;
  /** The last complete key, waiting for its ':'. */
  let lastKey: string | null = null;
  /** The key whose value is being read, and its digits so far (-1: not a count). */
  let valueKey: string | null = null;
  let digits = 0;
  let digitCount = 0;
  let n = 0;
  /** Per key: the value and the order of its last occurrence. */
  const seen = new Map<Key, { value: number; at: number }>();

  const commitNumber = (): void => {
    if (valueKey !== null && digitCount > 0 && digitCount <= MAX_DIGITS) seen.set(valueKey as Key, { value: digits, at: n++ });
    valueKey = null;
    digitCount = 0;
    digits = 0;
  };
  /** Whether a key at this position is one we count. */
  const counted = (key: string): boolean =>
    (stack.length === 1 && TOP_KEYS.has(key)) || (stack.length === 2 && usageObject && USAGE_KEYS.has(key));

  function step(c: number): void {
    if (inString) {
      if (escaped) escaped = false;
      else if (c === BACKSLASH) escaped = true;
      else if (c === QUOTE) {
        inString = false;
        if (keyBytes) {
          lastKey = keyBytes.length <= MAX_KEY ? String.fromCharCode(...keyBytes) : null;
          keyBytes = null;
        }
      } else if (keyBytes && keyBytes.length <= MAX_KEY) keyBytes.push(c);
      return;
    }
    if (valueKey !== null) {
      if (c >= 0x30 && c <= 0x39 && digitCount <= MAX_DIGITS) {
        digits = digits * 10 + (c - 0x30);
        digitCount++;
        return;
      }
      // A whole integer ends at one of these; anything else (".", "e", a quote) is not a count.
      if (c === COMMA || c === CLOSE_OBJECT || c === CLOSE_ARRAY || c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
        if (digitCount > 0 || (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d)) commitNumber();
      } else {
        valueKey = null;
        digitCount = 0;
        digits = 0;
      }
    }
    switch (c) {
      case QUOTE:
        inString = true;
        // Keys are collected only where a counted key can be.
        keyBytes = expectKey && (stack.length === 1 || (stack.length === 2 && usageObject)) ? [] : null;
        if (!expectKey) lastKey = null;
        break;
      case COLON:
        if (stack[stack.length - 1] === true && lastKey !== null) {
          if (counted(lastKey)) {
            valueKey = lastKey;
            digits = 0;
            digitCount = 0;
          }
          // The value of the top-level "usage" key opens the only depth-2 object that counts.
          pendingUsage = stack.length === 1 && lastKey === 'usage';
        } else pendingUsage = false;
        expectKey = false;
        lastKey = null;
        break;
      case OPEN_OBJECT:
      case OPEN_ARRAY:
        stack.push(c === OPEN_OBJECT);
        if (stack.length === 2) usageObject = pendingUsage && c === OPEN_OBJECT;
        pendingUsage = false;
        expectKey = c === OPEN_OBJECT;
        break;
      case CLOSE_OBJECT:
      case CLOSE_ARRAY:
        stack.pop();
        if (stack.length < 2) usageObject = false;
        expectKey = false;
        break;
      case COMMA:
        expectKey = stack[stack.length - 1] === true;
        pendingUsage = false;
        break;
      case 0x0a:
        // A new document (NDJSON line, SSE event) starts at depth 0 after a newline at depth 0.
        if (stack.length === 0) expectKey = false;
        break;
      default:
        // Anything else outside a string (true, false, null, numbers not counted, "data: ") ends a pending "usage".
        if (c !== 0x20 && c !== 0x09 && c !== 0x0d) pendingUsage = false;
    }
  }
  let pendingUsage = false;

  return {
    push(chunk) {
      for (let i = 0; i < chunk.length; i++) step(chunk[i]!);
    },
    result() {
      const at = (k: Key): number => seen.get(k)?.at ?? -1;
      const value = (k: Key): number => seen.get(k)?.value ?? 0;
      const native = Math.max(at('prompt_eval_count'), at('eval_count'));
      const openai = Math.max(at('prompt_tokens'), at('completion_tokens'));
      if (native < 0 && openai < 0) return null;
      return openai > native
        ? { promptTokens: value('prompt_tokens'), evalTokens: value('completion_tokens') }
        : { promptTokens: value('prompt_eval_count'), evalTokens: value('eval_count') };
    },
  };
}
