import { modelLabeller } from '../core/metric-labels.js';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the guard counts, as Prometheus metrics in the given registry. */
export function guardMetrics(registry: Registry) {
  const requests = new Counter({
    name: 'wgo_guard_requests_total',
    help: 'Requests answered by the guard, by peer, model and HTTP status',
    labelNames: ['peer', 'model', 'status'] as const,
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'wgo_guard_tokens_total',
    help: "Tokens counted from Ollama's own final counts, by peer, model and kind (prompt or eval)",
    labelNames: ['peer', 'model', 'kind'] as const,
    registers: [registry],
  });
  const streams = new Gauge({
    name: 'wgo_guard_active_streams',
    help: 'Generating requests in flight to Ollama, by peer (bounded by maxStreams)',
    labelNames: ['peer'] as const,
    registers: [registry],
  });
  const upstreamInFlight = new Gauge({
    name: 'wgo_guard_upstream_in_flight',
    help: 'Requests in flight to Ollama, every endpoint, by peer (bounded per peer by limits.maxUpstreamPerPeer)',
    labelNames: ['peer'] as const,
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'wgo_guard_refusals_total',
    help: 'Requests the guard refused or cut, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'wgo_guard_tls_auth_failures_total',
    help: 'Connections or requests refused for their client certificate, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const tokenFailures = new Counter({
    name: 'wgo_guard_token_failures_total',
    help: 'Requests refused for their peer-bound API token, by reason (malformed, unknown, wrong_source, expired, rate_limited)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'wgo_guard_request_duration_seconds',
    help: 'Time from request to the last byte of the answer',
    labelNames: ['endpoint'] as const,
    buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300],
    registers: [registry],
  });
  const auditOk = new Gauge({ name: 'wgo_guard_audit_ok', help: 'Whether request records can be written to the spool (1) or not (0: a full disk, a read-only file system)', registers: [registry] });
  const spoolWriteFailures = new Counter({ name: 'wgo_guard_spool_write_failures_total', help: 'Writes to the spool that failed (request records, peer sets, probes)', registers: [registry] });
  const unrecorded = new Counter({ name: 'wgo_guard_unrecorded_requests_total', help: 'Requests served while records could not be written (auditFailure "serve")', registers: [registry] });
  const dropped = new Counter({ name: 'wgo_guard_records_dropped_total', help: 'Request records dropped: more waited in memory for a spool that could not be written than the guard keeps', registers: [registry] });
  const queueWait = new Histogram({
    name: 'wgo_guard_queue_wait_seconds',
    help: 'Time a request waited for a free slot on a GPU host of the pool (0: it got one at once)',
    buckets: [0, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30],
    registers: [registry],
  });
  const peerSetVersion = new Gauge({ name: 'wgo_guard_peers', help: 'Active peers the guard enforces', registers: [registry] });
  // The exchange passes a model only for answers Ollama served; the labeller bounds how many there are.
  const model = modelLabeller();
  return {
    request(peer: string, m: string | null, status: number, endpoint: string | null, seconds: number): void {
      requests.inc({ peer, model: model(m, true), status: String(status) });
      duration.observe({ endpoint: endpoint ?? '' }, seconds);
    },
    tokens(peer: string, m: string | null, prompt: number, evalCount: number): void {
      if (prompt) tokens.inc({ peer, model: model(m, true), kind: 'prompt' }, prompt);
      if (evalCount) tokens.inc({ peer, model: model(m, true), kind: 'eval' }, evalCount);
    },
    stream: (peer: string, delta: 1 | -1) => streams.inc({ peer }, delta),
    upstreamInFlight: (peer: string, n: number) => upstreamInFlight.set({ peer }, n),
    refusal: (reason: string) => refusals.inc({ reason }),
    authFailure: (reason: string) => authFailures.inc({ reason }),
    tokenFailure: (reason: string) => tokenFailures.inc({ reason }),
    peers: (n: number) => peerSetVersion.set(n),
    auditOk: (ok: boolean) => auditOk.set(ok ? 1 : 0),
    spoolWriteFailure: () => spoolWriteFailures.inc(),
    unrecorded: () => unrecorded.inc(),
    recordsDropped: (n: number) => dropped.inc(n),
    queueWait: (seconds: number) => queueWait.observe(seconds),
  };
}

export type GuardMetrics = ReturnType<typeof guardMetrics>;

/** The spool's fill: records waiting for the gateway, the oldest one's time, used bytes against spool.maxBytes. */
export function spoolMetrics(registry: Registry, size: () => { usedBytes: number; fileBytes: number; maxBytes: number; records: number; oldestAt: number | null }): void {
  const gauge = (name: string, help: string, value: (s: ReturnType<typeof size>) => number | null): void =>
    void new Gauge({
      name, help, registers: [registry],
      collect() {
        this.reset();
        const v = value(size());
        if (v !== null) this.set(v);
      },
    });
  gauge('wgo_guard_spool_records', 'Request records in the spool, waiting for the gateway to acknowledge them', (s) => s.records);
  gauge('wgo_guard_spool_oldest_record_timestamp_seconds', 'Time of the oldest record waiting in the spool (absent: none waits)', (s) => (s.oldestAt === null ? null : Math.floor(s.oldestAt / 1000)));
  gauge('wgo_guard_spool_bytes', 'Used size of the spool (pages in use)', (s) => s.usedBytes);
  gauge('wgo_guard_spool_max_bytes', 'The spool ceiling (guard.json spool.maxBytes): at it, records cannot be written and auditFailure decides', (s) => s.maxBytes);
}

/** Each GPU host of the pool as the router sees it (pool.ts), read at every scrape. */
export function poolMetrics(registry: Registry, pool: { status(): { name: string; health: string; draining: boolean; parallel: number; inFlight: number; queued: number; models: string[] }[]; queued(): number }): void {
  const perHost = (name: string, help: string, value: (h: ReturnType<typeof pool.status>[number]) => number): void =>
    void new Gauge({
      name, help, labelNames: ['host'] as const, registers: [registry],
      collect() {
        this.reset();
        for (const h of pool.status()) this.set({ host: h.name }, value(h));
      },
    });
  perHost('wgo_guard_pool_host_up', 'Whether the GPU host is in the rotation (1), or cooling down after failures or not yet probed (0)', (h) => (h.health === 'healthy' ? 1 : 0));
  perHost('wgo_guard_pool_host_draining', 'Whether the GPU host is draining: no new requests, running ones finish', (h) => (h.draining ? 1 : 0));
  perHost('wgo_guard_pool_host_in_flight', 'Requests in flight to the GPU host (at most its parallelism)', (h) => h.inFlight);
  perHost('wgo_guard_pool_host_queued', 'Requests waiting that the GPU host could take once a slot frees (one request may count for several hosts)', (h) => h.queued);
  perHost('wgo_guard_pool_host_parallel', 'Requests the GPU host takes at once (its configured parallelism)', (h) => h.parallel);
  perHost('wgo_guard_pool_host_models', 'Models the GPU host has (its /api/tags at the last probe)', (h) => h.models.length);
  void new Gauge({
    name: 'wgo_guard_pool_queued', help: 'Requests waiting for a free slot on a GPU host', registers: [registry],
    collect() {
      this.set(pool.queued());
    },
  });
}
