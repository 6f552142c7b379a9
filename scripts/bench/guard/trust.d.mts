// Types for trust.mjs (used by test/unit/bench).
export interface Load { load1: number; load5: number; load15: number; running: number; total: number }
export interface CpuStat { busy: number; idle: number; steal: number; total: number }
export interface Quiet { maxLoad: number; maxForeignPct: number; maxStealPct: number }
export interface Spread { median: number; min: number; max: number; n: number }
export const DEFAULT_QUIET: Readonly<Quiet>;
export function parseLoadavg(text: string): Load;
export function parseProcStat(text: string): CpuStat;
export function judgePhase(
  p: { startLoad1: number; cpu0: CpuStat; cpu1: CpuStat; ownCpuMs: number; wallMs: number; clkTck?: number; ncpu: number },
  limits?: Partial<Quiet>,
): { busy: boolean; reasons: string[]; foreignPct: number; stealPct: number; machineBusyPct: number };
export function orderFor<T>(rep: number, targets: T[]): T[];
export function median(xs: number[]): number;
export function spread(xs: number[]): Spread;
export function paired<R extends { rep: number; target: string }>(rows: R[], a: string, b: string, f: (r: R) => number, op?: 'ratio' | 'diff'): Spread;
export function fmtSpread(s: Spread | null | undefined, d?: number): string;
