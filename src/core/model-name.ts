/**
 * Model names as Ollama reads them, and the allowlist patterns built on them.
 *
 * The grammar is Ollama's own, ported from types/model/name.go (ParseNameBare,
 * Merge with DefaultName, IsValid / isValidPart, DisplayShortest) of ollama
 * v0.33.0-rc2: `[host/][namespace/]model[:tag]`, split at the last ':' after
 * the last '/', then at the last two '/'; defaults registry.ollama.ai, library,
 * latest; parts compared case-insensitively (Name.EqualFold).
 *
 * On top of it the guard refuses what it will not forward although some Ollama
 * reads it: a digest (`@sha256:…`, which can name any model's layers; current
 * Ollama rejects it too, older ones resolved it) and a scheme (`https://host/…`:
 * not part of the model's identity, it only changes how a pull talks to a
 * registry, and `http://` downgrades that).
 */

export interface BareName {
  host: string;
  namespace: string;
  model: string;
  tag: string;
  /** What came before '://' in the host part ('' without). */
  scheme: string;
}

/** Go's model.MissingPart: a part promised by its separator but empty. */
const MISSING = '!MISSING!';
const DEFAULT_HOST = 'registry.ollama.ai';
const DEFAULT_NAMESPACE = 'library';
const DEFAULT_TAG = 'latest';

function cutLast(s: string, sep: string): [before: string, after: string, found: boolean] {
  const i = s.lastIndexOf(sep);
  return i < 0 ? [s, '', false] : [s.slice(0, i), s.slice(i + sep.length), true];
}
/** Go's cutPromised: an empty side of a found separator becomes MISSING. */
function cutPromised(s: string, sep: string): [before: string, after: string, found: boolean] {
  const [b, a, found] = cutLast(s, sep);
  return found ? [b || MISSING, a || MISSING, true] : [b, a, false];
}

/** Ollama's ParseNameBare: the parts as written, '' where absent. */
export function parseNameBare(input: string): BareName {
  const n: BareName = { host: '', namespace: '', model: '', tag: '', scheme: '' };
  let s = input;
  if (s.lastIndexOf(':') > s.lastIndexOf('/')) [s, n.tag] = cutPromised(s, ':');
  let promised: boolean;
  [s, n.model, promised] = cutPromised(s, '/');
  if (!promised) {
    n.model = s;
    return n;
  }
  [s, n.namespace, promised] = cutPromised(s, '/');
  if (!promised) {
    n.namespace = s;
    return n;
  }
  const i = s.indexOf('://');
  if (i >= 0) {
    n.scheme = s.slice(0, i);
    n.host = s.slice(i + 3);
  } else {
    n.host = s;
  }
  return n;
}

/** Ollama's Merge(n, DefaultName()): host, namespace and tag filled in where empty. */
export function withDefaults(n: BareName): BareName {
  return { ...n, host: n.host || DEFAULT_HOST, namespace: n.namespace || DEFAULT_NAMESPACE, tag: n.tag || DEFAULT_TAG, scheme: n.scheme || 'https' };
}

type Kind = 'host' | 'namespace' | 'model' | 'tag';
const KINDS: readonly Kind[] = ['host', 'namespace', 'model', 'tag'];
/** isValidPart: 1-350 (host) or 1-80 characters, the first alphanumeric or '_'; '.' not in a namespace, ':' only in a host. */
const PART_RE: Record<Kind, RegExp> = {
  host: /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}$/,
  namespace: /^[A-Za-z0-9_][A-Za-z0-9_-]{0,79}$/,
  model: /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$/,
  tag: /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$/,
};
const RULE: Record<Kind, string> = {
  host: '1-350 letters, digits, "_", "-", "." or ":"',
  namespace: '1-80 letters, digits, "_" or "-"',
  model: '1-80 letters, digits, "_", "-" or "."',
  tag: '1-80 letters, digits, "_", "-" or "."',
};

/** Ollama's IsValid (= IsFullyQualified): every part present and valid. */
export function isFullyQualified(n: BareName): boolean {
  return KINDS.every((k) => PART_RE[k].test(n[k]));
}

/** Ollama's String(): the parts that are set, scheme left out. */
export function nameString(n: BareName): string {
  return `${n.host ? `${n.host}/` : ''}${n.namespace ? `${n.namespace}/` : ''}${n.model}${n.tag ? `:${n.tag}` : ''}`;
}

/** Ollama's DisplayShortest: host and namespace only where they are not the defaults. */
export function displayShortest(n: BareName): string {
  const prefix =
    n.host.toLowerCase() !== DEFAULT_HOST ? `${n.host}/${n.namespace}/` : n.namespace.toLowerCase() !== DEFAULT_NAMESPACE ? `${n.namespace}/` : '';
  return `${prefix}${n.model}:${n.tag}`;
}

/** A client-chosen string for an error message: printable ASCII only, at most 40 characters. */
function quote(s: string): string {
  const cut = s.length > 40 ? `${s.slice(0, 40)}…` : s;
  return `"${cut.replace(/[^\x20-\x7e…]|["\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))}"`;
}

export interface ParsedName {
  ok: true;
  /** Lower-case host, namespace, model and tag, defaults filled in. */
  parts: { host: string; namespace: string; model: string; tag: string };
  /** host/namespace/model:tag, lower case: what allowlists compare. */
  full: string;
  /** The shortest form of `full` (Ollama's DisplayShortest): what records and metrics show. */
  display: string;
}
export type NameCheck = ParsedName | { ok: false; error: string };

/** A name as the guard reads it, with its parts; or why it is refused. */
export function parseModelName(s: string): NameCheck {
  if (s === '') return { ok: false, error: 'model name is empty' };
  if (/[\u0000-\u001f\u007f-\u009f]/.test(s)) return { ok: false, error: `model name ${quote(s)} contains a control character` };
  if (s.includes('@')) return { ok: false, error: `model name ${quote(s)} has a digest ("@…"): digests are not accepted, name the model by its tag` };
  if (s.includes('://')) return { ok: false, error: `model name ${quote(s)} has a scheme ("…://"): write the name without it` };
  const n = withDefaults(parseNameBare(s));
  for (const k of KINDS) {
    if (n[k] === MISSING) return { ok: false, error: `model name ${quote(s)} has an empty ${k}` };
    if (!PART_RE[k].test(n[k])) {
      return { ok: false, error: `model name ${quote(s)}: the ${k} ${quote(n[k])} is not valid (${RULE[k]}, starting with a letter, digit or "_")` };
    }
  }
  const parts = { host: n.host.toLowerCase(), namespace: n.namespace.toLowerCase(), model: n.model.toLowerCase(), tag: n.tag.toLowerCase() };
  return { ok: true, parts, full: `${parts.host}/${parts.namespace}/${parts.model}:${parts.tag}`, display: displayShortest({ ...parts, scheme: '' }) };
}

/** A name as the guard reads it: Ollama's grammar, defaults, case folded; or why it is refused. */
export function checkModelName(s: string): { ok: true; full: string; display: string } | { ok: false; error: string } {
  const r = parseModelName(s);
  return r.ok ? { ok: true, full: r.full, display: r.display } : r;
}

/** The display form of a name (lower case, shortest); a name that does not parse comes back lower-cased. */
export function normaliseModel(s: string): string {
  const r = parseModelName(s);
  return r.ok ? r.display : s.toLowerCase();
}

// ---- patterns -------------------------------------------------------------

/**
 * An allowlist entry: a name (`llama3.2` = registry.ollama.ai/library/llama3.2:latest),
 * a name with any tag (`llama3.2:*`), or every model of a namespace (`alice/*`,
 * `host/alice/*`; the namespace must be written out).
 */
export type ModelPattern = { kind: 'exact'; full: string } | { kind: 'anyTag'; base: string } | { kind: 'anyModel'; namespace: string };

export function parseModelPattern(s: string): { ok: true; pattern: ModelPattern } | { ok: false; error: string } {
  if (s.endsWith('/*')) {
    const prefix = s.slice(0, -2);
    const r = prefix === '' ? null : parseModelName(`${prefix}/x`);
    if (!r?.ok) return { ok: false, error: `pattern ${quote(s)}: "…/*" needs a namespace before it, like "alice/*"` };
    return { ok: true, pattern: { kind: 'anyModel', namespace: `${r.parts.host}/${r.parts.namespace}` } };
  }
  if (s.endsWith(':*')) {
    const base = s.slice(0, -2);
    if (base.lastIndexOf(':') > base.lastIndexOf('/')) return { ok: false, error: `pattern ${quote(s)} has two tags` };
    const r = parseModelName(base);
    if (!r.ok) return r;
    return { ok: true, pattern: { kind: 'anyTag', base: `${r.parts.host}/${r.parts.namespace}/${r.parts.model}` } };
  }
  const r = parseModelName(s);
  return r.ok ? { ok: true, pattern: { kind: 'exact', full: r.full } } : r;
}

/**
 * The entries of a stored list that still parse (null stays null). Older releases accepted
 * names Ollama reads otherwise (registry.ollama.ai/x, library/ns/m): dropping them only
 * narrows what a list allows, and an emptied list allows nothing.
 */
export function usablePatterns(list: readonly string[] | null): string[] | null {
  return list === null ? null : list.filter((p) => parseModelPattern(p).ok);
}

export interface CompiledPatterns {
  exact: Set<string>;
  anyTag: Set<string>;
  anyModel: Set<string>;
}
const compiled = new WeakMap<readonly string[], CompiledPatterns>();

/** The patterns of a list as sets (cached per list). An entry that does not parse matches nothing. */
function compile(list: readonly string[]): CompiledPatterns {
  let c = compiled.get(list);
  if (!c) {
    c = { exact: new Set(), anyTag: new Set(), anyModel: new Set() };
    for (const entry of list) {
      const r = parseModelPattern(entry);
      if (!r.ok) continue;
      const p = r.pattern;
      if (p.kind === 'exact') c.exact.add(p.full);
      else if (p.kind === 'anyTag') c.anyTag.add(p.base);
      else c.anyModel.add(p.namespace);
    }
    compiled.set(list, c);
  }
  return c;
}

/** Whether a parsed name matches one of the patterns of `list`. */
export function matchesPatterns(list: readonly string[], name: ParsedName): boolean {
  const c = compile(list);
  const { host, namespace, model } = name.parts;
  return c.exact.has(name.full) || c.anyTag.has(`${host}/${namespace}/${model}`) || c.anyModel.has(`${host}/${namespace}`);
}

/** Parses and matches in one step; a name that does not parse matches nothing. */
export function nameMatches(list: readonly string[], s: string): boolean {
  const r = parseModelName(s);
  return r.ok && matchesPatterns(list, r);
}

