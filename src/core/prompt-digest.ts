/**
 * The prompt audit's digest: what the model will read, in one canonical text.
 * Pure; no I/O.
 */
import { createHash } from 'node:crypto';

export interface PromptDigest {
  /** SHA-256 (hex) of `text`. */
  sha256: string;
  /** Byte length (UTF-8) of `text`. */
  length: number;
  /** The canonical text: kept as the record's promptText when logPrompts is on. */
  text: string;
}

/** The same value with every object's keys in code-unit order (arrays keep theirs). */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v !== 'object' || v === null) return v;
  // fromEntries defines own properties, so a "__proto__" key stays a key.
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
}

/**
 * The canonical text is the JSON array of [field, value] pairs for the
 * `fields` the request has (null counts as absent, as it does for Ollama), in
 * the order of `fields`, each value with its objects' keys sorted:
 * `{"system":"S","prompt":"P"}` → `[["prompt","P"],["system","S"]]`. Fields are
 * named, so no two different requests share a text; options, stream and key
 * order do not change it. Null when none of the fields is present. Throws
 * RangeError on values nested too deeply to serialise.
 */
export function promptDigest(fields: readonly string[], req: Readonly<Record<string, unknown>>): PromptDigest | null {
  const pairs: [string, unknown][] = [];
  for (const f of fields) {
    const v = Object.hasOwn(req, f) ? req[f] : undefined;
    if (v !== undefined && v !== null) pairs.push([f, sortKeys(v)]);
  }
  if (pairs.length === 0) return null;
  const text = JSON.stringify(pairs);
  const bytes = Buffer.from(text, 'utf8');
  return { sha256: createHash('sha256').update(bytes).digest('hex'), length: bytes.length, text };
}
