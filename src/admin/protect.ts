import { randomBytes, timingSafeEqual } from 'node:crypto';
import { parse as parseCookies, serialize } from 'cookie';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import helmet from 'helmet';
import { contains, ipToInt, isIpv4, type Ipv4Net } from '../core/ipv4.js';
import type { AccountService, Session } from './accounts.js';

export const SESSION_COOKIE = '__Host-wgo_session';
export const LOGIN_COOKIE = '__Host-wgo_login';

declare module 'express-serve-static-core' {
  interface Request {
    /** The signed-in admin's session, set by loadSession. */
    session?: Session | null;
  }
}

/** Source address without the IPv4-mapped IPv6 prefix. */
export function sourceOf(req: Request): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

const v4 = (a: string | undefined): string => (a?.startsWith('::ffff:') ? a.slice(7) : (a ?? ''));

/** Requests that arrive on a tunnel address (or from one) are refused: the UI is never reachable from the tunnel. */
export function refuseTunnel(tunnel: Ipv4Net): RequestHandler {
  return (req, res, next) => {
    const local = v4(req.socket.localAddress);
    const remote = v4(req.socket.remoteAddress);
    const inside = (ip: string): boolean => isIpv4(ip) && contains(tunnel, ipToInt(ip));
    if (inside(local) || inside(remote)) {
      res.status(403).type('text/plain').send('The admin UI is not available through the tunnel.\n');
      return;
    }
    next();
  };
}

/** Lowercase host name of a Host header, without the port; null when malformed. */
export function hostName(header: string | undefined): string | null {
  if (!header || header.length > 260) return null;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(header);
  return m ? m[1]!.toLowerCase() : null;
}

/** Only the configured names (DNS rebinding and host-header tricks end here). */
export function checkHost(allowed: ReadonlySet<string>): RequestHandler {
  return (req, res, next) => {
    const h = hostName(req.headers.host);
    if (!h || !allowed.has(h)) {
      res.status(421).type('text/plain').send('Unknown host name for this admin UI.\n');
      return;
    }
    next();
  };
}

/** helmet with a CSP that allows no inline script at all, and no framing. */
export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        connectSrc: ["'self'"],
      },
    },
    referrerPolicy: { policy: 'same-origin' },
    xFrameOptions: { action: 'deny' },
    strictTransportSecurity: { maxAge: 31536000, includeSubDomains: false },
  });
}

export const cookieOptions = { path: '/', secure: true, httpOnly: true, sameSite: 'strict' as const };

export function setCookie(res: Response, name: string, value: string, maxAgeSec?: number): void {
  res.append('Set-Cookie', serialize(name, value, { ...cookieOptions, ...(maxAgeSec !== undefined ? { maxAge: maxAgeSec } : {}) }));
}

export function clearCookie(res: Response, name: string): void {
  res.append('Set-Cookie', serialize(name, '', { ...cookieOptions, maxAge: 0 }));
}

/** Parses cookies and loads the session (null when there is none or it has ended). */
export function loadSession(accounts: AccountService): RequestHandler {
  return (req, _res, next) => {
    req.cookies = parseCookies(req.headers.cookie ?? '');
    req.session = accounts.session(req.cookies[SESSION_COOKIE]);
    next();
  };
}

export function safeEqual(a: string | undefined, b: string | undefined): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Every state-changing request must come from a page of this UI: its Origin
 * (or, without one, its Referer) must be this origin. Cross-site form posts
 * and scripted requests from other origins end here with 403.
 */
export function checkOrigin(): RequestHandler {
  return (req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next();
    const own = `https://${req.headers.host}`;
    const origin = req.headers.origin;
    const referer = req.headers.referer;
    const ok = origin !== undefined ? origin === own : typeof referer === 'string' && (referer === own || referer.startsWith(own + '/'));
    if (!ok) {
      res.status(403).type('text/plain').send('Cross-origin request refused.\n');
      return;
    }
    next();
  };
}

/** The session's CSRF token must come back in the form (field _csrf). */
export function checkCsrf(req: Request, res: Response, next: NextFunction): void {
  const sent = typeof req.body?._csrf === 'string' ? (req.body._csrf as string) : undefined;
  if (!req.session || !safeEqual(sent, req.session.csrf)) {
    res.status(403).type('text/plain').send('Missing or wrong CSRF token; reload the page and try again.\n');
    return;
  }
  next();
}

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** A path inside this UI to go to after sign-in; anything else (other hosts, //, \\) becomes /peers. */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string' || next.length > 200) return '/peers';
  return /^\/(?![/\\])[A-Za-z0-9/_.?=&%-]*$/.test(next) && !next.includes('..') && !/%(2f|5c|2e)/i.test(next) ? next : '/peers';
}
