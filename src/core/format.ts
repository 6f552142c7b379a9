/** Human-readable sizes and ages, for the CLI's tables and the web UI's pages. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

export function ago(ms: number, now = Date.now()): string {
  const s = Math.round((now - ms) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/**
 * What terminal control takes: C0 (including newline and tab), DEL, C1, the
 * line and paragraph separators and the bidi embedding, override and isolate
 * controls (U+202A-202E, U+2066-2069).
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Makes a stored or client-chosen string safe to print in a human format:
 * every control character becomes visible text (`\x1b`, `\x0a`, `\u2028`),
 * so a model name or a sign-in name cannot move the cursor, colour the
 * terminal, plant an OSC 8 link or fake a log line. The result is for eyes,
 * not for parsing (a backslash typed by the client is left as it is); --json
 * output is the machine-readable form.
 */
export function escapeControl(s: string): string {
  return s.replace(CONTROL, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}
