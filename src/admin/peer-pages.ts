import { Router, type Request, type Response } from 'express';
import { overridesFromFlags } from '../core/policy-input.js';
import { ago, bytes } from '../core/format.js';
import { parseDuration } from '../core/duration.js';
import { mergePolicy, type Policy } from '../core/policy.js';
import { inlineStatus } from './http-status.js';
import { defaultPolicy } from '../gateway/peer-service.js';
import type { PeerWithLink, TimelineEntry } from '../gateway/queries.js';
import { issuedPage, render } from './render.js';
import { actorOf, requireAdmin, type AdminAppDeps } from './common.js';

const ACTIONS = ['disable', 'enable', 'rotate', 'revoke'] as const;
type Action = (typeof ACTIONS)[number];

const COLUMNS: [string, string][] = [
  ['name', 'Name'], ['address', 'Address'], ['status', 'Status'], ['expires', 'Expires'], ['handshake', 'Last handshake'],
  ['endpoint', 'Endpoint'], ['traffic', 'Traffic'], ['requests', 'Requests today'], ['tokens', 'Tokens today'],
];

const POLICY_FIELDS: { name: keyof PolicyForm; label: string; show: (p: Policy) => string }[] = [
  { name: 'models', label: 'Models', show: (p) => (p.models === null ? 'any' : p.models.join(', ')) },
  { name: 'writeModels', label: 'Models it may create, copy over, delete, pull or push', show: (p) => (p.writeModels === null ? 'any' : p.writeModels.length === 0 ? 'none' : p.writeModels.join(', ')) },
  { name: 'endpoints', label: 'Endpoints', show: (p) => p.endpoints.join(', ') },
  { name: 'rate', label: 'Requests per minute', show: (p) => String(p.requestsPerMinute) },
  { name: 'burst', label: 'Burst', show: (p) => String(p.burst) },
  { name: 'streams', label: 'Concurrent streams', show: (p) => String(p.maxStreams) },
  { name: 'tokensPerDay', label: 'Tokens per day', show: (p) => (p.tokensPerDay === null ? 'unlimited' : String(p.tokensPerDay)) },
  { name: 'maxKeepAlive', label: 'Longest keep_alive (seconds)', show: (p) => (p.maxKeepAliveSec === null ? 'none' : String(p.maxKeepAliveSec)) },
  { name: 'maxNumCtx', label: 'Largest num_ctx', show: (p) => (p.maxNumCtx === null ? 'none' : String(p.maxNumCtx)) },
  { name: 'maxTokensPerRequest', label: 'Tokens per request', show: (p) => (p.maxTokensPerRequest === null ? 'none' : String(p.maxTokensPerRequest)) },
  { name: 'options', label: 'Ollama options the peer may set', show: (p) => (p.options.length === 0 ? 'none' : p.options.join(', ')) },
  { name: 'optionLimits', label: 'Option bounds (name=N)', show: (p) => Object.entries(p.optionLimits).map(([o, n]) => `${o}=${String(n)}`).join(', ') || 'none' },
];
type PolicyForm = { models?: string; writeModels?: string; endpoints?: string; rate?: string; burst?: string; streams?: string; tokensPerDay?: string; maxKeepAlive?: string; maxNumCtx?: string; maxTokensPerRequest?: string;
  options?: string; optionLimits?: string };
/** Which override key each form field sets (to mark fields set for this peer). */
const FIELD_KEY: Record<keyof PolicyForm, keyof Policy> = {
  models: 'models', writeModels: 'writeModels', endpoints: 'endpoints', rate: 'requestsPerMinute', burst: 'burst', streams: 'maxStreams',
  tokensPerDay: 'tokensPerDay', maxKeepAlive: 'maxKeepAliveSec', maxNumCtx: 'maxNumCtx', maxTokensPerRequest: 'maxTokensPerRequest',
  options: 'options', optionLimits: 'optionLimits',
};

const str = (v: unknown): string => (typeof v === 'string' ? v.trim() : '');
const isAction = (a: string): a is Action => (ACTIONS as readonly string[]).includes(a);

/** Peers: list, detail with timeline and policy, create (keys shown once), actions with confirmation; enrollment links. */
export function peerPages(deps: AdminAppDeps): Router {
  const r = Router();
  const { ctx } = deps;
  const { queries } = deps;

  /** Handshake, endpoint and traffic of a peer as shown (the query gives them for its current key only). */
  const linkView = (p: PeerWithLink, now: number) => {
    const handshakeAt = p.latestHandshake ? Date.parse(p.latestHandshake) : 0;
    const seen = p.rxBytes + p.txBytes > 0 || handshakeAt > 0;
    return {
      lastHandshake: handshakeAt > 0 ? ago(handshakeAt, now) : 'never',
      handshakeAt,
      endpoint: p.endpoint,
      traffic: seen ? `↓ ${bytes(p.rxBytes)} ↑ ${bytes(p.txBytes)}` : '—',
      trafficTotal: p.rxBytes + p.txBytes,
    };
  };

  r.get('/peers', (req, res) => {
    const now = Date.now();
    const q = str(req.query.q).toLowerCase().slice(0, 64);
    const status = ['active', 'disabled', 'expired', 'revoked'].includes(str(req.query.status)) ? str(req.query.status) : '';
    const sort = COLUMNS.some(([k]) => k === req.query.sort) ? String(req.query.sort) : 'name';
    const dir = req.query.dir === 'desc' ? 'desc' : 'asc';
    let peers = queries.peers({ includeRevoked: true }).map((p) => ({ ...p, ...linkView(p, now) }));
    if (q) peers = peers.filter((p) => p.name.includes(q) || p.address.includes(q));
    if (status) peers = peers.filter((p) => p.status === status);
    const key: Record<string, (p: (typeof peers)[number]) => string | number> = {
      name: (p) => p.name, address: (p) => p.address.split('.').map((o) => o.padStart(3, '0')).join('.'), status: (p) => p.status,
      expires: (p) => p.expiresAt ?? '9999', handshake: (p) => p.handshakeAt, endpoint: (p) => p.endpoint ?? '',
      traffic: (p) => p.trafficTotal, requests: (p) => p.requestsToday, tokens: (p) => p.tokensToday,
    };
    const k = key[sort]!;
    peers.sort((a, b) => {
      const x = k(a);
      const y = k(b);
      const c = x < y ? -1 : x > y ? 1 : a.name.localeCompare(b.name);
      return dir === 'asc' ? c : -c;
    });
    const sortLink = (col: string): string => {
      const p = new URLSearchParams({ q, status, sort: col, dir: col === sort && dir === 'asc' ? 'desc' : 'asc' });
      return `/peers?${p.toString()}`;
    };
    render(req, res, 'peers', { title: 'Peers', nav: 'peers', peers, q, status, sort, dir, columns: COLUMNS, sortLink, canWrite: req.session!.admin.role === 'admin', flash: flashOf(req) });
  });

  r.get('/peers/new', requireAdmin, (req, res) => render(req, res, 'peer-new', { title: 'Add a peer', nav: 'peers', name: '', expires: '' }));

  r.post('/peers', requireAdmin, async (req, res, next) => {
    const name = str(req.body?.name);
    const expires = str(req.body?.expires);
    try {
      const expiresInMs = expires ? parseDuration(expires, 'expiry') : undefined;
      const issued = ctx.peers.add({ name, expiresInMs }, actorOf(req));
      deps.onChange();
      render(req, res, 'issued', await issuedPage(issued, deps.queries.guardUrl(), `Peer ${issued.peer.name} created`, '; to get new keys, rotate the peer'));
    } catch (e) {
      const status = inlineStatus(e);
      if (status) return render(req, res, 'peer-new', { title: 'Add a peer', nav: 'peers', name, expires, error: (e as Error).message }, status);
      next(e);
    }
  });

  r.get('/peers/:name', (req, res, next) => {
    try {
      renderPeer(req, res, String(req.params.name));
    } catch (e) {
      next(e);
    }
  });

  /** A peer's page: facts, link, timeline, policy form, API token, actions. */
  const renderPeer = (req: Request, res: Response, name: string, policyError?: string, status = 200): void => {
    const now = Date.now();
    const { peer, apiToken, timeline } = queries.peer(name);
    const effective = mergePolicy(defaultPolicy(ctx.config), peer.policy ?? {});
    const policyFields = POLICY_FIELDS.map((f) => ({ name: f.name, label: f.label, value: f.show(effective), overridden: !!peer.policy && FIELD_KEY[f.name] in peer.policy }));
    const actions = ACTIONS.filter((a) => (a === 'disable' ? peer.status === 'active' : a === 'enable' ? peer.status === 'disabled' || peer.status === 'expired' : true));
    const apiTokens = { overridden: !!peer.policy && 'apiTokens' in peer.policy, ...apiToken };
    render(req, res, 'peer', { title: `Peer ${peer.name}`, nav: 'peers', peer, link: linkView(peer, now), timeline: timeline.map(timelineRow), policyFields, apiTokens, actions, policyError, canWrite: req.session!.admin.role === 'admin', flash: flashOf(req) }, status);
  };

  r.post('/peers/:name/policy', requireAdmin, (req, res, next) => {
    const name = String(req.params.name);
    try {
      const peer = ctx.peers.show(name);
      if (req.body?.op === 'reset') {
        ctx.peers.setPolicy(name, null, actorOf(req));
      } else {
        const form: PolicyForm = {};
        for (const f of POLICY_FIELDS) form[f.name] = str(req.body?.[f.name]);
        const effective = mergePolicy(defaultPolicy(ctx.config), peer.policy ?? {});
        // Only fields that differ from what the form showed become overrides.
        const changed: PolicyForm = {};
        for (const f of POLICY_FIELDS) if (form[f.name] !== f.show(effective)) changed[f.name] = form[f.name]!.replace(/,\s+/g, ',');
        const overrides = overridesFromFlags(changed);
        // A checkbox: absent from the form when unchecked.
        const wantTokens = req.body?.apiTokens === 'on';
        if (wantTokens !== effective.apiTokens) overrides.apiTokens = wantTokens;
        if (Object.keys(overrides).length > 0) ctx.peers.setPolicy(name, { ...(peer.policy ?? {}), ...overrides }, actorOf(req));
      }
      deps.onChange();
      res.redirect(303, `/peers/${encodeURIComponent(name)}?done=policy`);
    } catch (e) {
      const status = inlineStatus(e);
      if (status) {
        try {
          return renderPeer(req, res, name, (e as Error).message.replace(/--([a-z-]+)/g, '$1'), status);
        } catch (e2) {
          return next(e2);
        }
      }
      next(e);
    }
  });

  r.get('/peers/:name/:action', requireAdmin, (req, res, next) => {
    const action = String(req.params.action);
    if (!isAction(action)) return next();
    try {
      const peer = ctx.peers.show(String(req.params.name));
      const q: Record<Action, string> = {
        disable: `Disable ${peer.name}? Its connections stop until it is enabled again.`,
        enable: `Enable ${peer.name} again?`,
        rotate: `Rotate ${peer.name}? New keys and a new certificate are made and shown once; the old ones stop working at once.`,
        revoke: `Revoke ${peer.name} for good? Its tunnel, firewall state and certificate die now, open streams included. This cannot be undone.`,
      };
      render(req, res, 'confirm', {
        title: `${action} ${peer.name}`, nav: 'peers', heading: `${action[0]!.toUpperCase()}${action.slice(1)} ${peer.name}`, question: q[action],
        action: `/peers/${encodeURIComponent(peer.name)}/${action}`, button: `${action[0]!.toUpperCase()}${action.slice(1)}`, danger: action === 'revoke',
        withExpiry: action === 'enable', back: `/peers/${encodeURIComponent(peer.name)}`,
        // Rotation names the keys it replaces: a reloaded (re-posted) answer page cannot rotate twice.
        hidden: action === 'rotate' ? [['replaces', peer.publicKey]] : [],
      });
    } catch (e) {
      next(e);
    }
  });

  r.post('/peers/:name/:action', requireAdmin, async (req, res, next) => {
    const action = String(req.params.action);
    if (!isAction(action)) return next();
    const name = String(req.params.name);
    try {
      const who = actorOf(req);
      if (action === 'rotate') {
        if (str(req.body?.replaces) !== ctx.peers.show(name).publicKey) {
          return render(req, res, 'error', { title: 'Already rotated', heading: 'Not rotated', message: `The keys of ${name} were replaced already (or the form is stale). Nothing was changed; rotate again from the peer's page if you need new keys.`, back: `/peers/${encodeURIComponent(name)}` }, 409);
        }
        const issued = ctx.peers.rotate(name, {}, who);
        deps.onChange();
        return render(req, res, 'issued', await issuedPage(issued, deps.queries.guardUrl(), `New keys for ${issued.peer.name}`, '; to get new keys again, rotate the peer'));
      }
      if (action === 'disable' || action === 'revoke') {
        const r = action === 'disable' ? ctx.peers.disable(name, who) : ctx.peers.revoke(name, who);
        deps.onChange();
        // A full disk: the access is gone now, the record follows when space returns (gateway/denials.ts).
        if (r.saved === false) {
          return render(req, res, 'error', { title: 'Not saved yet', heading: `${name}: access removed, not saved yet`, message: `The disk is full: ${name}'s access was taken away from the tunnel now, but the ${action} could not be saved to the database. It is kept aside and saved as soon as there is space again; free some space on the gateway.`, back: `/peers/${encodeURIComponent(name)}` }, 202);
        }
        return res.redirect(303, `/peers/${encodeURIComponent(name)}?done=${action}`);
      } else {
        const expires = str(req.body?.expires);
        ctx.peers.enable(name, { expiresInMs: expires ? parseDuration(expires, 'expiry') : undefined }, who);
      }
      deps.onChange();
      res.redirect(303, `/peers/${encodeURIComponent(name)}?done=${action}`);
    } catch (e) {
      next(e);
    }
  });

  // --- enrollment links (admin side) -------------------------------------------
  const enrollPage = (req: Request, res: Response, extra: Record<string, unknown> = {}, status = 200): void =>
    render(req, res, 'enroll', { title: 'Enrollment links', nav: 'enroll', links: deps.enrollments.list(), ttlMinutes: ctx.config.admin?.enrollMinutes ?? 15, name: '', expires: '', canWrite: req.session!.admin.role === 'admin', ...extra }, status);
  r.get('/enroll', (req, res) => enrollPage(req, res));
  r.post('/enroll', requireAdmin, (req, res, next) => {
    const name = str(req.body?.name);
    const expires = str(req.body?.expires);
    try {
      const expiresInMs = expires ? parseDuration(expires, 'expiry') : null;
      const { token, enrollment } = deps.enrollments.create({ peerName: name, expiresInMs }, actorOf(req));
      enrollPage(req, res, { created: { peerName: enrollment.peerName, expiresAt: enrollment.expiresAt, url: `https://${req.headers.host}/e/${token}` } });
    } catch (e) {
      const status = inlineStatus(e);
      if (status) return enrollPage(req, res, { name, expires, error: (e as Error).message }, status);
      next(e);
    }
  });
  r.post('/enroll/:id/cancel', requireAdmin, (req, res, next) => {
    try {
      const id = Number(req.params.id);
      if (!Number.isSafeInteger(id) || id <= 0) return next();
      deps.enrollments.cancel(id, actorOf(req));
      res.redirect(303, '/enroll');
    } catch (e) {
      next(e);
    }
  });
  return r;
}

/** One line of a peer's timeline as the page shows it. */
function timelineRow(e: TimelineEntry): { at: string; kind: string; what: string; details: string } {
  const at = new Date(e.at).toISOString();
  if (e.kind === 'connection') {
    const c = e.event;
    return {
      at, kind: 'connection', what: c.kind.replace('_', ' '),
      details: c.kind === 'endpoint_changed' ? `${c.oldEndpoint ?? '?'} → ${c.endpoint ?? '?'}` : c.kind === 'traffic' ? `↓ ${bytes(c.rxBytes ?? 0)} ↑ ${bytes(c.txBytes ?? 0)}` : (c.endpoint ?? ''),
    };
  }
  const q = e.request;
  return {
    at, kind: q.status === 401 ? 'tls' : 'request', what: q.status === 401 ? 'TLS refused' : `${q.method ?? ''} ${q.endpoint ?? q.path ?? ''}`,
    details: [q.model, `status ${q.status}`, q.refusal, q.estimatedTokens != null ? `~${q.estimatedTokens} tokens (estimated)` : q.promptTokens !== null || q.evalTokens !== null ? `${(q.promptTokens ?? 0) + (q.evalTokens ?? 0)} tokens` : null, `${Math.round(q.durationMs)} ms`].filter(Boolean).join(' · '),
  };
}

/** A one-line confirmation after a redirect (?done=action): fixed texts only, never echoed input. */
function flashOf(req: Request): string | undefined {
  const done: Record<string, string> = { disable: 'Disabled.', enable: 'Enabled.', revoke: 'Revoked.', policy: 'Policy saved.', 'token-revoked': 'API token revoked.' };
  return typeof req.query.done === 'string' ? done[req.query.done] : undefined;
}
