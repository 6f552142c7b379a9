import { createHash } from 'node:crypto';

/**
 * A revoke or disable the database could not save (the disk was full), kept
 * in a small pre-allocated file until it can be: while it is pending the
 * daemon leaves the peer out of the kernel (tunnel, firewall set, flows), so
 * the access is gone at once and stays gone across a restart of `serve`.
 */
export interface Denial {
  action: 'revoke' | 'disable';
  peerId: number;
  name: string;
  publicKey: string;
  address: string;
  /** Who asked, for the audit record written when the denial is saved. */
  actor: string;
  source: string;
  /** When it was asked (ms since the epoch). */
  at: number;
}

/** One slot of the denial file: a line of this many bytes (JSON, its SHA-256 prefix, spaces, newline). */
export const DENIAL_SLOT_BYTES = 512;
/** Slots in the file: how many unsaved denials can wait at once. */
export const DENIAL_SLOTS = 32;

const blank = (): Buffer => Buffer.from(' '.repeat(DENIAL_SLOT_BYTES - 1) + '\n');
const digest = (json: string): string => createHash('sha256').update(json).digest('hex').slice(0, 16);

/** An empty slot. */
export function emptySlot(): Buffer {
  return blank();
}

/** The slot text of a denial; actor and source are cut so that it always fits. */
export function encodeDenial(d: Denial): Buffer {
  const cut = (s: string): string => s.slice(0, 96);
  const json = JSON.stringify({ ...d, actor: cut(d.actor), source: cut(d.source) });
  const line = `${digest(json)} ${json}`;
  const bytes = Buffer.from(line, 'utf8');
  if (bytes.length > DENIAL_SLOT_BYTES - 1) throw new Error('a denial does not fit its slot');
  const out = blank();
  bytes.copy(out, 0);
  return out;
}

/** The denial in a slot; null for an empty, torn or foreign slot (its digest does not match). */
export function decodeDenial(slot: Buffer): Denial | null {
  const text = slot.toString('utf8').trim();
  const m = /^([0-9a-f]{16}) (\{.*\})$/.exec(text);
  if (!m || digest(m[2]!) !== m[1]) return null;
  try {
    const d = JSON.parse(m[2]!) as Denial;
    if ((d.action !== 'revoke' && d.action !== 'disable') || !Number.isInteger(d.peerId)) return null;
    return d;
  } catch {
    return null;
  }
}

/** The desired kernel state without the peers a pending denial names. */
export function withoutDenied<S extends { peers: readonly { id: number }[] }>(state: S, denied: ReadonlySet<number>): S {
  if (denied.size === 0) return state;
  return { ...state, peers: state.peers.filter((p) => !denied.has(p.id)) };
}
