import { Registry } from 'prom-client';
import { afterEach, expect, test } from 'vitest';
import { retentionPolicy } from '../../../src/core/retention.js';
import { retentionService } from '../../../src/gateway/retention.js';
import { retentionMetrics } from '../../../src/gateway/retention-metrics.js';
import { addAudit, addEvents, addRequests, DAY, NOW, retentionDb } from '../../support/retention-env.js';

let env: ReturnType<typeof retentionDb>;
afterEach(() => env?.cleanup());

test('rows, oldest record, sizes, the ceiling and what the last prune did', async () => {
  env = retentionDb();
  addRequests(env.db, [NOW - 100 * DAY, NOW - 95 * DAY, NOW - 2 * DAY, NOW - DAY]);
  addEvents(env.db, [NOW - 3 * DAY]);
  addAudit(env.db, [NOW - 10 * DAY, NOW - 5 * DAY]);
  const registry = new Registry();
  let m: ReturnType<typeof retentionMetrics> | null = null;
  const svc = retentionService({
    db: env.db, path: env.path, clock: () => NOW, pause: async () => undefined,
    policy: retentionPolicy({ requests: '90d', connections: '30d', audit: '400d', maxDatabaseBytes: 256 * 1024 * 1024 }),
    onBatch: (b) => m?.batch(b),
  });
  m = retentionMetrics(registry, { db: env.db, path: env.path, maxDatabaseBytes: 256 * 1024 * 1024, last: () => svc.last(), clock: () => NOW });
  let text = await registry.metrics();
  expect(text).toContain('wgo_db_rows{log="requests"} 4');
  expect(text).toContain(`wgo_db_oldest_record_timestamp_seconds{log="requests"} ${(NOW - 100 * DAY) / 1000}`);
  expect(text).toContain('wgo_db_max_bytes 268435456');
  expect(text).toContain('wgo_db_auto_vacuum_incremental 1');
  expect(text).toMatch(/wgo_db_size_bytes\{part="used"\} [1-9]\d*/);
  expect(text).toMatch(/wgo_db_size_bytes\{part="file"\} [1-9]\d*/);
  expect(text).toContain('wgo_retention_last_run_timestamp_seconds 0');
  await svc.run();
  text = await registry.metrics();
  expect(text).toContain('wgo_db_rows{log="requests"} 2');
  expect(text).toContain('wgo_db_rows{log="connections"} 1');
  expect(text).toContain('wgo_db_rows{log="audit"} 2');
  expect(text).toContain('wgo_retention_pruned_rows_total{log="requests"} 2');
  expect(text).toContain(`wgo_db_oldest_record_timestamp_seconds{log="requests"} ${(NOW - 2 * DAY) / 1000}`);
  expect(text).toMatch(/wgo_retention_last_run_duration_seconds \d/);
  expect(text).toMatch(/wgo_retention_last_run_longest_lock_hold_seconds \d/);
  expect(text).toContain(`wgo_retention_last_run_timestamp_seconds ${NOW / 1000}`);
  expect(text).toContain('wgo_retention_over_ceiling 0');
});
