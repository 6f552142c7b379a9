// Types for legs.mjs (used by test/unit/bench).
export type Legs = Record<string, number | null>;
export const PIECES: [string, string][];
export function guardLegs(q: { t0: number; first: number | null; marks: Record<string, number> | null; simArrived: number | null; simFirstEmit: number | null }): Legs;
export function opaqueLegs(q: { t0: number; first: number | null; simArrived: number | null; simFirstEmit: number | null }): Legs;
export function percentile(xs: (number | null)[], p: number): number;
export function legStats(list: Legs[]): Record<string, { p50: number; p99: number; n: number }>;
