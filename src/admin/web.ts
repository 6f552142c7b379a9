import express, { type NextFunction, type Request, type Response } from 'express';
import { parseCidr } from '../core/ipv4.js';
import { asDiskFull, isWgoError } from '../errors.js';
import { httpStatusOf } from './http-status.js';
import type { AdminAppDeps } from './common.js';

export type { AdminAppDeps } from './common.js';
import { logPages } from './log-pages.js';
import { peerPages } from './peer-pages.js';
import { statusPage } from './status-page.js';
import { tokenPages } from './token-pages.js';
import {
  checkCsrf, checkHost, checkOrigin, clearCookie, LOGIN_COOKIE, loadSession, newToken, refuseTunnel, safeEqual, safeNext,
  securityHeaders, SESSION_COOKIE, setCookie, sourceOf,
} from './protect.js';
import { CONNECTOR_DOWNLOAD, issuedPage, render, WEB_DIR } from './render.js';
import { CONNECTOR_FILE, connectorBundle } from '../connect/bundle.js';

/** Pages for the signed-in; others go to the sign-in page (GET) or get 401 (anything else). */
function requireSession(req: Request, res: Response, next: NextFunction): void {
  if (req.session) return next();
  // Page loads go to the sign-in form; anything a page loads by itself (images, icons) just fails.
  const dest = req.headers['sec-fetch-dest'];
  if ((req.method === 'GET' || req.method === 'HEAD') && (dest === undefined || dest === 'document')) {
    res.redirect(303, `/login?next=${encodeURIComponent(req.originalUrl)}`);
    return;
  }
  res.status(401).type('text/plain').send('Sign in first.\n');
}

/**
 * The admin web UI as an express app (not listening): sign-in with password +
 * TOTP, peers, enrollment links, logs and status. Every change goes through
 * the same services as the CLI. Security: Host check, no requests via the
 * tunnel, helmet headers with a strict CSP, __Host- cookies, CSRF token plus
 * Origin check on every POST, roles.
 */
export function createAdminApp(deps: AdminAppDeps): express.Express {
  const app = express();
  const { config } = deps.ctx;
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', false);
  app.set('query parser', 'simple');
  const hosts = new Set(deps.hosts.map((h) => h.toLowerCase()));

  app.use(refuseTunnel(parseCidr(config.subnet)));
  app.use(checkHost(hosts));
  app.use(securityHeaders());
  app.use((_req, res, next) => {
    // Pages hold keys, codes and tokens: never cached, anywhere.
    res.set('Cache-Control', 'no-store');
    next();
  });
  app.use('/static', express.static(`${WEB_DIR}/static`, { dotfiles: 'deny', index: false, redirect: false, fallthrough: false, maxAge: 0 }));
  app.use(express.urlencoded({ extended: false, limit: '32kb', parameterLimit: 50 }));
  app.use(loadSession(deps.accounts));
  app.use(checkOrigin());

  // Browsers ask for it on their own; it is no page, so never a redirect to the sign-in form.
  app.get('/favicon.ico', (_req, res) => void res.status(204).end());
  // The connector every staff laptop runs: public (no key in it), so an enrollment link's page can offer it too.
  app.get(CONNECTOR_DOWNLOAD, (_req, res) => {
    const file = connectorBundle();
    if (!file) return void res.status(404).type('text/plain').send('The connector is not built on this gateway (npm run build).\n');
    res.attachment(CONNECTOR_FILE).type('text/javascript').sendFile(file);
  });

  // --- sign-in ---------------------------------------------------------------
  const loginPage = (req: Request, res: Response, o: { error?: string; name?: string; next?: string }, status = 200): void => {
    // One login token per browser, kept until sign-in: a second tab, or any request that lands
    // on /login meanwhile, must not invalidate the form already shown.
    const have = req.cookies?.[LOGIN_COOKIE] as string | undefined;
    const token = have && /^[A-Za-z0-9_-]{43}$/.test(have) ? have : newToken();
    if (token !== have) setCookie(res, LOGIN_COOKIE, token);
    render(req, res, 'login', { title: 'Sign in', loginCsrf: token, error: o.error, name: o.name ?? '', next: safeNext(o.next ?? req.query.next) }, status);
  };
  app.get('/login', (req, res) => {
    if (req.session) return res.redirect(303, safeNext(req.query.next));
    loginPage(req, res, {});
  });
  app.post('/login', async (req, res, next) => {
    try {
      const body = (req.body ?? {}) as Record<string, unknown>;
      if (!safeEqual(typeof body._csrf === 'string' ? body._csrf : undefined, req.cookies?.[LOGIN_COOKIE])) {
        return loginPage(req, res, { error: 'The sign-in form expired; try again.' }, 403);
      }
      const r = await deps.accounts.login({ name: body.name, password: body.password, code: body.code }, sourceOf(req));
      if (!r.ok) {
        const error = r.reason === 'locked' ? `Too many failed sign-ins. Try again in ${Math.ceil((r.retryAfterSec ?? 60) / 60)} minutes.` : 'Sign-in failed: the name, password or code is wrong.';
        if (r.retryAfterSec) res.set('Retry-After', String(r.retryAfterSec));
        return loginPage(req, res, { error, name: typeof body.name === 'string' ? body.name.slice(0, 64) : '', next: String(body.next ?? '') }, r.reason === 'locked' ? 429 : 401);
      }
      // A new session id at every sign-in; whatever cookie came in is replaced.
      deps.accounts.logout(req.cookies?.[SESSION_COOKIE], sourceOf(req));
      setCookie(res, SESSION_COOKIE, r.session.id);
      clearCookie(res, LOGIN_COOKIE);
      res.redirect(303, safeNext(body.next));
    } catch (e) {
      next(e);
    }
  });
  app.post('/logout', requireSession, checkCsrf, (req, res) => {
    deps.accounts.logout(req.cookies?.[SESSION_COOKIE], sourceOf(req));
    clearCookie(res, SESSION_COOKIE);
    res.redirect(303, '/login');
  });

  // --- one-time enrollment (no sign-in: the token in the URL is the key) ----------
  app.get('/e/:token', (req, res) => {
    const token = String(req.params.token);
    const e = deps.enrollments.peek(token);
    render(req, res, 'enroll-public', { title: 'Enrollment', enrollment: e, token }, e ? 200 : 410);
  });
  app.post('/e/:token', async (req, res, next) => {
    try {
      const issued = deps.enrollments.redeem(String(req.params.token), sourceOf(req));
      if (!issued) return render(req, res, 'enroll-public', { title: 'Enrollment', enrollment: null, token: '' }, 410);
      deps.onChange();
      render(req, res, 'issued', await issuedPage(issued, deps.queries.guardUrl(), `Your access: ${issued.peer.name}`, ' (the link is used up)'));
    } catch (e) {
      next(e);
    }
  });

  // --- signed-in pages --------------------------------------------------------
  app.get('/', requireSession, (_req, res) => res.redirect(303, '/peers'));
  app.use(requireSession);
  app.use((req, res, next) => (req.method === 'POST' ? checkCsrf(req, res, next) : next()));
  app.use(peerPages(deps));
  app.use(tokenPages(deps));
  app.use(logPages(deps));
  app.use(statusPage(deps));

  app.use((req: Request, res: Response) => {
    render(req, res, 'error', { title: 'Not found', heading: 'Not found', message: 'There is no such page.' }, 404);
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: number }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // Body too large, malformed form, a static file that does not exist.
      res.status(status).type('text/plain').send(status === 404 ? 'Not found.\n' : 'Bad request.\n');
      return;
    }
    // A full disk that reached here unnamed (a sign-in, a session, a log page) is still said plainly.
    const named = asDiskFull(err);
    if (isWgoError(named)) {
      render(req, res, 'error', { title: 'Error', heading: 'That did not work', message: named.message }, httpStatusOf(named.kind));
      return;
    }
    deps.log?.error({ event: 'admin-ui.failed', err: (err as Error).message }, 'admin UI request failed');
    render(req, res, 'error', { title: 'Error', heading: 'Something went wrong', message: 'The error was logged.' }, 500);
  });
  return app;
}
