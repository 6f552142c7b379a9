import { Agent, request } from 'undici';
import { z } from 'zod';
import { recordForGateway } from '../core/request-record.js';
import { issuesText, parseWire, peerSetSchema, pushAnswerSchema, usageSchema, type PeerSet, type PoolReport, type PushRequest } from '../core/wire.js';
import { WgoError } from '../errors.js';
import type { Usage } from './budget.js';
import type { GuardLog } from './server.js';
import type { Spool } from './spool.js';

const LONG_POLL_SEC = 25;
const PUSH_BATCH = 500;
/** A push stays well under the gateway's 32 MiB limit, whatever the prompts (logPrompts) weigh. */
const PUSH_MAX_BYTES = 8 * 1024 * 1024;

/** The longest prefix of records that fits PUSH_MAX_BYTES (always at least one). */
function fitBatch<T>(records: T[]): T[] {
  let size = 0;
  for (let i = 0; i < records.length; i++) {
    size += JSON.stringify(records[i]).length;
    if (size > PUSH_MAX_BYTES && i > 0) return records.slice(0, i);
  }
  return records;
}
const PUSH_INTERVAL_MS = 1000;
/** How often the budget's figures are asked for while there is nothing to push (a push answers them too). */
const USAGE_REFRESH_MS = 2000;
const MAX_BACKOFF_MS = 5_000;
/** A pool router's report of its members: looked at this often, sent when it changed or every POOL_REPORT_MAX_MS. */
const POOL_REPORT_MS = 2000;
const POOL_REPORT_MAX_MS = 10_000;
/** After a refusal (403: the gateway does not name this guard its router) or a 404 (an older gateway): tried again this much later. */
const POOL_REPORT_RETRY_MS = 60_000;

/**
 * A push answer as the guard reads it: the usage figures are checked on their own (gotUsage), so
 * malformed ones are logged and ignored while the batch is still acknowledged.
 */
const pushAnswer = pushAnswerSchema.pick({ rejected: true }).extend({ usage: z.unknown() });

/**
 * What the sync client needs of the spool: reads on the event loop (spool.ts), writes either there
 * too or on the spool's writer thread (spool-thread.ts: they answer promises).
 */
export type SyncSpool = Pick<Spool, 'pending' | 'count' | 'id' | 'loadPeerSet'> & {
  ack(seq: number, usage: Usage | null): void | Promise<void>;
  saveUsage(usage: Usage): void | Promise<void>;
  savePeerSet(set: PeerSet): void | Promise<void>;
};

/** The record fields named by the saved peer set; none when it cannot be read (guard/main.ts says why). */
function savedRecordFields(spool: SyncSpool): string[] | undefined {
  try {
    return spool.loadPeerSet()?.recordFields;
  } catch {
    return undefined;
  }
}

export interface SyncClientOptions {
  gatewayUrl: string;
  tls: { ca: string; cert: string; key: string };
  spool: SyncSpool;
  /** A new peer set arrived (already saved in the spool). */
  onPeerSet(set: PeerSet): void;
  /** The gateway's token figures for the daily budget arrived (already saved in the spool). */
  onUsage?(usage: Usage): void;
  log: GuardLog;
  /** Called after each push attempt, for health reporting. */
  onStatus?(s: { connected: boolean; pending: number; lastError: string | null }): void;
  /** The peer set could not be saved to the spool (it is enforced all the same). */
  onSpoolError?(e: Error): void;
  /** A pool router: what it sees of its members, sent to POST /v1/pool (list-guards, status, remove-guard). */
  poolReport?(): PoolReport;
}

/**
 * The guard's side of the sync API: long-polls the gateway for the peer set
 * and pushes spooled request records in order. While the gateway is
 * unreachable the last peer set stays in force and records wait in the
 * spool; each is acknowledged (and deleted) only after the gateway stored it.
 */
export function startSyncClient(o: SyncClientOptions) {
  const base = o.gatewayUrl.replace(/\/+$/, '');
  // A short connect timeout: undici cannot abort a request while its connection is being made, so
  // stop() waits for it when the gateway does not answer (a guard restart is downtime for every peer).
  const agent = new Agent({ connect: { ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, timeout: 3000 }, keepAliveTimeout: 60_000, headersTimeout: (LONG_POLL_SEC + 15) * 1000, bodyTimeout: 60_000 });
  const ac = new AbortController();
  // The first poll asks for the whole set even when one is saved: today's token use and any
  // change made while this guard was down come with it (the saved set is enforced meanwhile).
  let version = '';
  // Record fields the gateway stores (from its last peer set; the saved one until the first poll answers).
  let recordFields = savedRecordFields(o.spool);
  /** null until the first exchange: its outcome is logged either way, later only changes. */
  let connected: boolean | null = null;
  let lastError: string | null = null;
  /** Why the last peer set could not be saved, until one is (reported by state() and /healthz). */
  let spoolError: string | null = null;
  /** The newest set when it could not be saved: saved again at the next poll. */
  let unsaved: PeerSet | null = null;
  let wake: (() => void) | null = null;
  /** When the budget's figures last arrived (0: never since start); false once the gateway says it has no /v1/usage. */
  let usageAt = 0;
  let usageSupported = true;

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        ac.signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      ac.signal.addEventListener('abort', done, { once: true });
    });

  const status = (ok: boolean, err: string | null): void => {
    if (ok !== connected) {
      if (ok) o.log.info({ event: 'sync.connected', connected: true }, 'gateway reachable');
      else o.log.warn({ event: 'sync.unreachable', connected: false, err }, 'gateway unreachable; enforcing the last peer set');
    }
    connected = ok;
    lastError = err;
    o.onStatus?.({ connected: ok, pending: o.spool.count(), lastError });
  };

  const save = async (set: PeerSet): Promise<void> => {
    try {
      await o.spool.savePeerSet(set);
      spoolError = null;
      unsaved = null;
    } catch (e) {
      unsaved = set;
      spoolError = `cannot save the peer set to the spool: ${(e as Error).message}`;
      o.log.error({ event: 'spool.peers-failed', version: set.version, err: (e as Error).message }, 'cannot save the peer set to the spool: it is enforced, but a restart before the gateway answers again would enforce the last one saved');
      o.onSpoolError?.(e as Error);
    }
  };

  const pull = async (): Promise<void> => {
    let backoff = 500;
    while (!ac.signal.aborted) {
      if (unsaved) await save(unsaved);
      try {
        const r = await request(`${base}/v1/peers?after=${encodeURIComponent(version)}&wait=${LONG_POLL_SEC}`, { dispatcher: agent, signal: ac.signal });
        const text = await r.body.text();
        if (r.statusCode === 200) {
          const set = parseWire(peerSetSchema, text, 'peer set from the gateway');
          version = set.version;
          recordFields = set.recordFields;
          // Enforced first: a spool that cannot be written (a full disk) must not freeze policy,
          // revocations included. Saving it is for a restart while the gateway is away.
          o.onPeerSet(set);
          await save(set);
        } else if (r.statusCode !== 204) {
          throw new WgoError('GATEWAY_REFUSED', `gateway answered ${r.statusCode}: ${text.slice(0, 200)}`);
        }
        backoff = 500;
        if (!connected) status(true, null);
      } catch (e) {
        if (ac.signal.aborted) return;
        status(false, (e as Error).message);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  };

  /** Figures from a push answer or GET /v1/usage: saved (with the acknowledgement, when there is one), then applied. */
  const gotUsage = async (raw: unknown, ackSeq: number | null): Promise<void> => {
    const u = raw === undefined ? null : usageSchema.safeParse(raw);
    if (u && !u.success) o.log.warn({ event: 'sync.usage-malformed', err: issuesText(u.error) }, 'the gateway sent malformed token figures; ignored');
    const usage = u?.success ? u.data : null;
    if (ackSeq !== null) await o.spool.ack(ackSeq, usage);
    else if (usage) await o.spool.saveUsage(usage);
    if (!usage) return;
    usageAt = Date.now();
    o.onUsage?.(usage);
  };

  const fetchUsage = async (): Promise<void> => {
    const r = await request(`${base}/v1/usage?spool=${o.spool.id()}`, { dispatcher: agent, signal: ac.signal });
    const text = await r.body.text();
    // An older gateway: the peer set's tokensToday is all there is (budget.ts: a lower bound).
    if (r.statusCode === 404) usageSupported = false;
    else if (r.statusCode !== 200) throw new WgoError('GATEWAY_REFUSED', `gateway answered ${r.statusCode} for token figures: ${text.slice(0, 200)}`);
    // JSON checked here, the figures in gotUsage (malformed ones are logged and ignored, as in a push answer).
    else await gotUsage(parseWire(z.unknown(), text, 'usage answer from the gateway'), null);
  };

  const push = async (): Promise<void> => {
    let backoff = PUSH_INTERVAL_MS;
    while (!ac.signal.aborted) {
      const batch = fitBatch(o.spool.pending(PUSH_BATCH));
      if (batch.length === 0 && usageSupported && Date.now() - usageAt >= USAGE_REFRESH_MS) {
        try {
          await fetchUsage();
        } catch (e) {
          if (ac.signal.aborted) return;
          status(false, (e as Error).message);
          await sleep(backoff);
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
          continue;
        }
      }
      if (batch.length === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          void sleep(PUSH_INTERVAL_MS).then(resolve);
        });
        wake = null;
        continue;
      }
      try {
        const r = await request(`${base}/v1/records`, {
          dispatcher: agent,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ spool: o.spool.id(), records: batch.map((r) => recordForGateway(r, recordFields)) } satisfies PushRequest),
          signal: ac.signal,
        });
        const text = await r.body.text();
        if (r.statusCode !== 200) throw new WgoError('GATEWAY_REFUSED', `gateway refused records: ${r.statusCode} ${text.slice(0, 200)}`);
        const answer = parseWire(pushAnswer, text, 'push answer from the gateway');
        // Acknowledged all the same: a record the gateway cannot store would otherwise block every later one.
        for (const x of answer.rejected ?? []) o.log.error({ event: 'sync.record-rejected', seq: x.seq, err: x.error }, 'the gateway rejected a request record');
        await gotUsage(answer.usage, batch[batch.length - 1]!.seq);
        backoff = PUSH_INTERVAL_MS;
        status(true, null);
      } catch (e) {
        if (ac.signal.aborted) return;
        status(false, (e as Error).message);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  };

  /** A pool router's view of its members, to the gateway: when it changed (at most every 2 s), else every 10 s. */
  const report = async (read: () => PoolReport): Promise<void> => {
    let sent = '';
    let sentAt = 0;
    /** The last refusal logged (one line per kind until the gateway takes a report again). */
    let refused = '';
    let wait = POOL_REPORT_MS;
    while (!ac.signal.aborted) {
      await sleep(wait);
      wait = POOL_REPORT_MS;
      if (ac.signal.aborted) return;
      const text = JSON.stringify(read());
      if (text === sent && Date.now() - sentAt < POOL_REPORT_MAX_MS) continue;
      try {
        const r = await request(`${base}/v1/pool`, { dispatcher: agent, method: 'POST', headers: { 'content-type': 'application/json' }, body: text, signal: ac.signal });
        const answer = await r.body.text();
        if (r.statusCode === 204) {
          sent = text;
          sentAt = Date.now();
          refused = '';
          continue;
        }
        // An older gateway, or one that does not name this guard its router: asked again a minute later, said once.
        wait = r.statusCode === 404 || r.statusCode === 403 ? POOL_REPORT_RETRY_MS : POOL_REPORT_MS;
        const kind = `${r.statusCode}`;
        if (kind !== refused) {
          refused = kind;
          if (r.statusCode === 404) o.log.warn({ event: 'sync.pool-unsupported' }, 'the gateway does not take pool reports (an older release): list-guards will not show the GPU hosts');
          else o.log.warn({ event: 'sync.pool-refused', err: `${r.statusCode} ${answer.slice(0, 200)}` }, 'the gateway refused the pool report');
        }
      } catch {
        // Unreachable: the pull loop says so; tried again at the next turn.
      }
    }
  };

  const poolReport = o.poolReport;
  const done = Promise.all([pull(), push(), ...(poolReport ? [report(poolReport)] : [])]);
  return {
    /** Records were spooled: push soon. */
    kick: (): void => wake?.(),
    state: () => ({ connected: connected === true, pending: o.spool.count(), lastError: spoolError ?? lastError, version }),
    async stop(): Promise<void> {
      ac.abort();
      await done.catch(() => undefined);
      // destroy, not close: close() waits for open sockets to end cleanly, ~10 s when the gateway no longer answers.
      await agent.destroy().catch(() => undefined);
    },
  };
}

export type SyncClient = ReturnType<typeof startSyncClient>;
