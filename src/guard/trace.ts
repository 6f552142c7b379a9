import type { IncomingMessage } from 'node:http';

/**
 * Where a request's time goes inside the guard, in the order a request passes:
 *   head       the request handler runs (TLS record decrypted, head parsed, the event loop got to it)
 *   body       the body is read whole
 *   policy     every check passed, an upstream slot taken: about to dispatch
 *   connected  the request has its upstream connection (upstream.ts) and is about to be written
 *   written    the request (head and body) handed to the upstream socket
 *   upHead     Ollama's response head arrived
 *   upByte     Ollama's first body byte arrived
 *   clientByte that byte handed to the client's TLS socket
 *   end        the exchange is finished and recorded
 * Each mark is CLOCK_MONOTONIC in µs (process.hrtime), the clock every process on the machine
 * shares, so a benchmark can line the marks up with its client's send time and Ollama's own.
 */
export const LEGS = ['head', 'body', 'policy', 'connected', 'written', 'upHead', 'upByte', 'clientByte', 'end'] as const;
export type Leg = (typeof LEGS)[number];

export interface TraceRecord {
  /** The client's User-Agent (first 80 characters): how a benchmark finds its own requests. */
  ua: string | null;
  method: string;
  path: string;
  /** When this request's connection finished its TLS handshake, and how many requests it carried before. */
  accepted: number | null;
  nth: number;
  marks: Partial<Record<Leg, number>>;
}

export interface GuardTrace {
  begin(req: IncomingMessage, accepted: number | null, nth: number): TraceRecord;
  mark(r: TraceRecord, leg: Leg): void;
  /** The records kept so far, oldest first; they are forgotten. */
  drain(): { records: TraceRecord[]; dropped: number };
  close(): void;
}

export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * Keeps a leg record per request, at most `max` between two drains (the rest are counted, not
 * kept). Only created when tracing is asked for: a guard without it checks one `undefined` per
 * mark.
 */
export function createGuardTrace(max = 100_000): GuardTrace {
  let records: TraceRecord[] = [];
  let dropped = 0;
  return {
    begin(req, accepted, nth) {
      const ua = req.headers['user-agent'];
      const r: TraceRecord = { ua: typeof ua === 'string' ? ua.slice(0, 80) : null, method: req.method ?? '', path: (req.url ?? '').slice(0, 200), accepted, nth, marks: { head: nowUs() } };
      if (records.length < max) records.push(r);
      else dropped++;
      return r;
    },
    mark(r, leg) {
      if (r.marks[leg] === undefined) r.marks[leg] = nowUs();
    },
    drain() {
      const out = { records, dropped };
      records = [];
      dropped = 0;
      return out;
    },
    close() {
      records = [];
    },
  };
}
