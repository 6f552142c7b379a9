import { closeSync, fsyncSync, openSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { removeFile } from './files.js';

/**
 * A file of fixed-size slots, written only in place: created once at its full
 * size (with real bytes, so the file system has allocated every block), then
 * each write overwrites one slot and fsyncs. Writing a slot therefore needs
 * no free space — it works on a full disk (on file systems that overwrite in
 * place: ext4, xfs, tmpfs; not copy-on-write ones such as btrfs or ZFS).
 */
export function slotFile(path: string, slots: number, slotBytes: number, empty: () => Buffer) {
  const size = slots * slotBytes;
  const withFd = <T>(flags: string, fn: (fd: number) => T): T => {
    const fd = openSync(path, flags, 0o600);
    try {
      return fn(fd);
    } finally {
      closeSync(fd);
    }
  };
  return {
    path,
    /** Whether the file exists at its full size. */
    ready(): boolean {
      try {
        return statSync(path).size === size;
      } catch {
        return false;
      }
    },
    /** Creates the file at its full size when it is missing (needs free space, once). A failure leaves no file. */
    create(): void {
      const tmp = `${path}.new`;
      try {
        const all = Buffer.concat(Array.from({ length: slots }, empty));
        const fd = openSync(tmp, 'w', 0o600);
        try {
          writeSync(fd, all, 0, all.length, 0);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, path);
      } catch (e) {
        removeFile(tmp);
        throw e;
      }
    },
    /** Every slot's bytes. */
    read(): Buffer[] {
      return withFd('r', (fd) => {
        const buf = Buffer.alloc(size);
        let n = 0;
        while (n < size) {
          const r = readSync(fd, buf, n, size - n, n);
          if (r === 0) break;
          n += r;
        }
        return Array.from({ length: slots }, (_, i) => buf.subarray(i * slotBytes, (i + 1) * slotBytes));
      });
    },
    /** Overwrites slot i in place and makes it durable. */
    write(i: number, bytes: Buffer): void {
      if (i < 0 || i >= slots || bytes.length !== slotBytes) throw new Error(`bad slot write ${i}`);
      withFd('r+', (fd) => {
        writeSync(fd, bytes, 0, slotBytes, i * slotBytes);
        fsyncSync(fd);
      });
    },
  };
}

export type SlotFile = ReturnType<typeof slotFile>;
