import type { NextFunction, Request, Response } from 'express';
import type { Config } from '../config.js';
import type { GatewayContext } from '../gateway/context.js';
import type { Actor } from '../gateway/peer-service.js';
import type { AccountService } from './accounts.js';
import type { EnrollmentService } from './enrollments.js';
import { sourceOf } from './protect.js';
import { render } from './render.js';

/** What serve knows about the running gateway, for the status page. */
export interface StatusSource {
  (): { interfaceUp: boolean; peersConnected: number; firewallInSync: boolean; lastReconcile: string | null; errors: string[] };
}

export interface AdminAppDeps {
  ctx: GatewayContext;
  accounts: AccountService;
  enrollments: EnrollmentService;
  /** Host names (lowercase, no port) the UI answers to. */
  hosts: readonly string[];
  /** A peer changed: apply it now (serve reconciles and wakes the guards). */
  onChange(): void;
  status: StatusSource;
  log?: { warn(o: object, msg: string): void; error(o: object, msg: string): void };
}

/** The URL peers use for the LLM endpoint (the guard). */
export const guardUrlOf = (config: Config): string => `https://${config.ollamaHost}:${config.ollamaPort}`;

/** The admin who is signed in, as the audit log names them. */
export const actorOf = (req: Request): Actor => ({ actor: req.session!.admin.name, source: sourceOf(req) });

/** Viewers read; only admins change anything. */
export function requireAdmin(req: Request, res: Response, next: NextFunction): void {
  if (req.session?.admin.role === 'admin') return next();
  render(req, res, 'error', { title: 'Not allowed', heading: 'Not allowed', message: 'Your role is viewer: you can look, not change.' }, 403);
}

