import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ensurePrivateDir, readSecretFile, removeFile, writeSecretFile } from '../system/files.js';

/**
 * Preshared keys live in 0600 files under <state>/psk, one per peer, named by
 * a random reference stored in the database (the key itself never is).
 * Contents never change for a reference, so reads are cached.
 */
export function pskStore(dir: string) {
  const cache = new Map<string, string>();
  const path = (ref: string): string => join(dir, `${ref}.psk`);
  const remove = (ref: string): void => {
    cache.delete(ref);
    removeFile(path(ref));
  };
  return {
    path,
    remove,
    /** Writes a new key file and returns its reference. */
    write(key: string): string {
      ensurePrivateDir(dir);
      const ref = randomBytes(12).toString('hex');
      writeSecretFile(path(ref), key + '\n', { exclusive: true });
      return ref;
    },
    read(ref: string): string {
      let key = cache.get(ref);
      if (key === undefined) {
        key = readSecretFile(path(ref));
        cache.set(ref, key);
      }
      return key;
    },
    /** Deletes key files no peer refers to (left by a crash between write and commit). */
    prune(keep: ReadonlySet<string>, olderThanRef?: (ref: string) => boolean): number {
      let removed = 0;
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return 0;
      }
      for (const f of names) {
        const m = /^([0-9a-f]{24})\.psk$/.exec(f);
        if (m && !keep.has(m[1]!) && (olderThanRef?.(m[1]!) ?? true)) {
          remove(m[1]!);
          removed++;
        }
      }
      return removed;
    },
  };
}

export type PskStore = ReturnType<typeof pskStore>;
