import type { CaStore } from '../../src/gateway/ca-store.js';
import { createCa, type CaMaterial } from '../../src/pki/ca.js';

let shared: CaMaterial | null = null;

/** One CA per test process (RSA 3072 key generation is the slow part), behind the CaStore interface. */
export function testCa(): CaMaterial {
  shared ??= createCa({ commonName: 'wg-ollama test CA' });
  return shared;
}

export function testCaStore(): CaStore {
  return { load: () => testCa(), ensure: () => ({ ca: testCa(), created: false }) };
}
