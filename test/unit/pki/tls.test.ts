/**
 * Issued certificates checked by the verifier that matters: OpenSSL inside
 * Node's TLS, in real handshakes on 127.0.0.1.
 *
 * Each refusal is checked twice: against a rejecting server (the guard's
 * configuration: the client gets no reply) and against a server with
 * rejectUnauthorized: false, which lets us read the exact verification error
 * OpenSSL reported. (A rejecting Node server destroys the socket after the
 * handshake; its 'tlsClientError' then says only ECONNRESET "socket hang up",
 * and under TLS 1.3 the client sees no error at all, just a closed
 * connection without a reply.)
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { certificateInfo, createCa, issueCertificate, normaliseSerial, type CaMaterial, type IssuedCert } from '../../../src/pki/ca.js';
import { handshake } from './tls-harness.js';

const DAY = 24 * 60 * 60 * 1000;
const inDays = (n: number, from = new Date()): Date => new Date(from.getTime() + n * DAY);

let ca: CaMaterial;
let guardServer: IssuedCert;
let peer: IssuedCert;

beforeAll(() => {
  ca = createCa({ commonName: 'wg-ollama CA' });
  guardServer = issueCertificate(ca, { role: 'guard-server', commonName: 'guard', ipAddresses: ['127.0.0.1'], notAfter: inDays(30) });
  peer = issueCertificate(ca, { role: 'peer', commonName: 'alice', ipAddresses: ['10.66.0.2'], notAfter: inDays(30) });
});

/** The guard's server configuration: client certificate required, verified against our CA. */
function guardTls(reject = true, cert: IssuedCert = guardServer) {
  return { key: cert.keyPem, cert: cert.certPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: reject };
}

function clientWith(cert: IssuedCert | null, trust: string = ca.certPem) {
  return cert ? { key: cert.keyPem, cert: cert.certPem, ca: [trust] } : { ca: [trust] };
}

describe('mutual TLS with issued certificates', () => {
  test('a peer certificate is authorized by a guard-server and identifies the peer', async () => {
    const { server, client } = await handshake({ server: guardTls(), client: clientWith(peer) });

    expect(client.error).toBeNull();
    expect(client.gotReply).toBe(true);
    expect(server.authorized).toBe(true);
    const seen = server.peerCertificate;
    expect(seen).not.toBeNull();
    expect(normaliseSerial(seen!.serialNumber)).toBe(peer.serial);
    expect(seen!.serialNumber).not.toBe(peer.serial); // Node says uppercase; normalising is what makes them equal
    expect(seen!.subject).toMatchObject({ CN: 'alice', O: 'wg-ollama', OU: 'peer' });
    expect(seen!.issuer).toMatchObject({ CN: 'wg-ollama CA', O: 'wg-ollama' });
    expect(seen!.subjectaltname).toBe('IP Address:10.66.0.2');
    expect(seen!.fingerprint256).toBe(certificateInfo(peer.certPem).fingerprint256);

    // and the client verified the server (default checkServerIdentity against 127.0.0.1)
    expect(normaliseSerial(client.peerCertificate!.serialNumber)).toBe(guardServer.serial);
    expect(client.peerCertificate!.subject).toMatchObject({ CN: 'guard', OU: 'guard-server' });
    expect(client.peerCertificate!.subjectaltname).toBe('IP Address:127.0.0.1');
  });

  test('a guard-client certificate is accepted as a client, and a gateway-server as a server', async () => {
    const guardClient = issueCertificate(ca, { role: 'guard-client', commonName: 'guard', notAfter: inDays(30) });
    const gateway = issueCertificate(ca, { role: 'gateway-server', commonName: 'gateway', ipAddresses: ['127.0.0.1'], notAfter: inDays(30) });
    const { server, client } = await handshake({ server: guardTls(true, gateway), client: clientWith(guardClient) });
    expect(client.error).toBeNull();
    expect(client.gotReply).toBe(true);
    expect(server.peerCertificate?.subject).toMatchObject({ CN: 'guard', OU: 'guard-client' });
  });

  test('no client certificate: refused', async () => {
    const { server, client } = await handshake({ server: guardTls(), client: clientWith(null) });
    expect(client.gotReply).toBe(false);
    expect(server.accepted).toBe(false);
  });

  test('a client certificate from another CA with the same name is refused', async () => {
    const otherCa = createCa({ commonName: 'wg-ollama CA' });
    const stranger = issueCertificate(otherCa, { role: 'peer', commonName: 'alice', notAfter: inDays(30) });

    const rejecting = await handshake({ server: guardTls(), client: clientWith(stranger) });
    expect(rejecting.client.gotReply).toBe(false);
    expect(rejecting.server.accepted).toBe(false);

    const lenient = await handshake({ server: guardTls(false), client: clientWith(stranger) });
    expect(lenient.server.authorized).toBe(false);
    // The stranger's authorityKeyIdentifier does not match our CA's subjectKeyIdentifier,
    // so OpenSSL does not even take our CA for its issuer.
    expect(lenient.server.authorizationError).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  test('an expired client certificate is refused with CERT_HAS_EXPIRED', async () => {
    const tenDaysAgo = inDays(-10);
    const expired = issueCertificate(ca, { role: 'peer', commonName: 'old', notAfter: inDays(-1), now: tenDaysAgo });

    const rejecting = await handshake({ server: guardTls(), client: clientWith(expired) });
    expect(rejecting.client.gotReply).toBe(false);
    expect(rejecting.server.accepted).toBe(false);

    const lenient = await handshake({ server: guardTls(false), client: clientWith(expired) });
    expect(lenient.server.authorizationError).toBe('CERT_HAS_EXPIRED');
  });

  test('an expired server certificate is refused by the client with CERT_HAS_EXPIRED', async () => {
    const expired = issueCertificate(ca, {
      role: 'guard-server',
      commonName: 'guard',
      ipAddresses: ['127.0.0.1'],
      notAfter: inDays(-1),
      now: inDays(-10),
    });
    const { server, client } = await handshake({ server: guardTls(true, expired), client: clientWith(peer) });
    expect(client.gotReply).toBe(false);
    expect(client.error?.code).toBe('CERT_HAS_EXPIRED');
    expect(server.accepted).toBe(false);
  });

  test('a guard-server certificate (serverAuth only) is refused as a client certificate', async () => {
    // OpenSSL does enforce the purpose: a TLS server verifies client chains with
    // the "sslclient" purpose, and an extKeyUsage without clientAuth fails it.
    const rejecting = await handshake({ server: guardTls(), client: clientWith(guardServer) });
    expect(rejecting.client.gotReply).toBe(false);
    expect(rejecting.server.accepted).toBe(false);

    const lenient = await handshake({ server: guardTls(false), client: clientWith(guardServer) });
    expect(lenient.server.authorized).toBe(false);
    expect(lenient.server.authorizationError).toBe('INVALID_PURPOSE');
  });

  test('a peer certificate (clientAuth only) is refused by a client as a server certificate', async () => {
    // SAN 127.0.0.1, so the only thing wrong is the purpose.
    const peerAsServer = issueCertificate(ca, { role: 'peer', commonName: 'mallory', ipAddresses: ['127.0.0.1'], notAfter: inDays(30) });
    const { client } = await handshake({ server: guardTls(true, peerAsServer), client: clientWith(peer) });
    expect(client.gotReply).toBe(false);
    expect(client.error?.code).toBe('INVALID_PURPOSE');
  });

  test('the server IP address must be in the SAN', async () => {
    const elsewhere = issueCertificate(ca, { role: 'guard-server', commonName: 'guard', ipAddresses: ['127.0.0.2'], notAfter: inDays(30) });
    const { client } = await handshake({ server: guardTls(true, elsewhere), client: clientWith(peer) });
    expect(client.gotReply).toBe(false);
    expect(client.error?.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  test('a server certificate with only a DNS name verifies against that name', async () => {
    const named = issueCertificate(ca, { role: 'gateway-server', commonName: 'gw', dnsNames: ['gateway.wg-ollama.internal'], notAfter: inDays(30) });
    const { client } = await handshake({
      server: guardTls(true, named),
      client: { ...clientWith(peer), servername: 'gateway.wg-ollama.internal' },
    });
    expect(client.error).toBeNull();
    expect(client.gotReply).toBe(true);
  });
});
