/**
 * The events `serve` and `guard` log: every JSON line they write has one of
 * these names in its `event` field, so a log pipeline (journald, Promtail,
 * Vector) can select and alert on them. A name keeps its meaning across
 * releases; a new kind of line gets a new name. The README's "Logs" section
 * lists them (a test keeps the two equal).
 */
export const LOG_EVENTS = {
  // serve (the gateway daemon)
  'serve.start': 'serve is up: the first reconcile ran (interface, peers, ok)',
  'serve.stop': 'serve stops on a signal; the firewall stays closed (signal)',
  'serve.failed': 'serve could not start or stopped on an error (code, err); it exits',
  'reconcile.done': 'a reconcile changed the kernel state (mode, peers, created, firewallRepaired, setAdded, setRemoved, wgUpserted, wgRemoved, cut, durationMs)',
  'reconcile.failed': 'a reconcile failed; the next one retries (the same fields, errors)',
  'tunnel-barrier.failed': 'the tc ingress barrier could not be installed: the tunnel interface stays down (iface, err)',
  'desired.failed': 'the desired state could not be read from the database',
  'forwarding.off': 'net.ipv4.ip_forward is off: peers cannot reach the Ollama host',
  'forwarding.enabled': 'serve turned net.ipv4.ip_forward on',
  'ca.unconstrained': 'the CA has no name constraints: run reissue-ca',
  'ca.reissued': 'the CA certificate was re-issued to permit names the config added (permitted)',
  'tokens.pruned': 'API tokens removed because the default policy no longer allows them (peers)',
  'psk.pruned': 'orphaned preshared-key files removed (files)',
  'peer.expired': 'a peer reached its expiry and lost access (peer)',
  'expiry.failed': 'the expiry bookkeeping failed; retried (err)',
  'monitor.recorded': 'debug: connection events recorded (events)',
  'monitor.failed': 'a connection-monitor tick failed (err)',
  'guard-link.failed': 'the peer set for guards could not be loaded (err)',
  'sync-api.start': 'the guard sync API listens (listen)',
  'admin-ui.start': 'the admin web UI listens (listen, hosts)',
  'admin-ui.failed': 'an admin UI request failed with an internal error (err)',
  'local-guard.start': 'single-box mode: the in-process guard listens (listen, upstream)',
  'local-guard.peers-failed': 'single-box mode: the peer set could not be loaded; retried (err)',
  'budget.failed': "single-box mode: today's token use could not be read; retried (err)",
  'retention.pruned': 'old log rows were pruned and space given back (deleted, deletedForCeiling, batches, longestHoldMs, vacuumedPages, durationMs, usedBytes)',
  'retention.vacuumed': 'a small older database was rebuilt once so pruned space goes back to the file system (vacuumMs, bytes)',
  'retention.vacuum-needed': 'this database keeps pruned space in the file: run "wg-ollama vacuum" once (bytes)',
  'retention.over-ceiling': 'the database is over retention.maxDatabaseBytes (usedBytes, maxDatabaseBytes)',
  'retention.near-ceiling': 'the database is at 80 % of retention.maxDatabaseBytes or more (usedBytes, maxDatabaseBytes)',
  'retention.failed': 'pruning old log rows failed; retried at the next run (err)',
  'denial.saved': 'a revoke or disable that a full disk kept out of the database is saved now (peer, action)',
  'denial.failed': 'the revokes and disables kept while the disk was full cannot be saved yet; retried (err)',
  // guard (on a GPU host; also in serve in single-box mode)
  'guard.start': 'the guard is up (listen, upstream, gateway)',
  'guard.stop': 'the guard stops on a signal (signal)',
  'guard.failed': 'the guard could not start or stopped on an error (code, err); it exits',
  'peers.cached': 'the guard enforces the peer set saved at the last sync (version, peers)',
  'peers.cache-unreadable': 'the saved peer set could not be read: nobody gets in until the gateway answers (err)',
  'peers.updated': 'a new peer set from the gateway is in force (version, peers)',
  'sync.connected': 'the gateway answers the guard (again)',
  'sync.unreachable': 'the gateway does not answer: the guard enforces the last peer set and spools records (err)',
  'spool.peers-failed': 'the peer set could not be saved to the spool (version, err)',
  'sync.usage-malformed': 'the gateway sent malformed token figures; ignored (err)',
  'sync.record-rejected': 'the gateway rejected a request record (seq, err)',
  'sync.pool-unsupported': 'the gateway takes no pool reports (an older release): list-guards cannot show the GPU hosts; asked again every minute',
  'sync.pool-refused': 'the gateway refused the pool router\'s report of its GPU hosts (err); said once per kind of refusal',
  'pool.members': 'the pool router\'s GPU hosts changed (members, draining)',
  'pool.members-failed': 'the GPU hosts of a peer set could not be routed to; the previous ones stay (err)',
  'pool.not-router': 'this guard is configured as the pool router but the gateway does not name it one: it routes to no GPU host (name)',
  'pool.routers': 'the routers this pool member serves changed (routers)',
  'audit.failed': 'request records cannot be written; auditFailure decides (mode, err)',
  'audit.restored': 'request records can be written again',
  'audit.unrecorded': 'stopping with request records that could not be written: they are in this line only, prompts left out (count, err, records)',
  'exchange.failed': 'a proxied request failed inside the guard (err)',
} as const;

export type LogEvent = keyof typeof LOG_EVENTS;

/** The fields of one log line: a known event, then whatever belongs to it. */
export interface LogFields {
  event: LogEvent;
  [field: string]: unknown;
}

/**
 * The logger serve, guard and their parts take: pino's, typed so that every
 * line names its event (src/system/logger.ts makes the real one).
 */
export interface EventLog {
  debug(fields: LogFields, msg: string): void;
  info(fields: LogFields, msg: string): void;
  warn(fields: LogFields, msg: string): void;
  error(fields: LogFields, msg: string): void;
}
