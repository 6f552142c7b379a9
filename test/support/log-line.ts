import { expect } from 'vitest';
import { LOG_EVENTS } from '../../src/core/log-events.js';

/** The fields every JSON log line of serve and guard carries (README "Logs"). */
export interface LogLine {
  time: string;
  level: 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  pid: number;
  event: string;
  msg: string;
  [field: string]: unknown;
}

const LEVELS = ['debug', 'info', 'warn', 'error', 'fatal'];

/**
 * Parses output that must be JSON lines and checks each: one object per line,
 * an ISO-8601 `time`, `level` as a label, `pid`, an `event` of
 * src/core/log-events.ts and a `msg`. Throws naming the line that is not.
 */
export function parseLogLines(output: string): LogLine[] {
  const lines = output.split('\n');
  expect(lines.at(-1), 'output ends with a newline').toBe('');
  return lines.slice(0, -1).map((text, i) => {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`line ${i + 1} is not JSON: ${text}`);
    }
    const where = `line ${i + 1}: ${text}`;
    expect(j !== null && typeof j === 'object' && !Array.isArray(j), where).toBe(true);
    expect(typeof j.time === 'string' && new Date(j.time).toISOString() === j.time, `${where}: time is ISO-8601`).toBe(true);
    expect(LEVELS, `${where}: level is a label`).toContain(j.level);
    expect(Number.isInteger(j.pid), `${where}: pid`).toBe(true);
    expect(Object.keys(LOG_EVENTS), `${where}: event is a known one`).toContain(j.event);
    expect(typeof j.msg === 'string' && j.msg.length > 0, `${where}: msg`).toBe(true);
    return j as LogLine;
  });
}
