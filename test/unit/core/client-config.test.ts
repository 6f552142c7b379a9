import { describe, expect, test } from 'vitest';
import { renderClientConfig, type ClientConfigInput } from '../../../src/core/client-config.js';

const base: ClientConfigInput = {
  privateKey: 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=',
  address: '10.66.0.2',
  serverPublicKey: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=',
  presharedKey: 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=',
  endpoint: 'vpn.example.com:51820',
  ollamaHost: '192.168.1.10',
  persistentKeepalive: 25,
};

describe('renderClientConfig', () => {
  test.each<[string, Partial<ClientConfigInput>, string]>([
    [
      'with a preshared key',
      {},
      `[Interface]
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
Address = 10.66.0.2/32

[Peer]
PublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
PresharedKey = FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=
Endpoint = vpn.example.com:51820
AllowedIPs = 192.168.1.10/32
PersistentKeepalive = 25
`,
    ],
    [
      'without a preshared key',
      { presharedKey: null },
      `[Interface]
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
Address = 10.66.0.2/32

[Peer]
PublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
Endpoint = vpn.example.com:51820
AllowedIPs = 192.168.1.10/32
PersistentKeepalive = 25
`,
    ],
    [
      'with the peer bringing its own key',
      { privateKey: null },
      `[Interface]
# PrivateKey = <the private key of the public key you registered>
Address = 10.66.0.2/32

[Peer]
PublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
PresharedKey = FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=
Endpoint = vpn.example.com:51820
AllowedIPs = 192.168.1.10/32
PersistentKeepalive = 25
`,
    ],
    [
      'with keepalive off and an IPv6 endpoint',
      { persistentKeepalive: 0, endpoint: '[2001:db8::1]:443', presharedKey: null, address: '10.66.3.254' },
      `[Interface]
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
Address = 10.66.3.254/32

[Peer]
PublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=
Endpoint = [2001:db8::1]:443
AllowedIPs = 192.168.1.10/32
`,
    ],
  ])('%s', (_what, change, want) => {
    expect(renderClientConfig({ ...base, ...change })).toBe(want);
  });

  test('is a split tunnel: only the Ollama host is routed, and there is no DNS line', () => {
    const text = renderClientConfig(base);
    expect(text.match(/^AllowedIPs = .*$/gm)).toEqual(['AllowedIPs = 192.168.1.10/32']);
    expect(text).not.toMatch(/0\.0\.0\.0\/0|::\/0|^DNS/m);
  });
});
