import { z } from 'zod';
import { parseDuration } from '../core/duration.js';
import { normaliseModel } from '../core/policy.js';
import { badInput } from '../errors.js';

/** The three logs both faces show. */
export const LOG_KINDS = ['requests', 'connections', 'audit'] as const;
export type LogKind = (typeof LOG_KINDS)[number];

/** Most rows one read returns; without a limit a read returns DEFAULT_LOG_ROWS. */
export const MAX_LOG_ROWS = 100_000;
const DEFAULT_LOG_ROWS = 1000;

const text = z.string().max(200, 'is longer than 200 characters');
/** A whole number in [min, max], given as digits (argv, query string) or as a number. */
const count = (min: number, max: number, message: string) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^\d{1,16}$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return n;
  });
/** A row id (paging). */
const rowId = count(1, Number.MAX_SAFE_INTEGER, 'must be a row id (a whole number from 1)');

/**
 * The filters of every log, one schema for the CLI (`logs KIND --flag`) and
 * the web pages (`/logs/KIND?field=`). Messages name no field: the caller's
 * label for it goes in front (`--status` on the command line, `status` on a page).
 * - since: a duration back from now (rows at or after that moment); absent: all time;
 * - model: normalised as the guard records it (`llama3.2` → `llama3.2:latest`);
 * - before / after: row ids; `after` reads forward (oldest first, for --follow),
 *   otherwise the newest `limit` rows (before `before`, for paging back).
 */
export const logFilterSchema = z.strictObject({
  peer: text.optional(),
  since: z.string().optional().transform((v, ctx) => {
    if (v === undefined) return undefined;
    try {
      // parseDuration names its subject first; the subject is the caller's label.
      return parseDuration(v, '');
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message.trim() });
      return z.NEVER;
    }
  }),
  model: text.optional().transform((v) => (v === undefined ? undefined : normaliseModel(v))),
  status: z.string().regex(/^\d{1,3}$/, 'must be an HTTP status code such as 200 or 429').transform(Number).optional(),
  match: text.optional(),
  limit: count(1, MAX_LOG_ROWS, `must be a whole number from 1 to ${MAX_LOG_ROWS}`).optional(),
  before: rowId.optional(),
  after: rowId.optional(),
});

export type LogFilterInput = z.input<typeof logFilterSchema>;

/** Validated, normalised filters of one log. `since` is a duration in ms. */
export interface LogFilters {
  kind: LogKind;
  peer?: string;
  since?: number;
  model?: string;
  status?: number;
  match?: string;
  limit: number;
  before?: number;
  after?: number;
}

/** Which log each filter belongs to (the rest apply to all). */
const ONLY: Partial<Record<keyof LogFilterInput, { kinds: readonly LogKind[]; what: string }>> = {
  model: { kinds: ['requests'], what: 'request logs only' },
  status: { kinds: ['requests'], what: 'request logs only' },
  peer: { kinds: ['requests', 'connections'], what: 'request and connection logs only' },
  match: { kinds: ['audit'], what: 'the audit log only' },
};

const isKind = (k: string): k is LogKind => (LOG_KINDS as readonly string[]).includes(k);

/**
 * Validates a log's filters (bad input: a WgoError BAD_INPUT whose message
 * starts with `label(field)`). Undefined values count as not given.
 */
export function parseLogFilters(kind: string, input: Record<string, unknown>, label: (field: string) => string = (f) => f): LogFilters {
  if (!isKind(kind)) throw badInput(`unknown log "${kind}": use connections, requests or audit`);
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  for (const field of Object.keys(given)) {
    const only = ONLY[field as keyof LogFilterInput];
    if (only && !only.kinds.includes(kind)) throw badInput(`${label(field)} applies to ${only.what}`);
  }
  const r = logFilterSchema.safeParse(given);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.code === 'unrecognized_keys' ? issue.keys[0]! : String(issue.path[0] ?? 'filter');
    if (issue.code === 'unrecognized_keys') throw badInput(`${label(field)} is not a filter of the ${kind} log`);
    throw badInput(`${label(field)} ${issue.message}`);
  }
  const f = r.data;
  return { kind, ...stripUndefined(f), limit: f.limit ?? DEFAULT_LOG_ROWS };
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
