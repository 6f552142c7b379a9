/**
 * What the guard does with requests that come from a web browser: whether a
 * request from a web page may reach Ollama (same origin only), whether a
 * request is a browser navigation (which gets the chat page or the help page
 * instead of Ollama's JSON), and which paths belong to the page rather than to
 * Ollama. Pure string decisions on request headers, no I/O.
 */

/** Paths under this prefix are the chat page's own files; Ollama has no route there, and none is ever forwarded. */
export const WEB_PREFIX = '/_wgo/';

type HeaderValue = string | string[] | undefined;

export interface OriginInput {
  /** The Origin header, as received. */
  origin: HeaderValue;
  /** The Host header, as received. */
  host: HeaderValue;
  /** The Sec-Fetch-Site header, as received. */
  fetchSite: HeaderValue;
  /** The Referer header, as received (browsers without Fetch Metadata still send it; API clients never do). */
  referer?: HeaderValue;
  /** The request line and Fetch Metadata: a link to the chat page is a top-level navigation to `/`. */
  navigation?: { method: string; target: string; fetchMode: HeaderValue; fetchDest: HeaderValue };
}

/**
 * A browser holding a peer's .p12 must not be driven by another site: form
 * and text/plain POSTs need no CORS preflight, and the browser presents the
 * certificate to whoever makes it connect. Ollama's own clients send neither
 * Origin nor Sec-Fetch-Site, and browsers always send Origin on a cross-site
 * POST (and Sec-Fetch-Site on everything, where they support it).
 *
 * Allowed: no Origin and Sec-Fetch-Site absent, `none` (the user typed the
 * address) or `same-origin`; or an Origin exactly equal to `https://` + the
 * Host header with Sec-Fetch-Site absent or `same-origin` — the guard's own
 * chat page. Everything else is refused: another origin, `null`, `http://`,
 * a duplicated header, `same-site` (another port on the same host, such as the
 * admin UI) and `cross-site`. A DNS-rebinding page whose Host and Origin both
 * name the attacker's domain cannot get here: the browser would refuse the
 * guard's server certificate, which names the guard's address only.
 */
export function sameOriginAllowed(i: OriginInput): boolean {
  if (Array.isArray(i.fetchSite) || Array.isArray(i.origin) || Array.isArray(i.host)) return false;
  // A link to the page from anywhere (a chat app, a mail, the admin UI): the page is static and
  // starts nothing on its own, it cannot be framed (X-Frame-Options, frame-ancestors) and cuts
  // its opener (COOP). Only a top-level GET/HEAD of exactly `/`, which never reaches Ollama.
  if (i.origin === undefined && topLevelPageLoad(i.navigation)) return true;
  if (!refererAllowed(i.referer, i.host)) return false;
  const site = i.fetchSite;
  if (i.origin === undefined) return site === undefined || site === 'none' || site === 'same-origin';
  if (site !== undefined && site !== 'same-origin') return false;
  if (i.host === undefined || i.host === '') return false;
  return i.origin === `https://${i.host}`;
}

function topLevelPageLoad(n: OriginInput['navigation']): boolean {
  return !!n && (n.method === 'GET' || n.method === 'HEAD') && n.target === '/' && n.fetchMode === 'navigate' && n.fetchDest === 'document';
}

/** No Referer, or one on the guard's own https origin (the chat page itself sends none: no-referrer). */
function refererAllowed(referer: HeaderValue, host: string | undefined): boolean {
  if (referer === undefined) return true;
  if (Array.isArray(referer) || !host) return false;
  try {
    const r = new URL(referer);
    return r.protocol === 'https:' && r.origin === new URL(`https://${host}`).origin;
  } catch {
    return false;
  }
}

export interface NavigationInput {
  method: string;
  /** Sec-Fetch-Mode, Sec-Fetch-Dest and Accept, as received. */
  fetchMode: HeaderValue;
  fetchDest: HeaderValue;
  accept: HeaderValue;
  /** User-Agent: the Accept fallback (no Fetch Metadata) is for browsers only ("Mozilla/..."). */
  userAgent?: HeaderValue;
}

/**
 * Whether a GET or HEAD is a browser loading a page (and so gets HTML) rather
 * than an API client (which keeps getting what Ollama answers, and JSON
 * errors). Browsers mark navigations with `Sec-Fetch-Mode: navigate` /
 * `Sec-Fetch-Dest: document`; a browser without Fetch Metadata (older Safari)
 * is recognised by an Accept header whose most preferred type is text/html,
 * with a browser's User-Agent (Java's HttpURLConnection prefers text/html too).
 * API clients (curl, the ollama and openai clients, httpx) send `*\/*`,
 * `application/json` or nothing, so `GET /` from them still reaches Ollama.
 * When Fetch Metadata is present and says something else (a script's fetch(),
 * even with Accept: text/html), it is not a navigation.
 */
export function isNavigation(i: NavigationInput): boolean {
  if (i.method !== 'GET' && i.method !== 'HEAD') return false;
  const mode = one(i.fetchMode);
  const dest = one(i.fetchDest);
  if (mode !== undefined || dest !== undefined) return mode === 'navigate' || dest === 'document';
  // Java's HttpURLConnection also prefers text/html by default; every browser's User-Agent starts "Mozilla/".
  const accept = one(i.accept);
  return accept !== undefined && /^Mozilla\//.test(one(i.userAgent) ?? '') && preferredType(accept) === 'text/html';
}

const one = (v: HeaderValue): string | undefined => (Array.isArray(v) ? v[0] : v);

/** The media range with the highest q in an Accept header (the first one among equals), lower-cased; null when none parses. */
export function preferredType(accept: string): string | null {
  let best: string | null = null;
  let bestQ = 0;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    if (!type || !/^[\w.+*-]+\/[\w.+*-]+$/.test(type)) continue;
    let q = 1;
    for (const p of params) {
      if (!/^q\s*=/i.test(p)) continue;
      // RFC 9110 qvalue: 0 to 1 with at most three decimals; anything else drops this media range.
      const m = /^q\s*=\s*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?|\.\d{1,3})$/i.exec(p);
      q = m ? Number(m[1]) : NaN;
    }
    if (!Number.isFinite(q) || q <= 0 || q > 1) continue;
    if (q > bestQ) {
      best = type.toLowerCase();
      bestQ = q;
    }
  }
  return best;
}

/**
 * What a request is to the browser side of the guard:
 * - `page`: a browser navigation to `/` (the chat page, or the help page without a certificate);
 * - `asset`: a path under WEB_PREFIX (the page's files; looked up exactly, never forwarded);
 * - `api`: anything else, which goes to the policy and Ollama as before.
 */
export function webRoute(rawUrl: string, nav: NavigationInput): 'page' | 'asset' | 'api' {
  // The raw request target, undecoded: `/_wgo/../api/pull` and `/_wgo%2f..` stay assets and are looked up verbatim.
  if (rawUrl === WEB_PREFIX.slice(0, -1) || rawUrl.startsWith(WEB_PREFIX)) return 'asset';
  if (rawUrl === '/' && isNavigation(nav)) return 'page';
  return 'api';
}
