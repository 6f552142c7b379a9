import { describe, expect, test } from 'vitest';
import { isNavigation, preferredType, sameOriginAllowed, webRoute, type NavigationInput, type OriginInput } from '../../../src/core/web-request.js';

const HOST = '198.51.100.10:11434';
/** A top-level navigation to the page, as a link click sends it; `referer` goes into the outer input. */
const link = (o: Partial<NonNullable<OriginInput['navigation']>> & { referer?: string } = {}): NonNullable<OriginInput['navigation']> => {
  const { referer: _r, ...rest } = o;
  return { method: 'GET', target: '/', fetchMode: 'navigate', fetchDest: 'document', ...rest };
};

describe('sameOriginAllowed', () => {
  test.each<[string, OriginInput, boolean]>([
    // API clients: no Origin, no Fetch Metadata.
    ['an API client (no Origin, no Sec-Fetch-Site)', { origin: undefined, host: HOST, fetchSite: undefined }, true],
    ['the user typed the address (Sec-Fetch-Site: none)', { origin: undefined, host: HOST, fetchSite: 'none' }, true],
    ['a same-origin GET from the chat page (no Origin)', { origin: undefined, host: HOST, fetchSite: 'same-origin' }, true],
    ['a same-origin POST from the chat page', { origin: `https://${HOST}`, host: HOST, fetchSite: 'same-origin' }, true],
    ['same Origin, browser without Fetch Metadata', { origin: `https://${HOST}`, host: HOST, fetchSite: undefined }, true],
    ['a host without a port (443)', { origin: 'https://guard.example', host: 'guard.example', fetchSite: 'same-origin' }, true],
    // Refused.
    ['a cross-site GET without Origin (a link, an <img>)', { origin: undefined, host: HOST, fetchSite: 'cross-site' }, false],
    ['a same-site request without Origin', { origin: undefined, host: HOST, fetchSite: 'same-site' }, false],
    ['an unknown Sec-Fetch-Site value', { origin: undefined, host: HOST, fetchSite: 'weird' }, false],
    ['another origin', { origin: 'https://evil.example', host: HOST, fetchSite: 'cross-site' }, false],
    ['another origin claiming same-origin', { origin: 'https://evil.example', host: HOST, fetchSite: 'same-origin' }, false],
    ['another origin without Fetch Metadata', { origin: 'https://evil.example', host: HOST, fetchSite: undefined }, false],
    ['another port on the same host (the admin UI)', { origin: 'https://198.51.100.10:8443', host: HOST, fetchSite: 'same-site' }, false],
    ['another port, Fetch Metadata stripped', { origin: 'https://198.51.100.10:8443', host: HOST, fetchSite: undefined }, false],
    ['plain http on the same host and port', { origin: `http://${HOST}`, host: HOST, fetchSite: undefined }, false],
    ['Origin null (data: URL, sandboxed frame)', { origin: 'null', host: HOST, fetchSite: 'cross-site' }, false],
    ['Origin null without Fetch Metadata', { origin: 'null', host: HOST, fetchSite: undefined }, false],
    ['the right Origin but Sec-Fetch-Site same-site', { origin: `https://${HOST}`, host: HOST, fetchSite: 'same-site' }, false],
    ['the right Origin but Sec-Fetch-Site cross-site', { origin: `https://${HOST}`, host: HOST, fetchSite: 'cross-site' }, false],
    ['the right Origin but Sec-Fetch-Site none', { origin: `https://${HOST}`, host: HOST, fetchSite: 'none' }, false],
    ['Origin with a trailing slash', { origin: `https://${HOST}/`, host: HOST, fetchSite: 'same-origin' }, false],
    ['Origin with a path', { origin: `https://${HOST}/x`, host: HOST, fetchSite: 'same-origin' }, false],
    ['Origin without a Host header', { origin: 'https://', host: undefined, fetchSite: 'same-origin' }, false],
    ['Origin https:// with an empty Host', { origin: 'https://', host: '', fetchSite: 'same-origin' }, false],
    ['Origin differing only in case', { origin: 'https://GUARD.example', host: 'guard.example', fetchSite: 'same-origin' }, false],
    ['Origin a prefix of the host', { origin: 'https://198.51.100.10', host: HOST, fetchSite: 'same-origin' }, false],
    ['two Sec-Fetch-Site headers', { origin: undefined, host: HOST, fetchSite: ['same-origin', 'same-origin'] }, false],
    ['two Origin headers', { origin: [`https://${HOST}`, `https://${HOST}`], host: HOST, fetchSite: 'same-origin' }, false],
    // A link to the chat page in a chat app, a mail or the admin UI: a top-level GET of / only.
    ['a link from another site to the page (top-level navigation to /)', { origin: undefined, host: HOST, fetchSite: 'cross-site', navigation: link() }, true],
    ['a link from the admin UI (same-site) to the page', { origin: undefined, host: HOST, fetchSite: 'same-site', navigation: link({ referer: 'https://198.51.100.10:8443/peers' }) }, true],
    ['HEAD of such a link', { origin: undefined, host: HOST, fetchSite: 'cross-site', navigation: link({ method: 'HEAD' }) }, true],
    ['a cross-site navigation to an API path', { origin: undefined, host: HOST, fetchSite: 'cross-site', navigation: link({ target: '/api/tags' }) }, false],
    ['a cross-site navigation to / with a query', { origin: undefined, host: HOST, fetchSite: 'cross-site', navigation: link({ target: '/?x=1' }) }, false],
    ['a cross-site iframe loading /', { origin: undefined, host: HOST, fetchSite: 'cross-site', navigation: link({ fetchDest: 'iframe' }) }, false],
    ['a cross-site form POST to /', { origin: 'https://evil.example', host: HOST, fetchSite: 'cross-site', navigation: link({ method: 'POST' }) }, false],
    ['a cross-site <img> of /', { origin: undefined, host: HOST, fetchSite: 'cross-site', navigation: link({ fetchMode: 'no-cors', fetchDest: 'image' }) }, false],
    // Browsers without Fetch Metadata (Safari before 16.4) still send a Referer by default; API clients never do.
    ['another site in the Referer, no Fetch Metadata (an old Safari <img>)', { origin: undefined, host: HOST, fetchSite: undefined, referer: 'https://evil.example/page' }, false],
    ['the guard itself in the Referer', { origin: undefined, host: HOST, fetchSite: undefined, referer: `https://${HOST}/` }, true],
    ['http on the same host and port in the Referer', { origin: undefined, host: HOST, fetchSite: undefined, referer: `http://${HOST}/` }, false],
    ['a Referer that is no URL', { origin: undefined, host: HOST, fetchSite: undefined, referer: 'not a url' }, false],
    ['two Referer headers', { origin: undefined, host: HOST, fetchSite: undefined, referer: [`https://${HOST}/`, `https://${HOST}/`] }, false],
    ['the right Origin with another site in the Referer', { origin: `https://${HOST}`, host: HOST, fetchSite: undefined, referer: 'https://evil.example/' }, false],
  ])('%s → %s', (_name, input, want) => {
    expect(sameOriginAllowed(input)).toBe(want);
  });
});

const SAFARI = 'Mozilla/5.0 (iPhone; CPU iPhone OS 15_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6 Mobile/15E148 Safari/604.1';
const CHROME_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8';
const nav = (o: Partial<NavigationInput>): NavigationInput => ({ method: 'GET', fetchMode: undefined, fetchDest: undefined, accept: undefined, ...o });

describe('isNavigation', () => {
  test.each<[string, NavigationInput, boolean]>([
    ['Chromium opening the page', nav({ fetchMode: 'navigate', fetchDest: 'document', accept: CHROME_ACCEPT }), true],
    ['HEAD of a navigation', nav({ method: 'HEAD', fetchMode: 'navigate', fetchDest: 'document' }), true],
    ['Sec-Fetch-Dest document alone', nav({ fetchDest: 'document' }), true],
    ['Sec-Fetch-Mode navigate alone', nav({ fetchMode: 'navigate' }), true],
    ['old Safari: no Fetch Metadata, Accept text/html first', nav({ accept: 'text/html,application/xhtml+xml,*/*;q=0.8', userAgent: SAFARI }), true],
    ['Accept text/html preferred by q, a browser', nav({ accept: 'application/json;q=0.5, text/html', userAgent: SAFARI }), true],
    // Java's HttpURLConnection sends this Accept by default: an API client, not a browser.
    ['Java HttpURLConnection', nav({ accept: 'text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2', userAgent: 'Java/17.0.15' }), false],
    ['Accept text/html without a User-Agent', nav({ accept: 'text/html,*/*;q=0.8' }), false],
    ['curl (Accept */*)', nav({ accept: '*/*' }), false],
    ['no Accept at all', nav({}), false],
    ['the ollama client (application/json)', nav({ accept: 'application/json' }), false],
    ['JSON preferred over HTML', nav({ accept: 'application/json, text/html;q=0.9' }), false],
    ['text/html refused with q=0', nav({ accept: 'text/html;q=0, */*' }), false],
    ['a fetch() from a page asking for HTML', nav({ fetchMode: 'cors', fetchDest: 'empty', accept: 'text/html' }), false],
    ['a no-cors subresource', nav({ fetchMode: 'no-cors', fetchDest: 'image', accept: 'text/html' }), false],
    ['an iframe load (navigate, dest iframe)', nav({ fetchMode: 'navigate', fetchDest: 'iframe' }), true],
    ['a POST navigation (form)', nav({ method: 'POST', fetchMode: 'navigate', fetchDest: 'document', accept: CHROME_ACCEPT }), false],
  ])('%s → %s', (_name, input, want) => {
    expect(isNavigation(input)).toBe(want);
  });
});

describe('preferredType', () => {
  test.each<[string, string | null]>([
    [CHROME_ACCEPT, 'text/html'],
    ['*/*', '*/*'],
    ['application/json', 'application/json'],
    ['TEXT/HTML', 'text/html'],
    ['text/plain;q=0.2, text/html;q=0.1', 'text/plain'],
    ['text/html;q=2', null],
    ['text/html;q=0.1x, application/json', 'application/json'],
    ['text/html;q=1.5, application/json', 'application/json'],
    ['text/html;q=.5, application/json;q=0.4', 'text/html'],
    ['garbage', null],
    ['', null],
  ])('%j → %j', (accept, want) => {
    expect(preferredType(accept)).toBe(want);
  });
});

describe('webRoute', () => {
  const page = nav({ fetchMode: 'navigate', fetchDest: 'document', accept: CHROME_ACCEPT });
  const api = nav({ accept: '*/*' });
  test.each<[string, string, NavigationInput, 'page' | 'asset' | 'api']>([
    ['navigation to /', '/', page, 'page'],
    ['API GET /', '/', api, 'api'],
    ['navigation to / with a query (not canonical)', '/?x=1', page, 'api'],
    ['navigation to an API path', '/api/tags', page, 'api'],
    ['an asset', '/_wgo/chat.js', api, 'asset'],
    ['the bare prefix', '/_wgo', api, 'asset'],
    ['traversal out of the prefix', '/_wgo/../api/pull', api, 'asset'],
    ['encoded traversal', '/_wgo/%2e%2e/api/pull', api, 'asset'],
    ['a look-alike prefix', '/_wgox/chat.js', api, 'api'],
    ['an encoded prefix', '/%5fwgo/chat.js', api, 'api'],
    ['a double slash', '//_wgo/chat.js', api, 'api'],
  ])('%s: %s → %s', (_name, url, input, want) => {
    expect(webRoute(url, input)).toBe(want);
  });
});
