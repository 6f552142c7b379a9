import { describe, expect, test } from 'vitest';
import { ensureClosedFirewall, inspectFirewall, removeFirewall } from '../../../src/gateway/firewall.js';
import { FakeFirewall } from '../../fakes/firewall.js';
import { firewallVerdict } from '../../fakes/packets.js';

const spec = { iface: 'wgo0', ollamaHost: '192.168.1.10', ollamaPort: 11434 };
const OTHER = '-A FORWARD -i eth0 -o eth1 -j ACCEPT';

function firewallWithOtherRules(): FakeFirewall {
  const fw = new FakeFirewall();
  fw.seed('ipv4', `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n${OTHER}\nCOMMIT\n`);
  return fw;
}

describe('gateway firewall', () => {
  test('ensureClosedFirewall: creates the empty set and both families, then is idempotent', async () => {
    const fw = firewallWithOtherRules();
    expect(await ensureClosedFirewall(fw, spec)).toEqual(['ipv4', 'ipv6']);
    expect(await inspectFirewall(fw, spec)).toEqual({ inSync: { ipv4: true, ipv6: true }, setExists: true, setEntries: [] });
    expect(fw.rules('ipv4', 'FORWARD')).toEqual(['-A FORWARD -j WGO-FWD-wgo0', OTHER]);
    // Closed means closed, judged by packets: with the set empty nothing from the
    // tunnel passes; a peer in the set reaches Ollama's port and nothing else.
    const open = { in: 'wgo0', src: '10.66.0.2', dst: spec.ollamaHost, proto: 'tcp' as const, dport: spec.ollamaPort, syn: true, ct: 'NEW' as const };
    expect(firewallVerdict(fw, 'ipv4', 'FORWARD', open)).toBe('DROP');
    expect(firewallVerdict(fw, 'ipv4', 'INPUT', open)).toBe('DROP');
    expect(firewallVerdict(fw, 'ipv6', 'FORWARD', { ...open, src: 'fd00::2', dst: 'fd00::1' })).toBe('DROP');
    await fw.restoreSet('add wgo-peers-wgo0 10.66.0.2 comment "alice"\n');
    expect(firewallVerdict(fw, 'ipv4', 'FORWARD', open)).toBe('ACCEPT');
    expect(firewallVerdict(fw, 'ipv4', 'FORWARD', { ...open, dport: 22 })).toBe('DROP');
    await fw.restoreSet('del wgo-peers-wgo0 10.66.0.2\n');
    const restores = fw.restores.filter((r) => r.family !== 'ipset').length;
    expect(await ensureClosedFirewall(fw, spec)).toEqual([]);
    expect(fw.restores.filter((r) => r.family !== 'ipset').length).toBe(restores);
  });

  test('ensureClosedFirewall keeps the set’s entries', async () => {
    const fw = new FakeFirewall();
    await fw.restoreSet('create wgo-peers-wgo0 hash:ip family inet hashsize 1024 maxelem 1048576 comment\nadd wgo-peers-wgo0 10.66.0.2 comment "alice"\n');
    await ensureClosedFirewall(fw, spec);
    expect((await inspectFirewall(fw, spec)).setEntries).toEqual(['10.66.0.2']);
  });

  test('inspectFirewall reports a family out of sync and a missing set', async () => {
    const fw = firewallWithOtherRules();
    await ensureClosedFirewall(fw, spec);
    await fw.restore('ipv6', '*filter\n-D INPUT -i wgo0 -j WGO-IN-wgo0\nCOMMIT\n');
    await fw.destroySet('wgo-peers-wgo0');
    expect(await inspectFirewall(fw, spec)).toEqual({ inSync: { ipv4: true, ipv6: false }, setExists: false, setEntries: [] });
  });

  test('removeFirewall takes out hooks, chains and the set, and nothing else', async () => {
    const fw = firewallWithOtherRules();
    await ensureClosedFirewall(fw, spec);
    await removeFirewall(fw, 'wgo0');
    for (const family of ['ipv4', 'ipv6'] as const) expect(await fw.save(family)).not.toContain('WGO-');
    expect(fw.rules('ipv4', 'FORWARD')).toEqual([OTHER]);
    expect(fw.sets.size).toBe(0);
  });

  test('removeFirewall on a clean system restores nothing', async () => {
    const fw = new FakeFirewall();
    await removeFirewall(fw, 'wgo0');
    expect(fw.restores).toEqual([]);
  });
});
