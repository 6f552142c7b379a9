import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import {
  BACKUP_FORMAT, HEADER_LEN, HEADER_MAC_LEN, NONCE_LEN, PAYLOAD_END, SALT_LEN, TAG_LEN,
  decodeHeader, encodeHeader, entryHead, manifestHead, payloadParser, scryptMemory, type KdfParams,
} from '../core/backup-format.js';
import { WgoError, badInput } from '../errors.js';

/**
 * The encrypted envelope of a backup (format in core/backup-format.ts):
 * scrypt turns the passphrase into an AES-256-GCM key and a header MAC key;
 * the payload streams through Node's GCM cipher in 1 MiB pieces, so memory
 * stays bounded whatever the size of the database.
 */

/** One file of the payload: its bytes in memory, or a file streamed from disk. */
export interface PayloadEntry {
  name: string;
  mode: number;
  size: number;
  data?: Buffer;
  path?: string;
}

const CHUNK = 1024 * 1024;
export const MIN_PASSPHRASE = 12;
const MAX_PASSPHRASE = 1024;

export function checkPassphrase(p: string): string {
  if ([...p].length < MIN_PASSPHRASE) throw badInput(`the passphrase must be at least ${MIN_PASSPHRASE} characters`);
  if ([...p].length > MAX_PASSPHRASE) throw badInput(`the passphrase must be at most ${MAX_PASSPHRASE} characters`);
  return p;
}

async function deriveKeys(passphrase: string, salt: Buffer, k: KdfParams): Promise<{ enc: Buffer; mac: Buffer }> {
  const out = await new Promise<Buffer>((resolve, reject) =>
    scrypt(passphrase.normalize('NFC'), salt, 64, { N: 2 ** k.log2N, r: k.r, p: k.p, maxmem: scryptMemory(k) + 32 * 1024 * 1024 }, (e, key) => (e ? reject(e) : resolve(key))),
  );
  return { enc: out.subarray(0, 32), mac: out.subarray(32) };
}

const headerMac = (macKey: Buffer, header: Buffer): Buffer => createHmac('sha256', macKey).update(header).digest();

/** Writes header, encrypted payload and tag to `fh` (a new file, written from its start). */
export async function writeEnvelope(fh: FileHandle, passphrase: string, kdf: KdfParams, manifestJson: string, entries: readonly PayloadEntry[]): Promise<void> {
  const header = encodeHeader({ format: BACKUP_FORMAT, kdf, salt: randomBytes(SALT_LEN), nonce: randomBytes(NONCE_LEN) });
  const { enc, mac } = await deriveKeys(passphrase, header.subarray(20, 20 + SALT_LEN), kdf);
  const cipher = createCipheriv('aes-256-gcm', enc, header.subarray(20 + SALT_LEN, HEADER_LEN), { authTagLength: TAG_LEN });
  cipher.setAAD(header);
  await fh.write(Buffer.concat([header, headerMac(mac, header)]));
  const put = async (plain: Buffer): Promise<void> => {
    const c = cipher.update(plain);
    if (c.length) await fh.write(c);
  };
  await put(manifestHead(manifestJson));
  for (const e of entries) {
    await put(entryHead(e.name, e.mode, e.size));
    if (e.data) {
      await put(e.data);
      continue;
    }
    let seen = 0;
    for await (const chunk of createReadStream(e.path!, { highWaterMark: CHUNK })) {
      seen += (chunk as Buffer).length;
      if (seen > e.size) break;
      await put(chunk as Buffer);
    }
    if (seen !== e.size) throw new WgoError('INTERNAL', `${e.path} changed while it was being backed up (${seen} bytes, expected ${e.size})`);
  }
  await put(PAYLOAD_END);
  const last = cipher.final();
  await fh.write(Buffer.concat([last, cipher.getAuthTag()]));
}

/** Receives the payload's files as they are decrypted (not yet authenticated: see readEnvelope). */
export interface PayloadSink {
  manifest(json: string): void;
  start(name: string, mode: number, size: number): Promise<void> | void;
  data(bytes: Buffer): Promise<void> | void;
  end(): Promise<void> | void;
}

const altered = (): WgoError =>
  new WgoError('BAD_INPUT', 'the backup file is damaged: it was truncated or changed after it was written (its authentication tag does not match)');

/**
 * Decrypts a backup file into `sink`. Errors, in the order they can be told:
 * not a backup, a newer format, a wrong passphrase (or changed header), then —
 * only after the whole file has been read and its tag checked — a truncated or
 * changed file. An error the sink or the payload parser raises is reported
 * only if the tag matches (a changed file is reported as such, whatever its
 * garbage made the parser say). The caller must not trust what the sink got
 * until this resolves.
 */
export async function readEnvelope(file: string, passphrase: string, sink: PayloadSink): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new WgoError(code === 'ENOENT' ? 'NOT_FOUND' : 'BAD_INPUT', `cannot read the backup file ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(Math.min(size, HEADER_LEN + HEADER_MAC_LEN + TAG_LEN));
    await fh.read(head, 0, head.length, 0);
    const h = decodeHeader(head);
    const header = head.subarray(0, HEADER_LEN);
    const { enc, mac } = await deriveKeys(passphrase, h.salt, h.kdf);
    if (!timingSafeEqual(headerMac(mac, header), head.subarray(HEADER_LEN, HEADER_LEN + HEADER_MAC_LEN))) {
      throw new WgoError('BAD_INPUT', 'wrong passphrase for this backup (or its header was changed)');
    }
    const tag = Buffer.alloc(TAG_LEN);
    await fh.read(tag, 0, TAG_LEN, size - TAG_LEN);
    const d = createDecipheriv('aes-256-gcm', enc, h.nonce, { authTagLength: TAG_LEN });
    d.setAAD(header);
    d.setAuthTag(tag);
    const parser = payloadParser();
    let failure: unknown = null;
    const feed = async (plain: Buffer): Promise<void> => {
      if (failure || !plain.length) return;
      try {
        for (const ev of parser.push(plain)) {
          if (ev.kind === 'manifest') sink.manifest(ev.json);
          else if (ev.kind === 'start') await sink.start(ev.name, ev.mode, ev.size);
          else if (ev.kind === 'data') await sink.data(ev.bytes);
          else if (ev.kind === 'end-entry') await sink.end();
        }
      } catch (e) {
        failure = e;
      }
    };
    const end = size - TAG_LEN;
    const buf = Buffer.alloc(CHUNK);
    for (let pos = HEADER_LEN + HEADER_MAC_LEN; pos < end;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, end - pos), pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      await feed(d.update(buf.subarray(0, bytesRead)));
    }
    let last: Buffer;
    try {
      last = d.final();
    } catch {
      throw altered();
    }
    await feed(last);
    if (failure) throw failure;
    if (!parser.finished()) throw altered();
  } finally {
    await fh.close();
  }
}

/** A sink that only checks: each entry's size and SHA-256 against what `expect` says (used by verify and restore). */
export function hashingSink(onManifest: (json: string) => Map<string, { mode: number; size: number; sha256: string }>) {
  let expected: Map<string, { mode: number; size: number; sha256: string }> | null = null;
  let current: { name: string; hash: ReturnType<typeof createHash>; seen: number } | null = null;
  const done = new Set<string>();
  return {
    manifest(json: string): void {
      expected = onManifest(json);
    },
    start(name: string, mode: number, size: number): void {
      const e = expected?.get(name);
      if (!e || done.has(name)) throw new WgoError('BAD_INPUT', `the backup file is damaged: entry ${JSON.stringify(name.slice(0, 200))} is not in its manifest`);
      if (e.mode !== mode || e.size !== size) throw new WgoError('BAD_INPUT', `the backup file is damaged: entry ${name} does not match its manifest`);
      current = { name, hash: createHash('sha256'), seen: 0 };
    },
    data(bytes: Buffer): void {
      current!.hash.update(bytes);
      current!.seen += bytes.length;
    },
    end(): string {
      const c = current!;
      current = null;
      if (c.hash.digest('hex') !== expected!.get(c.name)!.sha256) throw new WgoError('BAD_INPUT', `the backup file is damaged: entry ${c.name} does not match its SHA-256 in the manifest`);
      done.add(c.name);
      return c.name;
    },
    /** Every entry of the manifest arrived. */
    complete(): void {
      const missing = [...(expected?.keys() ?? [])].filter((n) => !done.has(n));
      if (!expected || missing.length) throw new WgoError('BAD_INPUT', `the backup file is damaged: ${expected ? `entries missing: ${missing.slice(0, 5).join(', ')}` : 'it has no manifest'}`);
    },
  };
}
