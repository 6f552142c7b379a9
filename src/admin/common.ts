import type { EventLog } from '../core/log-events.js';
import type { NextFunction, Request, Response } from 'express';
import type { GatewayContext } from '../gateway/context.js';
import type { Actor } from '../gateway/peer-service.js';
import type { DaemonSource, KernelReaders, QueryService } from '../gateway/queries.js';
import type { AccountService } from './accounts.js';
import type { EnrollmentService } from './enrollments.js';
import { sourceOf } from './protect.js';
import { render } from './render.js';

export interface AdminAppDeps {
  ctx: GatewayContext;
  accounts: AccountService;
  enrollments: EnrollmentService;
  /** Host names (lowercase, no port) the UI answers to. */
  hosts: readonly string[];
  /** A peer changed: apply it now (serve reconciles and wakes the guards). */
  onChange(): void;
  /** Every read the pages show (the CLI's too). */
  queries: QueryService;
  /** For the status page: the kernel it reads, and the daemon (serve, in this process). */
  kernel: KernelReaders;
  daemon: DaemonSource;
  log?: EventLog;
}

/** The admin who is signed in, as the audit log names them. */
export const actorOf = (req: Request): Actor => ({ actor: req.session!.admin.name, source: sourceOf(req) });

/** Viewers read; only admins change anything. */
export function requireAdmin(req: Request, res: Response, next: NextFunction): void {
  if (req.session?.admin.role === 'admin') return next();
  render(req, res, 'error', { title: 'Not allowed', heading: 'Not allowed', message: 'Your role is viewer: you can look, not change.' }, 403);
}

