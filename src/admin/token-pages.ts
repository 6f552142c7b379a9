import { Router } from 'express';
import { inlineStatus } from './http-status.js';
import { tokenService } from '../gateway/token-service.js';
import { render } from './render.js';
import { actorOf, requireAdmin, type AdminAppDeps } from './common.js';

/**
 * A peer's API token in the web UI: issue (confirmed, then shown once, never
 * stored in clear) and revoke (confirmed). The same service as issue-token
 * and revoke-token; its refusals (policy off, peer not active) are shown as
 * errors and change nothing.
 */
export function tokenPages(deps: AdminAppDeps): Router {
  const r = Router();
  const { ctx } = deps;
  const tokens = tokenService({ db: ctx.db, config: ctx.config });
  const back = (name: string): string => `/peers/${encodeURIComponent(name)}`;

  r.get('/peers/:name/token', requireAdmin, (req, res, next) => {
    try {
      const peer = ctx.peers.show(String(req.params.name));
      const t = tokens.status(peer.name);
      render(req, res, 'confirm', {
        title: `API token for ${peer.name}`, nav: 'peers', heading: `Issue an API token for ${peer.name}`,
        question: `A new token is made and shown once. It works only as "Authorization: Bearer" from ${peer.address}, without a client certificate.` +
          (t.state === 'none' ? '' : ' The current token stops working at once.'),
        action: `${back(peer.name)}/token`, button: 'Issue API token', danger: false, withExpiry: false, back: back(peer.name), hidden: [],
      });
    } catch (e) {
      next(e);
    }
  });

  r.post('/peers/:name/token', requireAdmin, (req, res, next) => {
    const name = String(req.params.name);
    try {
      const issued = tokens.issue(name, actorOf(req));
      deps.onChange();
      render(req, res, 'token', { title: `API token for ${issued.name}`, nav: 'peers', ...issued, address: ctx.peers.show(issued.name).address, guardUrl: deps.queries.guardUrl() });
    } catch (e) {
      // Refused by the peer's state or policy (both are fixed on the peer's page, not in this request): 409.
      if (inlineStatus(e)) {
        return render(req, res, 'error', { title: 'Not issued', heading: 'No token issued', message: (e as Error).message, back: back(name) }, 409);
      }
      next(e);
    }
  });

  r.get('/peers/:name/token/revoke', requireAdmin, (req, res, next) => {
    try {
      const peer = ctx.peers.show(String(req.params.name));
      render(req, res, 'confirm', {
        title: `Revoke the API token of ${peer.name}`, nav: 'peers', heading: `Revoke the API token of ${peer.name}`,
        question: `The token stops working at once, open connections included. The peer's certificate and tunnel stay.`,
        action: `${back(peer.name)}/token/revoke`, button: 'Revoke API token', danger: true, withExpiry: false, back: back(peer.name), hidden: [],
      });
    } catch (e) {
      next(e);
    }
  });

  r.post('/peers/:name/token/revoke', requireAdmin, (req, res, next) => {
    const name = String(req.params.name);
    try {
      tokens.revoke(name, actorOf(req));
      deps.onChange();
      res.redirect(303, `${back(name)}?done=token-revoked`);
    } catch (e) {
      next(e);
    }
  });
  return r;
}
