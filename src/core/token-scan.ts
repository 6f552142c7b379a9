/**
 * Finds the token counts in an Ollama response while it streams past, without
 * holding the body: Ollama's `"prompt_eval_count":N` / `"eval_count":N`
 * (NDJSON lines or one JSON object) and OpenAI's `"usage":{"prompt_tokens":N,
 * "completion_tokens":M}` (SSE `data:` lines or one JSON object).
 *
 * Why matching bytes is safe: in valid JSON a `"` inside a string value is
 * always written `\"`, so the bytes `"eval_count"` followed by `:` can only be
 * an object key named exactly eval_count (model output saying
 * `"eval_count":999` arrives as `\"eval_count\":999` and never matches). The
 * opening quote must not itself be escaped (a key such as `x\"eval_count`),
 * which is checked by counting the backslashes before it, across chunks too.
 * The last occurrence wins; a real nested key (e.g. in tool-call arguments of
 * native /api/chat) is overridden by the final statistics that follow it.
 */

/** Bytes kept from one chunk to the next: longer than any key + value we look for. */
const TAIL = 512;
const MAX_DIGITS = 15;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;

type Key = 'prompt_eval_count' | 'eval_count' | 'prompt_tokens' | 'completion_tokens';

/** Each needle ends with the closing quote; the key's start is found by looking back. */
const NEEDLES: readonly { needle: Buffer; keys: readonly Key[] }[] = [
  { needle: Buffer.from('eval_count"'), keys: ['eval_count', 'prompt_eval_count'] },
  { needle: Buffer.from('_tokens"'), keys: ['prompt_tokens', 'completion_tokens'] },
];
const KEY_BYTES: Record<Key, Buffer> = {
  prompt_eval_count: Buffer.from('"prompt_eval_count"'),
  eval_count: Buffer.from('"eval_count"'),
  prompt_tokens: Buffer.from('"prompt_tokens"'),
  completion_tokens: Buffer.from('"completion_tokens"'),
};

const isWs = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const isDigit = (c: number | undefined): c is number => c !== undefined && c >= 0x30 && c <= 0x39;
/** What may follow a JSON integer that is a whole value. */
const ends = (c: number): boolean => c === 0x2c || c === 0x7d || c === 0x5d || isWs(c);

export interface TokenScanner {
  /** Feed the next response chunk, as sent to the client. */
  push(chunk: Buffer): void;
  /** The counts found so far (last occurrence wins), or null when none were seen. */
  result(): { promptTokens: number; evalTokens: number } | null;
}

export function createTokenScanner(): TokenScanner {
  /** The last bytes of everything pushed so far. */
  let tail = Buffer.alloc(0);
  /** Bytes pushed before `tail` starts. */
  let tailStart = 0;
  /** Whether an odd run of backslashes ends right before `tail` starts. */
  let oddBefore = false;
  /** Per key: the value and the stream offset of its last occurrence. */
  const seen = new Map<Key, { value: number; at: number }>();

  /** Whether the byte at `i` of `data` is preceded by an odd number of backslashes. */
  function escaped(data: Buffer, i: number, odd: boolean): boolean {
    let j = i - 1;
    let run = 0;
    while (j >= 0 && data[j] === BACKSLASH) {
      run++;
      j--;
    }
    return (run % 2 === 1) !== (j < 0 && odd);
  }

  /** The integer after `"key"` ending at `end` (exclusive): a number, null if not a count, 'more' if cut off. */
  function valueAfter(data: Buffer, end: number): number | null | 'more' {
    let i = end;
    while (i < data.length && isWs(data[i])) i++;
    if (i >= data.length) return 'more';
    if (data[i] !== COLON) return null;
    i++;
    while (i < data.length && isWs(data[i])) i++;
    if (i >= data.length) return 'more';
    const start = i;
    while (i < data.length && isDigit(data[i])) i++;
    if (i === start || i - start > MAX_DIGITS) return null;
    if (i >= data.length) return 'more';
    return ends(data[i] ?? 0) ? Number(data.toString('latin1', start, i)) : null;
  }

  function scan(data: Buffer, base: number, odd: boolean): void {
    for (const { needle, keys } of NEEDLES) {
      for (let at = data.indexOf(needle); at !== -1; at = data.indexOf(needle, at + 1)) {
        const end = at + needle.length;
        for (const key of keys) {
          const kb = KEY_BYTES[key];
          const q = end - kb.length;
          if (q < 0 || !data.subarray(q, end).equals(kb) || escaped(data, q, odd)) continue;
          const v = valueAfter(data, end);
          // Cut off: left in the tail, found again with the next chunk.
          if (typeof v === 'number') {
            const prev = seen.get(key);
            if (!prev || prev.at <= base + q) seen.set(key, { value: v, at: base + q });
          }
        }
      }
    }
  }

  return {
    push(chunk) {
      if (chunk.length === 0) return;
      const data = tail.length ? Buffer.concat([tail, chunk]) : chunk;
      scan(data, tailStart, oddBefore);
      const cut = Math.max(0, data.length - TAIL);
      if (cut > 0) {
        let j = cut - 1;
        let run = 0;
        while (j >= 0 && data[j] === BACKSLASH) {
          run++;
          j--;
        }
        oddBefore = (run % 2 === 1) !== (j < 0 && oddBefore);
      }
      // Copied so that a large chunk is not kept alive through a view.
      // A buffer of its own: Buffer.from would place it in Node's shared 8 KiB pool and keep a
      // whole slab alive for every open stream.
      const rest = data.subarray(cut);
      tail = Buffer.allocUnsafeSlow(rest.length);
      rest.copy(tail);
      tailStart += cut;
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
