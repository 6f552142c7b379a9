import { describe, expect, test } from 'vitest';
import type { DesiredPeer, DesiredState } from '../../../src/core/desired.js';
import type { WgDump, WgPeerState } from '../../../src/core/wg-dump.js';
import { diffWireguard, isWgDiffEmpty, renderSyncConf, wgSetArgs, type WgPeerDiff } from '../../../src/core/wg-plan.js';

/** A recognisable 32-byte base64 value: every byte is n. */
const key = (n: number): string => Buffer.alloc(32, n).toString('base64');
const ALICE = key(1);
const ALICE2 = key(2);
const BOB = key(3);
const CAROL = key(4);
const PSK_A = key(101);
const PSK_A2 = key(102);
const PSK_B = key(103);
const SERVER_PRIV = key(200);

const peer = (id: number, name: string, publicKey: string, address: string, psk: string | null): DesiredPeer => ({
  id,
  name,
  publicKey,
  presharedKey: psk,
  presharedKeyFile: psk ? `/var/lib/wg-ollama/psk/${name}-${id}.psk` : null,
  address,
});

const desired = (peers: DesiredPeer[], listenPort = 51820): DesiredState => ({
  iface: 'wgo0',
  listenPort,
  addressCidr: '10.66.0.1/24',
  ollamaHost: '192.168.1.10',
  ollamaPort: 11434,
  peers,
});

const have = (publicKey: string, allowedIps: string[], presharedKey: string | null): WgPeerState => ({
  publicKey,
  presharedKey,
  endpoint: '203.0.113.9:5000',
  allowedIps,
  latestHandshake: 1700000000,
  rxBytes: 10,
  txBytes: 20,
  persistentKeepalive: 0,
});

const dump = (peers: WgPeerState[], listenPort = 51820): WgDump => ({
  iface: { privateKey: SERVER_PRIV, publicKey: key(201), listenPort, fwmark: 'off' },
  peers,
});

const alice = peer(1, 'alice', ALICE, '10.66.0.2', PSK_A);
const bob = peer(2, 'bob', BOB, '10.66.0.3', PSK_B);
const carol = peer(3, 'carol', CAROL, '10.66.0.4', null);

describe('diffWireguard', () => {
  /** The one case with nothing to apply. */
  const EMPTY = new Set(['no-op when WireGuard already matches']);
  const cases: [string, DesiredState, WgDump, WgPeerDiff][] = [
    [
      'no-op when WireGuard already matches',
      desired([alice, bob, carol]),
      dump([have(ALICE, ['10.66.0.2/32'], PSK_A), have(BOB, ['10.66.0.3/32'], PSK_B), have(CAROL, ['10.66.0.4/32'], null)]),
      { upsert: [], remove: [], cutAddresses: [], listenPortWrong: false },
    ],
    [
      'adds a new peer',
      desired([alice, bob]),
      dump([have(ALICE, ['10.66.0.2/32'], PSK_A)]),
      { upsert: [bob], remove: [], cutAddresses: [], listenPortWrong: false },
    ],
    [
      'removes a peer and cuts its address',
      desired([alice]),
      dump([have(ALICE, ['10.66.0.2/32'], PSK_A), have(BOB, ['10.66.0.3/32'], PSK_B)]),
      { upsert: [], remove: [BOB], cutAddresses: ['10.66.0.3'], listenPortWrong: false },
    ],
    [
      'upserts on a changed preshared key',
      desired([alice]),
      dump([have(ALICE, ['10.66.0.2/32'], PSK_A2)]),
      { upsert: [alice], remove: [], cutAddresses: [], listenPortWrong: false },
    ],
    [
      'upserts when WireGuard has a PSK the peer no longer has',
      desired([carol]),
      dump([have(CAROL, ['10.66.0.4/32'], PSK_A)]),
      { upsert: [carol], remove: [], cutAddresses: [], listenPortWrong: false },
    ],
    [
      'upserts on a different allowed ip',
      desired([alice]),
      dump([have(ALICE, ['10.66.0.9/32'], PSK_A)]),
      { upsert: [alice], remove: [], cutAddresses: [], listenPortWrong: false },
    ],
    [
      'upserts on an extra allowed ip',
      desired([alice]),
      dump([have(ALICE, ['10.66.0.2/32', '0.0.0.0/0'], PSK_A)]),
      { upsert: [alice], remove: [], cutAddresses: [], listenPortWrong: false },
    ],
    [
      'upserts on missing allowed ips',
      desired([alice]),
      dump([have(ALICE, [], PSK_A)]),
      { upsert: [alice], remove: [], cutAddresses: [], listenPortWrong: false },
    ],
    [
      'key rotation at the same address: new key in, old key out, address cut',
      desired([{ ...alice, publicKey: ALICE2, presharedKey: PSK_A2 }]),
      dump([have(ALICE, ['10.66.0.2/32'], PSK_A)]),
      {
        upsert: [{ ...alice, publicKey: ALICE2, presharedKey: PSK_A2 }],
        remove: [ALICE],
        cutAddresses: ['10.66.0.2'],
        listenPortWrong: false,
      },
    ],
    [
      'listen port changed',
      desired([alice], 51821),
      dump([have(ALICE, ['10.66.0.2/32'], PSK_A)]),
      { upsert: [], remove: [], cutAddresses: [], listenPortWrong: true },
    ],
    [
      'everything removed: each address cut once, sorted',
      desired([]),
      dump([have(CAROL, ['10.66.0.4/32'], null), have(BOB, ['10.66.0.3/32', '10.66.0.4/32'], PSK_B)]),
      { upsert: [], remove: [CAROL, BOB], cutAddresses: ['10.66.0.3', '10.66.0.4'], listenPortWrong: false },
    ],
  ];

  test.each(cases)('%s', (_what, want, actual, diff) => {
    const got = diffWireguard(want, actual);
    expect(got).toEqual(diff);
    // Nothing to apply exactly where the expected diff above has no upsert, no removal and the right port.
    expect(isWgDiffEmpty(got)).toBe(EMPTY.has(_what));
  });

  test('isWgDiffEmpty ignores cutAddresses but not a wrong listen port', () => {
    expect(isWgDiffEmpty({ upsert: [], remove: [], cutAddresses: [], listenPortWrong: false })).toBe(true);
    expect(isWgDiffEmpty({ upsert: [], remove: [], cutAddresses: [], listenPortWrong: true })).toBe(false);
  });
});

describe('wgSetArgs', () => {
  test('listen port, then upserts with PSK files, then removals', () => {
    const diff: WgPeerDiff = { upsert: [alice, carol], remove: [BOB], cutAddresses: ['10.66.0.3'], listenPortWrong: true };
    expect(wgSetArgs('wgo0', diff, 51821)).toEqual([
      'set', 'wgo0',
      'listen-port', '51821',
      'peer', ALICE, 'preshared-key', '/var/lib/wg-ollama/psk/alice-1.psk', 'allowed-ips', '10.66.0.2/32',
      'peer', CAROL, 'preshared-key', '/dev/null', 'allowed-ips', '10.66.0.4/32',
      'peer', BOB, 'remove',
    ]);
  });

  test('no listen-port argument when the port is right', () => {
    const diff: WgPeerDiff = { upsert: [bob], remove: [], cutAddresses: [], listenPortWrong: false };
    expect(wgSetArgs('wgo0', diff, 51820)).toEqual([
      'set', 'wgo0', 'peer', BOB, 'preshared-key', '/var/lib/wg-ollama/psk/bob-2.psk', 'allowed-ips', '10.66.0.3/32',
    ]);
  });

  test('never puts a preshared or private key on argv: every key-shaped argument is a public key', () => {
    const rotated = { ...alice, publicKey: ALICE2, presharedKey: PSK_A2 };
    const diff = diffWireguard(
      desired([rotated, bob, carol], 51821),
      dump([have(ALICE, ['10.66.0.2/32'], PSK_A), have(BOB, ['10.66.0.3/32'], null)]),
    );
    const args = wgSetArgs('wgo0', diff, 51821);
    const keyShaped = args.filter((a) => /^[A-Za-z0-9+/]{43}=$/.test(a));
    expect(keyShaped.sort()).toEqual([ALICE2, BOB, CAROL, ALICE].sort());
    for (const secret of [PSK_A, PSK_A2, PSK_B, SERVER_PRIV]) expect(args.join(' ')).not.toContain(secret);
  });
});

describe('renderSyncConf', () => {
  test('renders the whole table exactly, PSK lines only where there is one', () => {
    expect(renderSyncConf(desired([alice, carol], 51820), SERVER_PRIV)).toBe(
      `[Interface]
PrivateKey = ${SERVER_PRIV}
ListenPort = 51820

[Peer]
PublicKey = ${ALICE}
PresharedKey = ${PSK_A}
AllowedIPs = 10.66.0.2/32

[Peer]
PublicKey = ${CAROL}
AllowedIPs = 10.66.0.4/32
`,
    );
  });

  test('with no peers it is only the interface section', () => {
    expect(renderSyncConf(desired([], 1234), SERVER_PRIV)).toBe(`[Interface]\nPrivateKey = ${SERVER_PRIV}\nListenPort = 1234\n`);
  });
});
