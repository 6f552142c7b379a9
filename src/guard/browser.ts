/**
 * The browser side of the guard: the chat page (web/chat/) for a connection
 * with a good certificate, the help page for a browser without one, and the
 * page's files under /_wgo/. The files are read once, when the guard starts,
 * into memory; a request is answered from that map by exact path, so no
 * filesystem path is ever built from a URL. Which requests are browser
 * requests is decided in core/web-request.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Refusal } from '../core/policy.js';
import type { RequestRecord } from '../core/request-record.js';
import { WEB_PREFIX, isNavigation, webRoute, type NavigationInput } from '../core/web-request.js';
import { WgoError } from '../errors.js';

/** web/chat at the top of the installed app: two levels up from src/guard and from dist/guard alike. */
export const CHAT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web', 'chat');

/**
 * Every answer from this module carries it: nothing but this origin's own
 * files, no inline script or style, no framing, no forms, no <base>.
 */
export const CHAT_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The endpoint name in request records for what this module answers: not an Ollama endpoint, never forwarded. */
export const WEB_ENDPOINT = 'web';

interface WebFile {
  body: Buffer;
  type: string;
  etag: string;
}

export interface ChatSite {
  /** The chat page, for a navigation to / by a peer. */
  page: WebFile;
  /** The page for a browser without a good certificate. */
  help: WebFile;
  /** The page's files by exact request path (/_wgo/...). */
  assets: ReadonlyMap<string, WebFile>;
}

/** The files of web/chat and the request path each is served under (null: not served by path). */
const FILES: readonly { file: string; path: string | null; type: string }[] = [
  { file: 'index.html', path: null, type: 'text/html; charset=utf-8' },
  { file: 'help.html', path: null, type: 'text/html; charset=utf-8' },
  { file: 'chat.js', path: `${WEB_PREFIX}chat.js`, type: 'text/javascript; charset=utf-8' },
  { file: 'chat.css', path: `${WEB_PREFIX}chat.css`, type: 'text/css; charset=utf-8' },
  { file: 'icon.svg', path: `${WEB_PREFIX}icon.svg`, type: 'image/svg+xml' },
];

/** Reads the chat page's files into memory (at guard start); a missing file stops the guard with its path. */
export function loadChatSite(dir: string = CHAT_DIR): ChatSite {
  const read = (f: (typeof FILES)[number]): WebFile => {
    let body: Buffer;
    try {
      body = readFileSync(join(dir, f.file));
    } catch (e) {
      throw new WgoError('INTERNAL', `cannot read the chat page file ${join(dir, f.file)} (is web/chat installed next to dist/?): ${(e as Error).message}`, { cause: e });
    }
    return { body, type: f.type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
  };
  const byName = new Map(FILES.map((f) => [f.file, read(f)]));
  const assets = new Map<string, WebFile>();
  for (const f of FILES) if (f.path) assets.set(f.path, byName.get(f.file)!);
  return { page: byName.get('index.html')!, help: byName.get('help.html')!, assets };
}

type Draft = Omit<RequestRecord, 'seq'>;

const navInput = (req: IncomingMessage): NavigationInput => ({
  method: req.method ?? '',
  fetchMode: req.headers['sec-fetch-mode'],
  fetchDest: req.headers['sec-fetch-dest'],
  accept: req.headers.accept,
  userAgent: req.headers['user-agent'],
});

/**
 * Answers a request that belongs to the browser side and fills in its record;
 * false when the request is an API request and goes on to the policy.
 * `refused` is why the connection's certificate is not good (null when it is):
 * then a navigation gets the help page with that status, and anything else is
 * left to the caller's JSON refusal.
 */
export function answerBrowser(site: ChatSite, req: IncomingMessage, res: ServerResponse, draft: Draft, refused: Refusal | null): boolean {
  const nav = navInput(req);
  if (refused) {
    if (!isNavigation(nav)) return false;
    draft.endpoint = WEB_ENDPOINT;
    draft.refusal = refused.reason;
    send(req, res, draft, refused.status, site.help, { cache: 'no-store', close: true });
    return true;
  }
  const url = req.url ?? '';
  const route = webRoute(url, nav);
  if (route === 'api') return false;
  draft.endpoint = WEB_ENDPOINT;
  if (route === 'page') {
    send(req, res, draft, 200, site.page, { cache: 'no-store' });
    return true;
  }
  const file = site.assets.get(url);
  if (!file) {
    draft.refusal = 'web_not_found';
    send(req, res, draft, 404, { body: Buffer.from('not found\n'), type: 'text/plain; charset=utf-8', etag: '' }, { cache: 'no-store' });
  } else if (req.method !== 'GET' && req.method !== 'HEAD') {
    draft.refusal = 'method_not_allowed';
    send(req, res, draft, 405, { body: Buffer.from('method not allowed\n'), type: 'text/plain; charset=utf-8', etag: '' }, { cache: 'no-store', allow: 'GET, HEAD' });
  } else if (req.headers['if-none-match'] === file.etag) {
    send(req, res, draft, 304, file, { cache: 'no-cache', notModified: true });
  } else {
    send(req, res, draft, 200, file, { cache: 'no-cache' });
  }
  return true;
}

function send(
  req: IncomingMessage, res: ServerResponse, draft: Draft, status: number, file: WebFile,
  o: { cache: string; close?: boolean; allow?: string; notModified?: boolean },
): void {
  const headers: Record<string, string | number> = {
    'content-security-policy': CHAT_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-resource-policy': 'same-origin',
    'cross-origin-opener-policy': 'same-origin',
    'cache-control': o.cache,
  };
  if (file.etag) headers.etag = file.etag;
  if (o.allow) headers.allow = o.allow;
  // A request with a body (never read here) closes its connection: the body must not be parsed as the next request.
  const cl = req.headers['content-length'];
  if (o.close || (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined) headers.connection = 'close';
  const body = o.notModified || req.method === 'HEAD' ? null : file.body;
  if (!o.notModified) {
    headers['content-type'] = file.type;
    headers['content-length'] = file.body.length;
  }
  res.writeHead(status, headers);
  res.end(body ?? undefined);
  draft.status = status;
  draft.bytesOut = body?.length ?? 0;
}
