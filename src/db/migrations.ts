/**
 * Versioned schema migrations; index i brings user_version from i to i+1.
 * Never edit a shipped migration: append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE peers (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 32 AND name NOT GLOB '*[^a-z0-9._-]*'),
    address       TEXT NOT NULL,
    address_int   INTEGER NOT NULL UNIQUE,     -- never reused while the row exists
    public_key    TEXT NOT NULL UNIQUE CHECK (length(public_key) = 44),
    psk_ref       TEXT UNIQUE,                  -- file name of the preshared key under <state>/psk
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled', 'revoked')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    expiry_noted_at INTEGER
  ) STRICT;
  CREATE UNIQUE INDEX peers_live_name ON peers (name COLLATE NOCASE) WHERE status <> 'revoked';
  CREATE INDEX peers_status ON peers (status, expires_at);

  -- Keys a peer used before a rotation or revocation: never accepted again.
  CREATE TABLE retired_keys (
    public_key TEXT PRIMARY KEY,
    peer_id    INTEGER NOT NULL REFERENCES peers (id),
    retired_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    source  TEXT NOT NULL,
    details TEXT
  ) STRICT;
  CREATE INDEX audit_log_at ON audit_log (at);

  CREATE TABLE connection_events (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    peer_id      INTEGER NOT NULL REFERENCES peers (id),
    kind         TEXT NOT NULL CHECK (kind IN ('handshake', 'handshake_lost', 'endpoint_changed', 'traffic')),
    endpoint     TEXT,
    old_endpoint TEXT,
    rx_bytes     INTEGER,
    tx_bytes     INTEGER
  ) STRICT;
  CREATE INDEX connection_events_at ON connection_events (at);
  CREATE INDEX connection_events_peer ON connection_events (peer_id, at);

  -- What the connection monitor last saw of each peer (for status pages and restarts).
  CREATE TABLE peer_link (
    peer_id          INTEGER PRIMARY KEY REFERENCES peers (id),
    public_key       TEXT NOT NULL,
    endpoint         TEXT,
    latest_handshake INTEGER NOT NULL,
    connected        INTEGER NOT NULL,
    rx_seen          INTEGER NOT NULL,
    tx_seen          INTEGER NOT NULL,
    rx_pending       INTEGER NOT NULL,
    tx_pending       INTEGER NOT NULL,
    rx_total         INTEGER NOT NULL,
    tx_total         INTEGER NOT NULL,
    traffic_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
  ) STRICT;
  `,
  // 2: a change sequence on peers, so the daemon can apply just what changed.
  // Writers are serialised (BEGIN IMMEDIATE), so the sequence follows commit order.
  `
  ALTER TABLE peers ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
  UPDATE peers SET change_seq = id;
  CREATE INDEX peers_change_seq ON peers (change_seq);
  CREATE TRIGGER peers_seq_insert AFTER INSERT ON peers BEGIN
    UPDATE peers SET change_seq = (SELECT coalesce(max(change_seq), 0) + 1 FROM peers) WHERE id = NEW.id;
  END;
  CREATE TRIGGER peers_seq_update AFTER UPDATE OF name, address, public_key, psk_ref, status, expires_at ON peers BEGIN
    UPDATE peers SET change_seq = (SELECT coalesce(max(change_seq), 0) + 1 FROM peers) WHERE id = NEW.id;
  END;
  `,
  // 3: the CA's certificates, per-peer policy, guards, and one row per LLM request.
  `
  CREATE TABLE guards (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 32 AND name NOT GLOB '*[^a-z0-9._-]*'),
    address     TEXT NOT NULL,
    dns_names   TEXT NOT NULL DEFAULT '[]',   -- JSON array
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    last_seen_at   INTEGER,
    last_seen_from TEXT,
    last_version   TEXT
  ) STRICT;

  -- Every certificate the CA issued. The guard accepts a client certificate only
  -- while its serial is the current one of an active peer.
  CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY,            -- lowercase hex, no leading zeros
    role        TEXT NOT NULL CHECK (role IN ('peer', 'guard-server', 'guard-client', 'gateway-server')),
    peer_id     INTEGER REFERENCES peers (id),
    guard_id    INTEGER REFERENCES guards (id),
    common_name TEXT NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL,
    revoked_at  INTEGER,
    cert_pem    TEXT NOT NULL
  ) STRICT;
  CREATE INDEX certificates_peer ON certificates (peer_id);
  CREATE INDEX certificates_guard ON certificates (guard_id);

  ALTER TABLE peers ADD COLUMN cert_serial TEXT;   -- the peer's current client certificate
  ALTER TABLE peers ADD COLUMN policy TEXT;        -- JSON overrides of the configured default policy

  DROP TRIGGER peers_seq_update;
  CREATE TRIGGER peers_seq_update AFTER UPDATE OF name, address, public_key, psk_ref, status, expires_at, cert_serial, policy ON peers BEGIN
    UPDATE peers SET change_seq = (SELECT coalesce(max(change_seq), 0) + 1 FROM peers) WHERE id = NEW.id;
  END;

  -- One row per request the guard saw, refused ones included. (guard, spool, guard_seq)
  -- makes a batch pushed twice land once; spool is the random id of the guard's spool
  -- file, so a guard whose spool was replaced starts a new sequence instead of colliding.
  CREATE TABLE requests (
    id            INTEGER PRIMARY KEY,
    guard         TEXT NOT NULL,
    spool         TEXT NOT NULL DEFAULT '',
    guard_seq     INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    peer_id       INTEGER REFERENCES peers (id),
    peer          TEXT,
    cert_serial   TEXT,
    source        TEXT NOT NULL,
    method        TEXT,
    path          TEXT,
    endpoint      TEXT,
    model         TEXT,
    prompt_sha256 TEXT,
    prompt_length INTEGER,
    prompt_text   TEXT,                       -- only when logPrompts is on
    status        INTEGER NOT NULL,
    bytes_in      INTEGER NOT NULL,
    bytes_out     INTEGER NOT NULL,
    prompt_tokens INTEGER,
    eval_tokens   INTEGER,
    ttfb_ms       REAL,
    duration_ms   REAL NOT NULL,
    refusal       TEXT,
    UNIQUE (guard, spool, guard_seq)
  ) STRICT;
  CREATE INDEX requests_at ON requests (at);
  CREATE INDEX requests_peer ON requests (peer_id, at);
  `,
  `
  -- Admins of the web UI. No default account: "wg-ollama admin add" creates them.
  -- password_hash is scrypt (see src/admin/passwords.ts); totp_secret is sealed with
  -- the key in <state>/admin.key (AES-256-GCM), so a copy of the database alone
  -- cannot produce codes. totp_step is the last accepted time step (no replay).
  CREATE TABLE admins (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 32 AND name NOT GLOB '*[^a-z0-9._-]*'),
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash TEXT NOT NULL,
    totp_secret   TEXT NOT NULL,
    totp_step     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
  ) STRICT;

  -- Web sessions; the cookie holds the id, the table only its SHA-256.
  CREATE TABLE admin_sessions (
    id_hash    TEXT PRIMARY KEY,
    admin_id   INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id);

  -- Failed sign-ins per key ('account:NAME' — names that do not exist too — and
  -- 'source:IP'), counted in a window; locked_until is set when a limit is reached.
  CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER
  ) STRICT;

  -- One-time enrollment links: the URL holds the token, the table only its SHA-256.
  -- The peer is created when the link is used, so its keys exist only on that page.
  CREATE TABLE enrollments (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    peer_name   TEXT NOT NULL,
    expires_in_ms INTEGER,                    -- the peer's own lifetime, from enrollment
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    used_from   TEXT,
    cancelled_at INTEGER
  ) STRICT;
  CREATE INDEX enrollments_name ON enrollments (peer_name);
  `,
  // 5: peer-bound API tokens (issue 9), and which method authenticated each request.
  `
  -- At most one token per peer, stored only as its SHA-256. It is bound to the peer's
  -- certificate current when it was issued: rotate-peer leaves it behind, dead.
  CREATE TABLE peer_tokens (
    peer_id      INTEGER PRIMARY KEY REFERENCES peers (id),
    token_sha256 TEXT NOT NULL UNIQUE CHECK (length(token_sha256) = 64 AND token_sha256 NOT GLOB '*[^0-9a-f]*'),
    cert_serial  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL
  ) STRICT;
  -- A token issued, replaced or revoked changes what guards enforce: it moves the peer's change sequence.
  CREATE TRIGGER peer_tokens_seq_insert AFTER INSERT ON peer_tokens BEGIN
    UPDATE peers SET change_seq = (SELECT coalesce(max(change_seq), 0) + 1 FROM peers) WHERE id = NEW.peer_id;
  END;
  CREATE TRIGGER peer_tokens_seq_update AFTER UPDATE ON peer_tokens BEGIN
    UPDATE peers SET change_seq = (SELECT coalesce(max(change_seq), 0) + 1 FROM peers) WHERE id IN (OLD.peer_id, NEW.peer_id);
  END;
  CREATE TRIGGER peer_tokens_seq_delete AFTER DELETE ON peer_tokens BEGIN
    UPDATE peers SET change_seq = (SELECT coalesce(max(change_seq), 0) + 1 FROM peers) WHERE id = OLD.peer_id;
  END;

  -- 'certificate' or 'token'; NULL for a request refused before anyone was identified (and for rows from older guards).
  ALTER TABLE requests ADD COLUMN auth TEXT CHECK (auth IN ('certificate', 'token'));
  `,
  // 6: typed sign-in names (issue 10, item 7). Earlier releases kept a failed sign-in's name
  // field as typed — where people type passwords by mistake — in throttle keys and the audit
  // log. Throttle keys are per name tag and address now, so the old ones are only stale
  // counters; audit rows that name no account say 'unknown'. secure_delete zeroes the freed
  // bytes, so the text leaves the file too (for this connection; it costs little).
  `
  PRAGMA secure_delete = ON;
  DELETE FROM login_throttle WHERE key LIKE 'account:%';
  UPDATE audit_log SET actor = 'unknown'
    WHERE action IN ('admin.login.failed', 'admin.login.locked', 'admin.login.replay')
      AND actor <> '-' AND actor NOT LIKE 'unknown:%' AND actor NOT IN (SELECT name FROM admins);
  UPDATE audit_log SET target = 'unknown'
    WHERE action IN ('admin.login.failed', 'admin.login.locked', 'admin.login.replay')
      AND target IS NOT NULL AND target NOT LIKE 'unknown:%' AND target NOT IN (SELECT name FROM admins);
  `,
  // 7: the daily token budget (issue 10, item 1). Tokens charged by estimate: the guard charges
  // an estimate when Ollama's final counts are missing or implausible, and the record carries it
  // (NULL: the counts were charged). And today's charged tokens per peer kept as a running sum,
  // since guards ask for them with every push: summing a day's rows each time costs ~0.8 s per
  // 200,000 rows. What a row charged is db/requests.ts CHARGED_SQL; the day is the UTC day of
  // its `at`; rows are never updated or deleted, so the sum follows inserts only.
  `
  ALTER TABLE requests ADD COLUMN estimated_tokens INTEGER CHECK (estimated_tokens >= 0);
  CREATE TABLE peer_tokens_daily (
    day     TEXT NOT NULL,                    -- UTC day, YYYY-MM-DD
    peer_id INTEGER NOT NULL REFERENCES peers (id),
    tokens  INTEGER NOT NULL,
    PRIMARY KEY (day, peer_id)
  ) STRICT, WITHOUT ROWID;
  INSERT INTO peer_tokens_daily (day, peer_id, tokens)
    SELECT strftime('%Y-%m-%d', at / 1000, 'unixepoch'), peer_id, sum(coalesce(prompt_tokens, 0) + coalesce(eval_tokens, 0))
    FROM requests WHERE peer_id IS NOT NULL GROUP BY 1, 2;
  CREATE TRIGGER requests_tokens_daily AFTER INSERT ON requests
    WHEN NEW.peer_id IS NOT NULL AND coalesce(NEW.estimated_tokens, coalesce(NEW.prompt_tokens, 0) + coalesce(NEW.eval_tokens, 0)) > 0
  BEGIN
    INSERT INTO peer_tokens_daily (day, peer_id, tokens)
      VALUES (strftime('%Y-%m-%d', NEW.at / 1000, 'unixepoch'), NEW.peer_id,
        coalesce(NEW.estimated_tokens, coalesce(NEW.prompt_tokens, 0) + coalesce(NEW.eval_tokens, 0)))
      ON CONFLICT (day, peer_id) DO UPDATE SET tokens = tokens + excluded.tokens;
  END;
  `,
  // 8: small facts the gateway keeps about itself (key → value). First use: the single-box
  // guard's write probe — while request records cannot be written (a full disk), one committed
  // write tells when they can again (guard/audit.ts, gateway/local-audit.ts).
  `
  CREATE TABLE gateway_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) STRICT, WITHOUT ROWID;
  `,
  // 9: retention (issue 12, item 2). Pruning deletes old request records, but a guard's budget
  // reads the highest sequence number stored from its spool (`upTo`, requests.spoolSeq) and the
  // single-box guard numbers its records on from the highest stored (requests.maxSeq): that
  // number must not go back when the rows holding it are pruned. The pruner writes the highest
  // seq of every (guard, spool) it deletes rows of here, in the same transaction. Only new rows:
  // nothing to fill on an existing database (its rows still hold their numbers).
  `
  CREATE TABLE request_spool_seqs (
    guard TEXT NOT NULL,
    spool TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (guard, spool)
  ) STRICT, WITHOUT ROWID;
  `,
  // 10: a pool of GPU hosts (issue 14, docs/gpu-pool.md). A guard is on its own ('none', every
  // guard before this), the pool's router, or a member behind it with a parallelism (its
  // OLLAMA_NUM_PARALLEL) and a draining flag. The router reports what it sees of each member
  // (health, models, in flight, queued) as JSON, with when. A request record says which
  // member served it and how long it waited for a slot there.
  `
  ALTER TABLE guards ADD COLUMN pool_role TEXT NOT NULL DEFAULT 'none' CHECK (pool_role IN ('none', 'router', 'member'));
  ALTER TABLE guards ADD COLUMN parallel INTEGER CHECK (parallel BETWEEN 1 AND 256);
  ALTER TABLE guards ADD COLUMN draining INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1));
  ALTER TABLE guards ADD COLUMN pool_report TEXT;
  ALTER TABLE guards ADD COLUMN pool_reported_at INTEGER;
  ALTER TABLE requests ADD COLUMN host TEXT;
  ALTER TABLE requests ADD COLUMN queue_ms INTEGER CHECK (queue_ms >= 0);
  `,
  // 11: which drain a member is in (issue 14, from review). remove-guard must know that the router's
  // report of "draining, nothing in flight" is about the current drain, not one undone since: the
  // gateway stamps each drain (ms), the peer set carries the stamp, the router echoes it.
  // A member drained under schema 10 gets a stamp now.
  `
  ALTER TABLE guards ADD COLUMN drained_at INTEGER;
  UPDATE guards SET drained_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000 WHERE draining = 1;
  `,
];
