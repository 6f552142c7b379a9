/**
 * The Ollama HTTP API as the guard sees it: which endpoints exist, which
 * methods they take, where their model names and prompts are, and the one
 * path form the guard accepts. Pure data and string checks, no I/O.
 */

export type EndpointName =
  | 'generate'
  | 'chat'
  | 'embed'
  | 'embeddings'
  | 'tags'
  | 'show'
  | 'ps'
  | 'version'
  | 'v1.chat'
  | 'v1.completions'
  | 'v1.embeddings'
  | 'v1.models'
  | 'pull'
  | 'push'
  | 'delete'
  | 'create'
  | 'copy'
  | 'blobs';

export const ENDPOINT_NAMES: readonly EndpointName[] = Object.freeze([
  'generate', 'chat', 'embed', 'embeddings', 'tags', 'show', 'ps', 'version',
  'v1.chat', 'v1.completions', 'v1.embeddings', 'v1.models',
  'pull', 'push', 'delete', 'create', 'copy', 'blobs',
] as const);

/** Endpoints that change what is installed on the GPU host: off unless a policy names them. */
const ADMIN_ENDPOINTS: ReadonlySet<EndpointName> = new Set(['pull', 'push', 'delete', 'create', 'copy', 'blobs']);

/** Allowed when a policy does not say otherwise: everything except pull, push, delete, create, copy, blobs. */
export const DEFAULT_ENDPOINTS: readonly EndpointName[] = Object.freeze(ENDPOINT_NAMES.filter((n) => !ADMIN_ENDPOINTS.has(n)));

export interface EndpointDef {
  name: EndpointName;
  /** Methods Ollama routes for this path, e.g. ['POST']; GET endpoints also allow HEAD. */
  methods: readonly string[];
  /** What the request body is: JSON, nothing, or raw bytes (blob uploads). */
  body: 'json' | 'none' | 'binary';
  /**
   * Where the model name(s) are: one group per required model, each a list of
   * body fields where the first one holding a non-empty string wins (Ollama's
   * `cmp.Or(req.Model, req.Name)`). copy: [['source'],['destination']]; [] = no model.
   */
  modelFields: readonly (readonly string[])[];
  /** Like modelFields, but may be absent; checked against the allowlist when present (create's `from`). */
  optionalModelFields?: readonly (readonly string[])[];
  /**
   * Models the request creates, overwrites, deletes, pulls or pushes, in the same
   * shape as modelFields (each group required): checked against the policy's
   * writeModels. A group listed here and in modelFields (push) must pass both.
   */
  writeModelFields?: readonly (readonly string[])[];
  /** Fields mapping file names to blob digests (create's files, adapters, draft_files). */
  digestFields?: readonly string[];
  /** The model is the last path segment (/v1/models/:model). */
  modelFromPath?: boolean;
  /**
   * Every request field the model reads (PROMPT_FIELDS), in the order the
   * prompt digest lists them; [] = no prompt.
   */
  promptFields: readonly string[];
  /**
   * Runs inference on a model (generation, chat and embeddings alike): counts
   * toward concurrent streams and the daily token budget, and gets the
   * keep_alive / num_ctx clamps.
   */
  generative: boolean;
  /**
   * Whether the response streams: 'default-on' = unless the body says
   * `"stream": false` (native Ollama); 'opt-in' = only with `"stream": true`
   * (OpenAI-compatible /v1); 'none' = never.
   */
  streaming: 'default-on' | 'opt-in' | 'none';
  /**
   * The response lists models and must be filtered. /api/ps answers with the
   * same shape as /api/tags and is filtered the same way.
   */
  listsModels?: 'tags' | 'v1.models';
}

const GET = Object.freeze(['GET', 'HEAD']);
const POST = Object.freeze(['POST']);
const MODEL = Object.freeze([Object.freeze(['model'])]);
/** Management endpoints still accept the pre-0.5 `name` field. */
const MODEL_OR_NAME = Object.freeze([Object.freeze(['model', 'name'])]);
const NONE = Object.freeze([]) as readonly (readonly string[])[];

function def(d: EndpointDef): EndpointDef {
  return Object.freeze(d);
}

/**
 * What the model reads, per inference endpoint, from Ollama's api/types.go and openai/openai.go:
 * - generate (GenerateRequest): the prompt, the fill-in-the-middle suffix, the system prompt and
 *   template that replace the model's own, images, the context tokens of an earlier answer, and
 *   raw (whether the template is applied at all);
 * - chat (ChatRequest): messages, whose content, images, tool calls and tool results are all
 *   rendered into the prompt, and the tool definitions;
 * - embed / embeddings / v1 embeddings: input (embeddings: prompt);
 * - v1 chat: messages, tools and tool_choice; v1 completions: prompt and suffix.
 * Left out: options, format, think, keep_alive, stream, truncate and the like steer sampling,
 * output grammar or scheduling, not what the prompt says.
 */
export const PROMPT_FIELDS: Readonly<Partial<Record<EndpointName, readonly string[]>>> = Object.freeze({
  generate: Object.freeze(['prompt', 'suffix', 'system', 'template', 'images', 'context', 'raw']),
  chat: Object.freeze(['messages', 'tools']),
  embed: Object.freeze(['input']),
  embeddings: Object.freeze(['prompt']),
  'v1.chat': Object.freeze(['messages', 'tools', 'tool_choice']),
  'v1.completions': Object.freeze(['prompt', 'suffix']),
  'v1.embeddings': Object.freeze(['input']),
});
const NO_PROMPT = Object.freeze([]) as readonly string[];

const infer = (name: EndpointName, streaming: EndpointDef['streaming']): EndpointDef =>
  def({ name, methods: POST, body: 'json', modelFields: MODEL, promptFields: PROMPT_FIELDS[name] ?? NO_PROMPT, generative: true, streaming });
const manage = (name: EndpointName, methods: readonly string[], streaming: EndpointDef['streaming']): EndpointDef =>
  def({ name, methods, body: 'json', modelFields: MODEL_OR_NAME, promptFields: NO_PROMPT, generative: false, streaming });
/** Management endpoints whose model is a write target (pull, push, delete, create). */
const write = (name: EndpointName, methods: readonly string[], streaming: EndpointDef['streaming']): EndpointDef =>
  def({ ...manage(name, methods, streaming), modelFields: NONE, writeModelFields: MODEL_OR_NAME });
const list = (name: EndpointName, listsModels?: EndpointDef['listsModels']): EndpointDef =>
  def({ name, methods: GET, body: 'none', modelFields: NONE, promptFields: NO_PROMPT, generative: false, streaming: 'none', ...(listsModels ? { listsModels } : {}) });

const EXACT: ReadonlyMap<string, EndpointDef> = new Map([
  ['/', list('version')],
  ['/api/version', list('version')],
  ['/api/tags', list('tags', 'tags')],
  ['/api/ps', list('ps', 'tags')],
  ['/v1/models', list('v1.models', 'v1.models')],
  ['/api/generate', infer('generate', 'default-on')],
  ['/api/chat', infer('chat', 'default-on')],
  ['/api/embed', infer('embed', 'none')],
  ['/api/embeddings', infer('embeddings', 'none')],
  ['/v1/chat/completions', infer('v1.chat', 'opt-in')],
  ['/v1/completions', infer('v1.completions', 'opt-in')],
  ['/v1/embeddings', infer('v1.embeddings', 'none')],
  ['/api/show', manage('show', POST, 'none')],
  ['/api/pull', write('pull', POST, 'default-on')],
  // Pushing sends the model away: it must be readable as well as writable.
  ['/api/push', def({ ...write('push', POST, 'default-on'), modelFields: MODEL_OR_NAME })],
  ['/api/delete', write('delete', Object.freeze(['DELETE']), 'none')],
  [
    '/api/create',
    def({ ...write('create', POST, 'default-on'), optionalModelFields: Object.freeze([Object.freeze(['from'])]), digestFields: Object.freeze(['files', 'adapters', 'draft_files']) }),
  ],
  [
    '/api/copy',
    def({ name: 'copy', methods: POST, body: 'json', modelFields: Object.freeze([Object.freeze(['source'])]), writeModelFields: Object.freeze([Object.freeze(['destination'])]), promptFields: NO_PROMPT, generative: false, streaming: 'none' }),
  ],
]);

const V1_MODEL = def({ ...list('v1.models'), modelFromPath: true });
const BLOBS = def({ name: 'blobs', methods: Object.freeze(['HEAD', 'POST']), body: 'binary', modelFields: NONE, promptFields: NO_PROMPT, generative: false, streaming: 'none' });

const MAX_URL = 2048;
const PATH_CHARS = /^[A-Za-z0-9._~:@!$&'()*+,=\/-]*$/;

/**
 * Strips the query string; returns the path only if it is already canonical,
 * otherwise a reason. Canonical = starts with '/', only [A-Za-z0-9._~:@!$&'()*+,=-]
 * and '/' (no '%' at all, so nothing can decode into something else), no empty
 * segment, no '.' or '..' segment, no trailing slash except the root '/'.
 * Absolute-form URLs and '*' are rejected. At most 2048 characters.
 */
export function canonicalPath(rawUrl: string): { ok: true; path: string } | { ok: false; reason: string } {
  if (rawUrl.length > MAX_URL) return { ok: false, reason: `request target longer than ${MAX_URL} characters` };
  const q = rawUrl.indexOf('?');
  const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  if (!path.startsWith('/')) return { ok: false, reason: 'request target must be a path starting with "/"' };
  if (!PATH_CHARS.test(path)) {
    const bad = [...path].find((c) => !PATH_CHARS.test(c)) ?? '';
    const shown = /^[\x21-\x7e]$/.test(bad) ? `"${bad}"` : `U+${(bad.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`;
    return { ok: false, reason: `path contains ${shown}` };
  }
  if (path === '/') return { ok: true, path };
  const segments = path.slice(1).split('/');
  for (const [i, seg] of segments.entries()) {
    if (seg === '') return { ok: false, reason: i === segments.length - 1 ? 'path ends with "/"' : 'path has an empty segment ("//")' };
    if (seg === '.' || seg === '..') return { ok: false, reason: `path has a "${seg}" segment` };
  }
  return { ok: true, path };
}

const BLOB_PATH = /^\/api\/blobs\/sha256:[0-9a-fA-F]{64}$/;
/** gin's `:model` matches one segment, so a namespaced model (a/b) is not reachable here either. */
const V1_MODEL_PATH = /^\/v1\/models\/([^/]+)$/;

/**
 * Exact, case-sensitive match against the routes Ollama serves (its router is
 * case-sensitive, so '/API/PULL' is unknown). Expects a canonical path.
 */
export function matchEndpoint(
  path: string,
  method: string,
): { kind: 'unknown' } | { kind: 'method'; endpoint: EndpointDef; allow: string[] } | { kind: 'ok'; endpoint: EndpointDef; pathModel?: string } {
  let endpoint = EXACT.get(path);
  let pathModel: string | undefined;
  if (!endpoint && BLOB_PATH.test(path)) endpoint = BLOBS;
  if (!endpoint) {
    const m = V1_MODEL_PATH.exec(path);
    if (m) {
      endpoint = V1_MODEL;
      pathModel = m[1];
    }
  }
  if (!endpoint) return { kind: 'unknown' };
  if (!endpoint.methods.includes(method)) return { kind: 'method', endpoint, allow: [...endpoint.methods] };
  return pathModel === undefined ? { kind: 'ok', endpoint } : { kind: 'ok', endpoint, pathModel };
}
