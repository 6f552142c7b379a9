import { badInput } from '../errors.js';

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** Longest duration accepted anywhere (10 years): keeps arithmetic far from overflow. */
const MAX_MS = 3650 * 86_400_000;

/**
 * Parses a duration such as `30d`, `12h`, `1h30m` or `90s` into milliseconds.
 * `what` names the option in the error message.
 */
export function parseDuration(input: string, what = 'duration'): number {
  const text = input.trim();
  if (!/^(\d{1,6}[smhdw])+$/.test(text)) {
    throw badInput(`${what} "${input}" is not a duration like 30d, 12h, 1h30m or 90s`);
  }
  let total = 0;
  for (const m of text.matchAll(/(\d+)([smhdw])/g)) {
    total += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
  }
  if (total <= 0) throw badInput(`${what} must be greater than zero`);
  if (total > MAX_MS) throw badInput(`${what} "${input}" is longer than 10 years`);
  return total;
}
