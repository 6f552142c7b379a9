import type { Db } from '../db/open.js';
import { requestRepository } from '../db/requests.js';
import type { RequestRecord } from '../core/request-record.js';
import type { AuditSpool } from '../guard/audit.js';
import type { DraftRecord } from '../guard/recorder.js';

/**
 * The single-box guard's "spool" is the gateway's own database: records are stored under guard
 * 'local' with the next sequence numbers, and the probe is one committed write to gateway_state
 * (migration 8), so guard/audit.ts can tell when a full disk has room again. A failed insert uses
 * no sequence number.
 */
export function localAuditSpool(db: Db): AuditSpool {
  const requests = requestRepository(db);
  let seq = requests.maxSeq('local');
  const probe = db.prepare(`INSERT INTO gateway_state (key, value) VALUES ('write_probe', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`);
  return {
    append(batch: DraftRecord[]): RequestRecord[] {
      const records = batch.map((r, i) => ({ ...r, seq: seq + i + 1 }));
      requests.insertBatch('local', records);
      seq += records.length;
      return records;
    },
    probe(): void {
      probe.run(String(Date.now()));
    },
  };
}
