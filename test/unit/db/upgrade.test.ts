/**
 * Upgrades from every released schema version: each fixture in test/fixtures/db (made by
 * scripts/make-db-fixtures.mjs with that release's own CLI, see the README there) is loaded,
 * migrated by openDatabase to the current schema, and read back through the current
 * repositories and query service. What the old release's CLI reported (vN.expect.json) must
 * still be there: peers, certificates (signed by that state's CA), policies (valid for the
 * current parsers and the guard's peer-set schema), API tokens, request records, connection
 * events, admin audit, guards and admins. A new vN.sql is picked up without editing this file.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, test } from 'vitest';
import { parseConfig } from '../../../src/config.js';
import { tokenHash } from '../../../src/core/api-token.js';
import { policyOverrideSchema, policySchema } from '../../../src/core/policy.js';
import { peerSetSchema } from '../../../src/core/wire.js';
import { adminRepository } from '../../../src/db/admins.js';
import { certificateRepository } from '../../../src/db/certificates.js';
import { MIGRATIONS } from '../../../src/db/migrations.js';
import { openDatabase } from '../../../src/db/open.js';
import { peerRepository } from '../../../src/db/peers.js';
import { peerSetSource } from '../../../src/gateway/peer-set.js';
import { queryService } from '../../../src/gateway/queries.js';

const FIXTURES = resolve(import.meta.dirname, '../../fixtures/db');
const FILE = /^v(\d+)\.sql$/;

interface ManifestEntry { commit: string; made: string; files: { sql: string; expect: string; ca: string | null } }
interface Manifest { schemaVersion: number; versions: Record<string, ManifestEntry> }
type Row = Record<string, unknown>;
interface Expected {
  peers: Record<string, { address: string; publicKey: string }>;
  certificates: { peer: string; serial: string; sha256: string }[];
  policies: Record<string, Row | null>;
  tokens: Record<string, { token: string }>;
  /** Pool fields from schema 10 on; older guards must read as guards on their own. */
  guards: { name: string; address: string; poolRole?: string; parallel?: number | null; draining?: boolean }[];
  admins: { name: string; role: string }[];
  list: { name: string; address: string; publicKey: string; status: string; expiresAt: string | null; revokedAt: string | null }[];
  logs: { audit: Row[]; connections: Row[]; requests?: Row[] };
  caSha256?: string;
}

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;
const fixtures = readdirSync(FIXTURES).filter((f) => FILE.test(f)).map((f) => Number(FILE.exec(f)![1])).sort((a, b) => a - b);
const dir = mkdtempSync(join(tmpdir(), 'wgo-upgrade-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = parseConfig({
  stateDir: join(dir, 'state'), interface: 'wgo0', listenPort: 51820, subnet: '10.66.0.0/24',
  endpoint: 'vpn.example.com:51820', ollamaHost: '192.168.1.50', ollamaPort: 11434,
}, join(dir, 'config.json'));

describe('the fixture set', () => {
  test('has a fixture for every schema version up to the one it was made at, each listed in the manifest', () => {
    expect(manifest.schemaVersion).toBeGreaterThanOrEqual(1);
    expect(manifest.schemaVersion).toBeLessThanOrEqual(MIGRATIONS.length);
    const wanted = Array.from({ length: manifest.schemaVersion }, (_, i) => i + 1);
    expect(Object.keys(manifest.versions).map(Number).sort((a, b) => a - b)).toEqual(wanted);
    expect(fixtures).toEqual(wanted);
    for (const [n, e] of Object.entries(manifest.versions)) {
      expect(e.commit).toMatch(/^[0-9a-f]{40}$/);
      expect(e.files.sql).toBe(`v${n}.sql`);
      for (const f of [e.files.sql, e.files.expect, e.files.ca]) if (f !== null) expect(existsSync(join(FIXTURES, f)), f).toBe(true);
    }
  });
});

/** Loads a fixture's SQL into a new database file; returns its path. */
function load(version: number): string {
  const path = join(dir, `v${version}.db`);
  const raw = new Database(path);
  raw.exec(readFileSync(join(FIXTURES, `v${version}.sql`), 'utf8'));
  expect(raw.pragma('user_version', { simple: true })).toBe(version);
  raw.close();
  return path;
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const iso = (ms: unknown): unknown => (typeof ms === 'number' ? new Date(ms).toISOString() : ms);

/** Each field the old CLI printed has the same value now (times compared as the CLI prints them). */
function expectRowsKept(now: Row[], then: Row[], what: string): void {
  expect(now.length, `${what}: rows`).toBe(then.length);
  then.forEach((old, i) => {
    const cur = now[i]!;
    for (const [k, v] of Object.entries(old)) {
      expect(k in cur, `${what} #${i}: field ${k} is gone`).toBe(true);
      expect(k === 'at' ? iso(cur[k]) : cur[k], `${what} #${i}: ${k}`).toEqual(v);
    }
  });
}

describe.each(fixtures)('upgrade from schema version %i', (version) => {
  const entry = manifest.versions[version];
  const expected = JSON.parse(readFileSync(join(FIXTURES, entry?.files.expect ?? `v${version}.expect.json`), 'utf8')) as Expected;

  test('migrates to the current schema; peers, certificates, policies, tokens, records, events and audit survive', () => {
    const path = load(version);
    const db = openDatabase(path);
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.pragma('foreign_key_check')).toEqual([]);
      // "Now" is when the fixture was made, so that expiry (a peer's, a certificate's) reads as it did then.
      const made = Date.parse(entry!.made);
      const q = queryService({ db, config, clock: () => made });

      // Peers: names, addresses, keys, status, expiry, as the old CLI listed them.
      const peers = q.peers({ includeRevoked: true }).map((p) => ({ name: p.name, address: p.address, publicKey: p.publicKey, status: p.status, expiresAt: p.expiresAt, revokedAt: p.revokedAt }));
      expect(peers).toEqual([...expected.list].sort((a, b) => a.name.localeCompare(b.name)));
      for (const [name, p] of Object.entries(expected.peers)) expect(q.peer(name).peer).toMatchObject(p);

      // Certificates: the same serials and bytes, the peer's current one, signed by that state's CA.
      const certs = certificateRepository(db);
      const ca = entry?.files.ca ? new X509Certificate(readFileSync(join(FIXTURES, entry.files.ca))) : null;
      if (expected.certificates.length) {
        expect(ca?.fingerprint256).toBe(expected.caSha256);
      }
      for (const c of expected.certificates) {
        const row = certs.bySerial(c.serial);
        expect(row, `certificate ${c.serial}`).toBeDefined();
        const x = new X509Certificate(row!.certPem);
        expect(x.fingerprint256).toBe(c.sha256);
        expect(x.verify(ca!.publicKey)).toBe(true);
        expect(row!.role).toBe('peer');
      }
      for (const name of Object.keys(expected.peers)) {
        const latest = expected.certificates.filter((c) => c.peer === name).at(-1);
        expect(q.peer(name).peer.certificateSerial).toBe(latest?.serial ?? null);
      }

      // Policies: the overrides each peer had, valid for today's parsers.
      for (const row of peerRepository(db).all()) {
        const stored = row.policy === null ? null : policyOverrideSchema.parse(JSON.parse(row.policy));
        expect(stored, `policy of ${row.name}`).toEqual(expected.policies[row.name] ?? null);
      }
      const set = peerSetSchema.parse(JSON.parse(JSON.stringify(peerSetSource(db, config).load(made))));
      const withCert = expected.list.filter((p) => p.status === 'active' && expected.certificates.some((c) => c.peer === p.name));
      expect(set.peers.map((p) => p.name).sort()).toEqual(withCert.map((p) => p.name).sort());
      for (const p of set.peers) policySchema.parse(p.policy);
      const alice = set.peers.find((p) => p.name === 'alice');
      if (expected.policies.alice) expect(alice?.policy.tokensPerDay).toBe(expected.policies.alice.tokensPerDay);

      // API tokens: the one printed still works (the guard's set carries its hash), and show-peer calls it active.
      for (const [name, t] of Object.entries(expected.tokens)) {
        expect(set.peers.find((p) => p.name === name)?.tokenSha256).toBe(tokenHash(t.token));
        expect(q.peer(name).apiToken).toMatchObject({ allowed: true, state: 'active' });
      }

      // Records, events, audit: every field the old CLI printed.
      expectRowsKept(q.log({ kind: 'audit' }), expected.logs.audit, 'audit');
      expectRowsKept(q.log({ kind: 'connections' }), expected.logs.connections, 'connections');
      expectRowsKept(q.log({ kind: 'requests' }), expected.logs.requests ?? [], 'requests');

      // Guards and admins.
      const guards = q.guards().map((g) => ({ name: g.name, address: g.address, status: g.status, poolRole: g.poolRole, parallel: g.parallel, draining: g.draining }));
      expect(guards).toEqual(expected.guards.map((g) => ({ poolRole: 'none', parallel: null, draining: false, ...g, status: 'active' })).sort((a, b) => a.name.localeCompare(b.name)));
      // The pool in the guards' peer set: only where the state has one; its members at ollamaPort.
      const members = expected.guards.filter((g) => g.poolRole === 'member');
      expect(set.pool?.members.map((m) => [m.name, m.parallel, m.draining]) ?? []).toEqual(members.map((g) => [g.name, g.parallel, g.draining]));
      if (!expected.guards.some((g) => g.poolRole)) expect(set).not.toHaveProperty('pool');
      expect(adminRepository(db).list().map((a) => ({ name: a.name, role: a.role }))).toEqual(expected.admins);
    } finally {
      db.close();
    }

    // A second open migrates nothing and changes nothing.
    const before = sha256(path);
    const again = openDatabase(path);
    expect(again.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    again.close();
    expect(sha256(path)).toBe(before);
  });
});
