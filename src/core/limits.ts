import { z } from 'zod';

/** Guard-wide limits on what one client connection or request may cost. */
export const limitsSchema = z
  .object({
    /** Largest request head (request line + headers) in bytes; larger → 431, connection closed. */
    maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
    /** Largest request body in bytes (embedding inputs and images are the big ones); larger → 413. */
    maxBodyBytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(8 * 1024 * 1024),
    /** A client must send its complete request head within this many seconds (slow-header clients). */
    headerTimeoutSec: z.number().min(0.1).max(300).default(10),
    /** A client must send its complete body within this many seconds. */
    bodyTimeoutSec: z.number().min(0.1).max(3600).default(60),
    /** A request is cut when neither side sends a byte for this long (covers model loading). */
    idleTimeoutSec: z.number().min(0.1).max(3600).default(300),
    /** Longest a single request (a stream) may last. */
    maxRequestSec: z.number().min(1).max(86400).default(1800),
    /** Idle keep-alive connections are closed after this long. */
    keepAliveSec: z.number().min(0.1).max(3600).default(65),
    /** Requests sent to Ollama at once (one upstream connection each); beyond, 503 with Retry-After. */
    maxUpstreamRequests: z.number().int().min(1).max(100_000).default(1024),
    /**
     * Requests one peer may have in flight to Ollama at once, whatever the endpoint; beyond, 429
     * with Retry-After. Default: a quarter of maxUpstreamRequests. When the pool is nearly full
     * a peer holding pool / active peers is refused as well (core/slots.ts).
     */
    maxUpstreamPerPeer: z.number().int().min(1).max(100_000).optional(),
  })
  .strict();

export type Limits = z.output<typeof limitsSchema>;
export const DEFAULT_LIMITS: Limits = limitsSchema.parse({});

/** `host:port` to listen on: an IPv4 address or [IPv6], and a port. */
export const listenSchema = z.string().refine((t) => parseListen(t) !== null, 'must be IP:PORT (IPv4, or [IPv6]:PORT)');

export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 0 || port > 65535) return null;
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  if (!host.includes(':') && host.split('.').some((o) => Number(o) > 255)) return null;
  return { host, port };
}
