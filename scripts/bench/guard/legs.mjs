// The request leg of one streamed request, cut into pieces (issue 13, item 1). Pure: the inputs
// are CLOCK_MONOTONIC µs from three processes on one machine — the client (load.mjs: send, first
// byte), the guard's trace (src/guard/trace.ts) and the simulator (sim.mjs: request arrived,
// first write) — so the pieces line up without any clock offset.

/** The pieces, in order. The simulator's own wait for its first token (one token interval) is `simWait`, not a cost of the path. */
export const PIECES = [
  ['send→head', 'client sent → guard handler runs (TLS, parse, event-loop queue)'],
  ['head→body', 'request body read'],
  ['body→policy', 'policy decided, upstream slot taken'],
  ['policy→connected', 'the request gets its upstream connection'],
  ['connected→written', 'request written to the upstream socket'],
  ['written→upstream', 'written → the simulator has the request'],
  ['simWait', "the simulator's first-token wait (not the proxy's)"],
  ['emit→upByte', "simulator's first write → guard has the first byte"],
  ['upByte→clientByte', 'guard hands it to the client TLS socket'],
  ['clientByte→client', 'TLS socket → client has the first byte'],
];

/**
 * One traced request through the guard: { 'send→head': µs, ... , ttfb, requestLeg, responseLeg }.
 * `requestLeg` is client send → simulator has the request; `responseLeg` the simulator's first
 * write → the client's first byte. Pieces whose marks are missing are null.
 */
export function guardLegs({ t0, first, marks, simArrived, simFirstEmit }) {
  const d = (a, b) => (Number.isFinite(a) && Number.isFinite(b) ? b - a : null);
  const m = marks ?? {};
  // A request without a body has no body mark: its body piece is empty.
  const body = m.body ?? m.head;
  return {
    'send→head': d(t0, m.head),
    'head→body': d(m.head, body),
    'body→policy': d(body, m.policy),
    'policy→connected': d(m.policy, m.connected),
    'connected→written': d(m.connected, m.written),
    'written→upstream': d(m.written, simArrived),
    simWait: d(simArrived, simFirstEmit),
    'emit→upByte': d(simFirstEmit, m.upByte),
    'upByte→clientByte': d(m.upByte, m.clientByte),
    'clientByte→client': d(m.clientByte, first),
    ttfb: d(t0, first),
    requestLeg: d(t0, simArrived),
    responseLeg: d(simFirstEmit, first),
  };
}

/** The same outline for a request the benchmark cannot see inside (direct, nginx, the connector). */
export function opaqueLegs({ t0, first, simArrived, simFirstEmit }) {
  const d = (a, b) => (Number.isFinite(a) && Number.isFinite(b) ? b - a : null);
  return { ttfb: d(t0, first), requestLeg: d(t0, simArrived), simWait: d(simArrived, simFirstEmit), responseLeg: d(simFirstEmit, first) };
}

/** Nearest-rank percentile of the finite values. */
export function percentile(xs, p) {
  const a = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((x, y) => x - y);
  if (a.length === 0) return NaN;
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
}

/** { piece: { p50, p99, n } } over a list of legs objects. */
export function legStats(list) {
  const out = {};
  const keys = new Set(list.flatMap((l) => Object.keys(l)));
  for (const k of keys) {
    const xs = list.map((l) => l[k]).filter((v) => v !== null && v !== undefined);
    out[k] = { p50: percentile(xs, 50), p99: percentile(xs, 99), n: xs.length };
  }
  return out;
}
