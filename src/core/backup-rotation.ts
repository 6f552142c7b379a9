/**
 * Names of scheduled backups (`backup --out-dir DIR`) and which of them
 * `--keep N` removes. Only names this pattern matches are ever considered:
 * other files in the directory are not wg-ollama's to delete.
 */
const NAME_RE = /^wg-ollama-(\d{8}T\d{6}Z)(?:-(\d{1,3}))?\.wgobak$/;

/** `wg-ollama-20261205T011500Z.wgobak` (UTC); `attempt` > 0 adds `-N` when that name is taken. */
export function backupFileName(at: Date, attempt = 0): string {
  const stamp = at.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  return `wg-ollama-${stamp}${attempt > 0 ? `-${attempt}` : ''}.wgobak`;
}

export function isBackupFileName(name: string): boolean {
  return NAME_RE.test(name);
}

/** The backups to remove so that the newest `keep` stay (by the time in their names, then the attempt number). */
export function backupsToRemove(names: readonly string[], keep: number): string[] {
  const ours = names
    .map((name) => ({ name, m: NAME_RE.exec(name) }))
    .filter((x): x is { name: string; m: RegExpExecArray } => x.m !== null)
    .sort((a, b) => (a.m[1]! < b.m[1]! ? -1 : a.m[1]! > b.m[1]! ? 1 : Number(a.m[2] ?? 0) - Number(b.m[2] ?? 0)));
  return ours.slice(0, Math.max(0, ours.length - keep)).map((x) => x.name);
}
