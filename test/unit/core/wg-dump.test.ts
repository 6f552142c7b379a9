import { describe, expect, test } from 'vitest';
import { parseWgDump } from '../../../src/core/wg-dump.js';
import { expectWgoError } from '../../support/errors.js';

const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PUB = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const A = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const B = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';
const C = 'gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA=';
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';

const row = (...fields: (string | number)[]): string => fields.join('\t');

describe('parseWgDump', () => {
  test('parses an interface line and peers in the format `wg show IFACE dump` prints', () => {
    const text = [
      row(PRIV, PUB, 51820, 'off'),
      row(A, PSK, '203.0.113.7:41414', '10.66.0.2/32', 1700000000, 12345, 67890, 'off'),
      row(B, '(none)', '(none)', '(none)', 0, 0, 0, 25),
      row(C, '(none)', '[2001:db8::1]:51820', '10.66.0.4/32,10.66.0.5/32,fd00::4/128', 1700000100, 1, 2, 'off'),
    ].join('\n') + '\n';

    expect(parseWgDump(text)).toEqual({
      iface: { privateKey: PRIV, publicKey: PUB, listenPort: 51820, fwmark: 'off' },
      peers: [
        {
          publicKey: A,
          presharedKey: PSK,
          endpoint: '203.0.113.7:41414',
          allowedIps: ['10.66.0.2/32'],
          latestHandshake: 1700000000,
          rxBytes: 12345,
          txBytes: 67890,
          persistentKeepalive: 0,
        },
        {
          publicKey: B,
          presharedKey: null,
          endpoint: null,
          allowedIps: [],
          latestHandshake: 0,
          rxBytes: 0,
          txBytes: 0,
          persistentKeepalive: 25,
        },
        {
          publicKey: C,
          presharedKey: null,
          endpoint: '[2001:db8::1]:51820',
          allowedIps: ['10.66.0.4/32', '10.66.0.5/32', 'fd00::4/128'],
          latestHandshake: 1700000100,
          rxBytes: 1,
          txBytes: 2,
          persistentKeepalive: 0,
        },
      ],
    });
  });

  test('an interface without keys or peers (fresh interface)', () => {
    expect(parseWgDump(row('(none)', '(none)', 0, 'off') + '\n')).toEqual({
      iface: { privateKey: null, publicKey: null, listenPort: 0, fwmark: 'off' },
      peers: [],
    });
  });

  test('keeps a set fwmark as text', () => {
    expect(parseWgDump(row(PRIV, PUB, 51820, '0xca6c')).iface.fwmark).toBe('0xca6c');
  });

  test('large byte counters survive', () => {
    const big = 987654321098;
    const dump = parseWgDump([row(PRIV, PUB, 1, 'off'), row(A, '(none)', '(none)', '10.66.0.2/32', 1, big, big + 1, 'off')].join('\n'));
    expect(dump.peers[0]).toMatchObject({ rxBytes: big, txBytes: big + 1 });
  });

  test.each([
    ['empty output', '', 'wg dump: empty output'],
    ['only newlines', '\n\n', 'wg dump: empty output'],
    ['interface line with 3 fields', row(PRIV, PUB, 51820), 'wg dump: interface line has 3 fields, expected 4'],
    ['interface line with 5 fields', row(PRIV, PUB, 51820, 'off', 'x'), 'wg dump: interface line has 5 fields, expected 4'],
    ['space separated', `${PRIV} ${PUB} 51820 off`, 'wg dump: interface line has 1 fields, expected 4'],
    ['listen port not a number', row(PRIV, PUB, 'port', 'off'), 'wg dump: listen port "port" is not a number'],
    [
      'peer line with 7 fields',
      [row(PRIV, PUB, 51820, 'off'), row(A, '(none)', '(none)', '10.66.0.2/32', 0, 0, 0)].join('\n'),
      'wg dump: peer line 1 has 7 fields, expected 8',
    ],
    [
      'second peer line with 9 fields',
      [
        row(PRIV, PUB, 51820, 'off'),
        row(A, '(none)', '(none)', '10.66.0.2/32', 0, 0, 0, 'off'),
        row(B, '(none)', '(none)', '10.66.0.3/32', 0, 0, 0, 'off', 'extra'),
      ].join('\n'),
      'wg dump: peer line 2 has 9 fields, expected 8',
    ],
    [
      'rx bytes not a number',
      [row(PRIV, PUB, 51820, 'off'), row(A, '(none)', '(none)', '10.66.0.2/32', 0, 'lots', 0, 'off')].join('\n'),
      'wg dump: rx bytes "lots" is not a number',
    ],
    [
      'handshake not a number',
      [row(PRIV, PUB, 51820, 'off'), row(A, '(none)', '(none)', '10.66.0.2/32', 'never', 0, 0, 'off')].join('\n'),
      'wg dump: latest handshake "never" is not a number',
    ],
  ])('throws on %s', (_what, text, message) => {
    // Output `wg` should never give: an internal error (exit 1, 500), not the user's input.
    expect(expectWgoError(() => parseWgDump(text), 'INTERNAL').message).toBe(message);
  });
});
