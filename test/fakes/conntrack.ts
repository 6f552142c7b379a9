import type { ConntrackDriver } from '../../src/system/conntrack.js';

/** Records the addresses whose flows were cut. */
export class FakeConntrack implements ConntrackDriver {
  readonly cuts: string[] = [];
  readonly failFor = new Set<string>();

  constructor(private readonly log: string[] = []) {}

  async cut(address: string): Promise<void> {
    this.log.push(`conntrack.cut ${address}`);
    if (this.failFor.has(address)) throw new Error(`fake conntrack failure for ${address}`);
    this.cuts.push(address);
  }
}
