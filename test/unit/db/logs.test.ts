import { describe, expect, it } from 'vitest';
import { auditRepository } from '../../../src/db/audit.js';
import { openDatabase } from '../../../src/db/open.js';

describe('audit log paging', () => {
  it('reads oldest first after an id, or the newest N (still oldest first)', () => {
    const audit = auditRepository(openDatabase(':memory:'));
    for (let i = 1; i <= 5; i++) audit.record({ actor: 'a', source: 'cli', action: `act${i}`, target: null }, i * 1000);
    expect(audit.list({ since: 0, limit: 2 }).map((r) => r.action)).toEqual(['act1', 'act2']);
    expect(audit.list({ since: 0, limit: 2, newest: true }).map((r) => r.action)).toEqual(['act4', 'act5']);
    expect(audit.list({ since: 0, afterId: 3 }).map((r) => r.action)).toEqual(['act4', 'act5']);
    expect(audit.list({ since: 4000 }).map((r) => r.action)).toEqual(['act4', 'act5']);
  });
});
