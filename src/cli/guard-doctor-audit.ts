import { existsSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import type { GuardConfig } from '../guard/config.js';

export type Check = { check: string; status: 'ok' | 'warn' | 'fail'; detail: string };

/** Free space under which the state directory is reported (the spool grows while the gateway is away). */
const LOW_SPACE = 64 * 1024 * 1024;

/**
 * `doctor --guard`, the audit trail: can request records be written to the spool (one small
 * committed write, as the guard makes), how much space is left, and does the running guard
 * (its /healthz on metricsListen) say it can write them.
 */
export async function auditChecks(config: GuardConfig): Promise<Check[]> {
  const out: Check[] = [];
  const path = join(config.stateDir, 'spool.db');
  const consequence = config.auditFailure === 'refuse' ? 'the guard answers every request 503 until it can' : 'the guard serves without an audit trail until it can (auditFailure "serve")';
  if (!existsSync(path)) {
    out.push({ check: 'spool', status: 'warn', detail: `${path} does not exist yet (the guard has not run with this stateDir)` });
  } else {
    let db: Database.Database | null = null;
    try {
      db = new Database(path, { fileMustExist: true, timeout: 5000 });
      db.prepare(`INSERT INTO kv (key, value) VALUES ('doctor', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(String(Date.now()));
      const waiting = db.prepare(`SELECT count(*) FROM records`).pluck().get() as number;
      out.push({ check: 'spool', status: 'ok', detail: `${path} can be written; ${waiting} records waiting for the gateway` });
      const used = ((db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number)) * (db.pragma('page_size', { simple: true }) as number);
      const max = config.spool.maxBytes;
      const fill = `${Math.floor(used / 1024 / 1024)} MiB used of spool.maxBytes ${Math.floor(max / 1024 / 1024)} MiB (${Math.round((used / max) * 100)} %)`;
      out.push(used >= max * 0.8
        ? { check: 'spool fill', status: 'warn', detail: `${fill}: records are not reaching the gateway; at the ceiling ${consequence}` }
        : { check: 'spool fill', status: 'ok', detail: fill });
    } catch (e) {
      const code = (e as { code?: string }).code;
      out.push({ check: 'spool', status: 'fail', detail: `${path} cannot be written (${code ?? 'error'}: ${(e as Error).message}): ${consequence}; free space in ${config.stateDir} or make it writable` });
    } finally {
      db?.close();
    }
  }
  try {
    const fs = statfsSync(config.stateDir);
    const free = fs.bavail * fs.bsize;
    const mib = (n: number): string => `${Math.floor(n / 1024 / 1024)} MiB`;
    out.push({ check: 'spool space', status: free < LOW_SPACE ? 'warn' : 'ok', detail: `${mib(free)} free in ${config.stateDir}${free < LOW_SPACE ? ` (under ${mib(LOW_SPACE)})` : ''}` });
  } catch (e) {
    out.push({ check: 'spool space', status: 'warn', detail: `cannot read free space of ${config.stateDir}: ${(e as Error).message}` });
  }
  if (config.metricsListen) {
    const url = `http://${config.metricsListen}/healthz`;
    try {
      const r = await request(url, { headersTimeout: 3000, bodyTimeout: 3000 });
      const h = (await r.body.json()) as { audit?: { ok: boolean; mode: string; buffered: number }; lastError?: string | null };
      if (!h.audit) out.push({ check: 'guard audit', status: 'warn', detail: `${url} does not report the audit trail (an older guard?)` });
      else if (h.audit.ok) out.push({ check: 'guard audit', status: 'ok', detail: `the running guard writes its request records (auditFailure "${h.audit.mode}")` });
      else out.push({ check: 'guard audit', status: 'fail', detail: `the running guard cannot write request records: ${h.lastError ?? 'unknown error'}; ${consequence}; ${h.audit.buffered} records wait in memory` });
    } catch (e) {
      out.push({ check: 'guard audit', status: 'warn', detail: `the guard does not answer on ${url} (${(e as Error).message}): is it running?` });
    }
  }
  return out;
}
