import { DENIAL_SLOTS, DENIAL_SLOT_BYTES, decodeDenial, emptySlot, encodeDenial, type Denial } from '../core/denials.js';
import { WgoError, isDiskFull } from '../errors.js';
import { slotFile } from '../system/slot-file.js';

/**
 * Revokes and disables that the database could not save because the disk was
 * full (core/denials.ts), in `<state>/denials`: a file of fixed slots created
 * while there is space (init, every start) and afterwards only overwritten in
 * place, so that writing a denial needs no free space. The daemon leaves the
 * peers named here out of the kernel, and saves each denial to the database
 * (then clears its slot) as soon as the disk has room again.
 */
export function denialJournal(path: string) {
  const file = slotFile(path, DENIAL_SLOTS, DENIAL_SLOT_BYTES, emptySlot);
  const slots = (): (Denial | null)[] => (file.ready() ? file.read().map(decodeDenial) : []);
  return {
    path,
    /** Creates the file when it is missing; false (and no file) while the disk has no room for it. */
    ensure(): boolean {
      if (file.ready()) return true;
      try {
        file.create();
        return true;
      } catch (e) {
        if (isDiskFull(e)) return false;
        throw e;
      }
    },
    /** The denials waiting to be saved, with their slots. */
    pending(): { slot: number; denial: Denial }[] {
      return slots().flatMap((d, slot) => (d ? [{ slot, denial: d }] : []));
    },
    /** Ids of the peers a pending denial keeps out of the kernel. */
    deniedIds(): Set<number> {
      return new Set(slots().flatMap((d) => (d ? [d.peerId] : [])));
    },
    /**
     * Keeps a denial (in the peer's slot if it has one, a revoke winning over a
     * disable); read back to be sure. Throws DISK_FULL when there is no file or no free slot.
     */
    add(d: Denial): void {
      if (!file.ready()) throw new WgoError('DISK_FULL', `there is no ${path} to keep it in`);
      const all = slots();
      let i = all.findIndex((x) => x?.peerId === d.peerId);
      if (i >= 0 && all[i]!.action === 'revoke') return;
      if (i < 0) {
        // Start where this peer's id points, so that two processes denying different peers at once rarely meet.
        const start = d.peerId % DENIAL_SLOTS;
        const k = Array.from({ length: DENIAL_SLOTS }, (_, j) => (start + j) % DENIAL_SLOTS).find((j) => all[j] === null);
        if (k === undefined) throw new WgoError('DISK_FULL', `all ${DENIAL_SLOTS} slots of ${path} are taken`);
        i = k;
      }
      const bytes = encodeDenial(d);
      file.write(i, bytes);
      if (!file.read()[i]!.equals(bytes)) throw new WgoError('INTERNAL', `${path}: slot ${i} was overwritten by another process; try again`);
    },
    /**
     * Empties a slot whose denial is saved — unless another process changed it
     * meanwhile (a disable turned into a revoke while the disable was being
     * saved): that one is left for the next save.
     */
    clear(slot: number, saved?: Denial): void {
      if (saved && !file.read()[slot]!.equals(encodeDenial(saved))) return;
      file.write(slot, emptySlot());
    },
  };
}

export type DenialJournal = ReturnType<typeof denialJournal>;

/**
 * Saves every pending denial to the database through `save` (the peer
 * service) and clears its slot; stops at the first failure (the disk is
 * still full) and leaves the rest for the next try. Returns what is left.
 */
export function saveDenials(journal: DenialJournal, save: (d: Denial) => void, onSaved?: (d: Denial) => void): number {
  const pending = journal.pending();
  for (const [n, { slot, denial }] of pending.entries()) {
    try {
      save(denial);
    } catch (e) {
      if (isDiskFull(e)) return pending.length - n;
      throw e;
    }
    journal.clear(slot, denial);
    onSaved?.(denial);
  }
  return 0;
}
