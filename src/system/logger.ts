import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Field names whose values never reach a log line, at the top level or one
 * object down: keys, preshared keys, tokens, passwords, TOTP codes and
 * secrets, PKCS#12 passphrases.
 */
const SECRET_FIELDS = [
  'privateKey', 'presharedKey', 'certificateKey', 'token', 'apiToken', 'password', 'passphrase',
  'p12Passphrase', 'totp', 'totpCode', 'secret', 'authorization', 'cookie',
];
export const REDACT_PATHS: readonly string[] = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`]);

export interface LoggerOptions {
  /** Fields on every line besides `pid` (the guard adds its name). */
  base?: Record<string, unknown>;
  /** Where lines go; default stdout, written synchronously (a crash loses no line). */
  destination?: DestinationStream;
}

/**
 * The JSON-lines logger of `serve` and `guard`: one object per line with
 * `level` as a label (debug, info, warn, error, fatal), an ISO-8601 `time`,
 * `pid`, `event` (src/core/log-events.ts) and `msg` — what journald,
 * Promtail and Vector take as it is. Secrets are redacted.
 */
export function createLogger(o: LoggerOptions = {}): Logger {
  return pino(
    {
      base: { pid: process.pid, ...o.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    o.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
