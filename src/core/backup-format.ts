import { z } from 'zod';
import { WgoError } from '../errors.js';

/**
 * The backup file format (pure: bytes in, values out).
 *
 *   header  (48 bytes, the GCM additional data)
 *     magic "WGOBAK\0\n" (8) · format u16 · kdf u8 (1 = scrypt) · log2 N u8 · r u32 · p u32 · salt (16) · nonce (12)
 *   header MAC (32): HMAC-SHA-256 of the header under the second half of the scrypt output
 *   ciphertext: AES-256-GCM under the first half, of the payload
 *   tag (16)
 *
 *   payload: manifest length u32 · manifest JSON · entries · end (name length 0)
 *   entry:   name length u16 · name (UTF-8) · mode u32 · size u64 · bytes
 *
 * Integers are big-endian. The header MAC tells a wrong passphrase (or a
 * changed header) from a changed body before anything is decrypted; the GCM
 * tag covers header and payload. Nothing decrypted is trusted (or moved into
 * place) before the tag has been checked.
 */
export const BACKUP_MAGIC = Buffer.from('WGOBAK\0\n', 'latin1');
export const BACKUP_FORMAT = 1;
export const HEADER_LEN = 48;
export const HEADER_MAC_LEN = 32;
export const TAG_LEN = 16;
export const SALT_LEN = 16;
export const NONCE_LEN = 12;

export interface KdfParams {
  /** log2 of scrypt's cost N. */
  log2N: number;
  r: number;
  p: number;
}

/** What `backup` uses: N = 2^17, r = 8, p = 1 (128 MiB, a fraction of a second). */
export const DEFAULT_KDF: KdfParams = { log2N: 17, r: 8, p: 1 };
/** What a backup file may ask for: enough to be hard to guess, not so much that a crafted file exhausts memory. */
export const KDF_BOUNDS = { log2N: [14, 20], r: [1, 32], p: [1, 16] } as const;

/** Memory scrypt needs for these parameters (128 · N · r bytes), and the most a backup file may ask for. */
export const scryptMemory = (k: KdfParams): number => 128 * 2 ** k.log2N * k.r;
const MAX_KDF_MEMORY = 1024 * 1024 * 1024;

export interface Header {
  format: number;
  kdf: KdfParams;
  salt: Buffer;
  nonce: Buffer;
}

export function encodeHeader(h: Header): Buffer {
  const b = Buffer.alloc(HEADER_LEN);
  BACKUP_MAGIC.copy(b, 0);
  b.writeUInt16BE(h.format, 8);
  b.writeUInt8(1, 10);
  b.writeUInt8(h.kdf.log2N, 11);
  b.writeUInt32BE(h.kdf.r, 12);
  b.writeUInt32BE(h.kdf.p, 16);
  h.salt.copy(b, 20);
  h.nonce.copy(b, 20 + SALT_LEN);
  return b;
}

const damaged = (what: string): WgoError => new WgoError('BAD_INPUT', `the backup file is damaged: ${what}`);

/** Reads and checks the header (before any key is derived): not a backup, a newer format, parameters out of bounds. */
export function decodeHeader(b: Buffer): Header {
  if (b.length < HEADER_LEN + HEADER_MAC_LEN + TAG_LEN) {
    if (b.length >= BACKUP_MAGIC.length && !b.subarray(0, BACKUP_MAGIC.length).equals(BACKUP_MAGIC)) throw notBackup();
    throw damaged(`it is only ${b.length} bytes long (truncated)`);
  }
  if (!b.subarray(0, BACKUP_MAGIC.length).equals(BACKUP_MAGIC)) throw notBackup();
  const format = b.readUInt16BE(8);
  if (format > BACKUP_FORMAT) {
    throw new WgoError('BAD_INPUT', `the backup was made by a newer wg-ollama (backup format ${format}; this one reads up to ${BACKUP_FORMAT}): restore it with that version or newer`);
  }
  if (format < 1) throw damaged(`format ${format} does not exist`);
  if (b.readUInt8(10) !== 1) throw damaged(`unknown key derivation ${b.readUInt8(10)}`);
  const kdf = { log2N: b.readUInt8(11), r: b.readUInt32BE(12), p: b.readUInt32BE(16) };
  for (const k of ['log2N', 'r', 'p'] as const) {
    const [lo, hi] = KDF_BOUNDS[k];
    if (kdf[k] < lo || kdf[k] > hi) throw damaged(`scrypt ${k} = ${kdf[k]} is outside ${lo}..${hi}`);
  }
  if (scryptMemory(kdf) > MAX_KDF_MEMORY) throw damaged(`scrypt N = 2^${kdf.log2N} and r = ${kdf.r} would need ${scryptMemory(kdf) >> 20} MiB`);
  return { format, kdf, salt: Buffer.from(b.subarray(20, 20 + SALT_LEN)), nonce: Buffer.from(b.subarray(20 + SALT_LEN, HEADER_LEN)) };
}

const notBackup = (): WgoError => new WgoError('BAD_INPUT', 'this is not a wg-ollama backup file (its first bytes are not the backup signature)');

/** Names of entries: `config.json`, or `state/` and a relative path of plain names (no `..`, no absolute path). */
const SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const CONFIG_ENTRY = 'config.json';
export const DB_ENTRY = 'state/wg-ollama.db';

export function checkEntryName(name: string): string {
  if (name === CONFIG_ENTRY) return name;
  const parts = name.split('/');
  if (parts[0] !== 'state' || parts.length < 2 || parts.length > 4 || !parts.slice(1).every((s) => SEGMENT_RE.test(s) && s !== '..')) {
    throw damaged(`entry name ${JSON.stringify(name.slice(0, 200))} is not a plain path inside the state directory`);
  }
  return name;
}

const entrySchema = z.object({
  name: z.string().max(600),
  mode: z.number().int().min(0).max(0o777),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
}).strict();

export const manifestSchema = z.object({
  format: z.number().int(),
  wgOllamaVersion: z.string().max(64),
  schemaVersion: z.number().int().min(0),
  createdAt: z.string(),
  gateway: z.object({
    name: z.string().max(255),
    interface: z.string().max(32),
    endpoint: z.string().max(300),
    stateDir: z.string().max(4096),
    configFile: z.string().max(4096),
  }).strict(),
  counts: z.object({
    peers: z.record(z.string(), z.number().int()),
    certificates: z.number().int(),
    certificatesInForce: z.number().int(),
    apiTokens: z.number().int(),
    guards: z.number().int(),
    admins: z.number().int(),
    requests: z.number().int(),
    connectionEvents: z.number().int(),
    auditRecords: z.number().int(),
  }).strict(),
  entries: z.array(entrySchema).max(200_000),
  /** What the gateway uses that the backup cannot hold (files outside the state directory), and why. */
  notIncluded: z.array(z.string().max(4096)).max(64),
}).strict();

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestEntry = z.infer<typeof entrySchema>;

/** Parses the manifest and checks it against this build: format, schema version, entry names. */
export function checkManifest(json: string, schemaVersion: number): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw damaged('its manifest is not JSON');
  }
  const r = manifestSchema.safeParse(raw);
  if (!r.success) throw damaged(`its manifest is malformed (${r.error.issues.map((i) => i.path.join('.')).join(', ')})`);
  const m = r.data;
  if (m.format !== BACKUP_FORMAT) throw damaged(`the manifest says format ${m.format}, the header ${BACKUP_FORMAT}`);
  if (m.schemaVersion > schemaVersion) {
    throw new WgoError('SCHEMA_TOO_NEW', `the backup holds a database of schema version ${m.schemaVersion}, newer than this wg-ollama's ${schemaVersion} (it was made by wg-ollama ${m.wgOllamaVersion}): restore it with that version or newer`);
  }
  const seen = new Set<string>();
  for (const e of m.entries) {
    checkEntryName(e.name);
    if (seen.has(e.name)) throw damaged(`entry ${e.name} appears twice`);
    seen.add(e.name);
  }
  if (!seen.has(CONFIG_ENTRY) || !seen.has(DB_ENTRY)) throw damaged('it lacks the config or the database');
  return m;
}

/** The bytes that start an entry in the payload. */
export function entryHead(name: string, mode: number, size: number): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(2 + n.length + 4 + 8);
  b.writeUInt16BE(n.length, 0);
  n.copy(b, 2);
  b.writeUInt32BE(mode, 2 + n.length);
  b.writeBigUInt64BE(BigInt(size), 6 + n.length);
  return b;
}

export function manifestHead(json: string): Buffer {
  const m = Buffer.from(json, 'utf8');
  const b = Buffer.alloc(4);
  b.writeUInt32BE(m.length, 0);
  return Buffer.concat([b, m]);
}

export const PAYLOAD_END = Buffer.alloc(2);

/** What the payload parser reports, in order. */
export type PayloadEvent =
  | { kind: 'manifest'; json: string }
  | { kind: 'start'; name: string; mode: number; size: number }
  | { kind: 'data'; bytes: Buffer }
  | { kind: 'end-entry' }
  | { kind: 'end' };

const MAX_MANIFEST = 64 * 1024 * 1024;

/**
 * An incremental parser of the (decrypted) payload: push chunks, get events.
 * Bounded: a manifest over 64 MiB or an entry name over 600 bytes is damage,
 * and entry data is passed on as it arrives, never collected.
 */
export function payloadParser() {
  let buf: Buffer = Buffer.alloc(0);
  let state: 'mlen' | 'manifest' | 'nlen' | 'head' | 'data' | 'done' = 'mlen';
  let need = 4;
  let remaining = 0;
  let nameLen = 0;
  return {
    push(chunk: Buffer): PayloadEvent[] {
      const out: PayloadEvent[] = [];
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (state === 'done') {
          if (buf.length) throw damaged('there are bytes after the end of the payload');
          return out;
        }
        if (state === 'data') {
          if (remaining > 0) {
            if (!buf.length) return out;
            const take = Math.min(remaining, buf.length);
            out.push({ kind: 'data', bytes: buf.subarray(0, take) });
            buf = buf.subarray(take);
            remaining -= take;
          }
          if (remaining === 0) {
            out.push({ kind: 'end-entry' });
            state = 'nlen';
            need = 2;
          }
          continue;
        }
        if (buf.length < need) return out;
        const head = buf.subarray(0, need);
        buf = buf.subarray(need);
        if (state === 'mlen') {
          need = head.readUInt32BE(0);
          if (need > MAX_MANIFEST) throw damaged(`its manifest would be ${need} bytes`);
          state = 'manifest';
        } else if (state === 'manifest') {
          out.push({ kind: 'manifest', json: head.toString('utf8') });
          state = 'nlen';
          need = 2;
        } else if (state === 'nlen') {
          nameLen = head.readUInt16BE(0);
          if (nameLen === 0) {
            out.push({ kind: 'end' });
            state = 'done';
            continue;
          }
          if (nameLen > 600) throw damaged(`an entry name would be ${nameLen} bytes`);
          state = 'head';
          need = nameLen + 12;
        } else {
          const name = head.subarray(0, nameLen).toString('utf8');
          const mode = head.readUInt32BE(nameLen);
          const size = head.readBigUInt64BE(nameLen + 4);
          if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw damaged(`entry ${name} would be ${size} bytes`);
          remaining = Number(size);
          out.push({ kind: 'start', name, mode, size: remaining });
          state = 'data';
        }
      }
    },
    /** True once the end marker has been read. */
    finished: (): boolean => state === 'done',
  };
}
