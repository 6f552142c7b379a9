// What makes a benchmark run trustworthy (issue 13, item 4), as pure functions: is the machine
// quiet enough, in which order do the targets run in each repetition, and how repetitions are
// summarised (median and range). No I/O here: bench.mjs reads /proc and passes the text in.

/** /proc/loadavg → { load1, load5, load15, running, total }. */
export function parseLoadavg(text) {
  const [l1, l5, l15, rt] = text.trim().split(/\s+/);
  const [running, total] = (rt ?? '0/0').split('/').map(Number);
  return { load1: Number(l1), load5: Number(l5), load15: Number(l15), running, total };
}

/**
 * The machine-wide "cpu" line of /proc/stat, in jiffies: { busy, idle, steal, total }.
 * busy counts user, nice, system, irq and softirq (guest time is already inside user);
 * idle counts idle and iowait.
 */
export function parseProcStat(text) {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('no "cpu" line in /proc/stat');
  const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy, idle: idle + iowait, steal, total: busy + idle + iowait + steal };
}

export const DEFAULT_QUIET = Object.freeze({
  /** Load average (1 min) allowed when the run starts, before any of its own processes run. */
  maxLoad: 1.0,
  /** CPU that processes other than the benchmark's own used during a phase, in % of one core. */
  maxForeignPct: 15,
  /** CPU the hypervisor took (steal) during a phase, in % of the machine. */
  maxStealPct: 5,
});

/**
 * Whether a phase ran on a machine busy with something else.
 *   startLoad1:  load average (1 min) when the run started, before its own processes
 *   cpu0, cpu1:  parseProcStat at the phase's edges
 *   ownCpuMs:    CPU the benchmark's own processes used in the phase (bench, generators,
 *                simulator, proxies), in ms
 *   wallMs, clkTck (jiffies per second, 100 on Linux x86-64), ncpu
 * Returns { busy, reasons[], foreignPct, stealPct, machineBusyPct }. The load average during
 * and after a phase is not a criterion: the benchmark's own processes raise it to ~2 here.
 */
export function judgePhase({ startLoad1, cpu0, cpu1, ownCpuMs, wallMs, clkTck = 100, ncpu }, limits = DEFAULT_QUIET) {
  const l = { ...DEFAULT_QUIET, ...limits };
  const jiffyMs = 1000 / clkTck;
  const busyMs = (cpu1.busy - cpu0.busy) * jiffyMs;
  const totalJ = cpu1.total - cpu0.total;
  const foreignMs = Math.max(0, busyMs - ownCpuMs);
  const foreignPct = wallMs > 0 ? (foreignMs / wallMs) * 100 : 0;
  const stealPct = totalJ > 0 ? ((cpu1.steal - cpu0.steal) / totalJ) * 100 : 0;
  const machineBusyPct = wallMs > 0 ? (busyMs / (wallMs * ncpu)) * 100 : 0;
  const reasons = [];
  if (startLoad1 > l.maxLoad) reasons.push(`load average ${startLoad1.toFixed(2)} > ${l.maxLoad} when the run started`);
  if (foreignPct > l.maxForeignPct) reasons.push(`other processes used ${foreignPct.toFixed(0)} % of a core (> ${l.maxForeignPct} %)`);
  if (stealPct > l.maxStealPct) reasons.push(`steal ${stealPct.toFixed(1)} % (> ${l.maxStealPct} %)`);
  const r1 = (v) => Math.round(v * 10) / 10;
  return { busy: reasons.length > 0, reasons, foreignPct: r1(foreignPct), stealPct: r1(stealPct), machineBusyPct: r1(machineBusyPct) };
}

/**
 * The order of the targets in repetition `rep`: a rotation, so that over n repetitions each of
 * n targets runs once in each position, and every repetition runs all of them back to back
 * (interleaved, never all of one target's repetitions first).
 */
export function orderFor(rep, targets) {
  const n = targets.length;
  if (n === 0) return [];
  const k = ((rep % n) + n) % n;
  return [...targets.slice(k), ...targets.slice(0, k)];
}

export function median(xs) {
  const a = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((p, q) => p - q);
  if (a.length === 0) return NaN;
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

/** Median and range of the finite values: { median, min, max, n }. */
export function spread(xs) {
  const a = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (a.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  return { median: median(a), min: Math.min(...a), max: Math.max(...a), n: a.length };
}

/**
 * Per repetition, f(a) ⊕ f(b) of the rows of targets a and b in that repetition (op: 'ratio' or
 * 'diff'), then spread() of those: the comparison is made within one repetition, where both ran
 * minutes apart at most, before any summary across repetitions.
 */
export function paired(rows, a, b, f, op = 'ratio') {
  const out = [];
  for (const rep of [...new Set(rows.map((r) => r.rep))].sort((x, y) => x - y)) {
    const ra = rows.find((r) => r.rep === rep && r.target === a);
    const rb = rows.find((r) => r.rep === rep && r.target === b);
    if (!ra || !rb) continue;
    const va = f(ra);
    const vb = f(rb);
    if (!Number.isFinite(va) || !Number.isFinite(vb)) continue;
    if (op === 'ratio') {
      if (vb !== 0) out.push(va / vb);
    } else out.push(va - vb);
  }
  return spread(out);
}

/** "12.3 (11.0–14.1)": a median with its range, d decimals; "n/a" when there is nothing. */
export function fmtSpread(s, d = 0) {
  if (!s || !s.n) return 'n/a';
  const f = (v) => v.toFixed(d);
  return s.n === 1 ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}
