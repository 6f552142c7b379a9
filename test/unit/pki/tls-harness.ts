/**
 * One real TLS handshake over 127.0.0.1 between a node:tls server and client,
 * reporting what each side saw. Used to check issued certificates with
 * OpenSSL as the verifier, never node-forge.
 */
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';

export interface ServerSide {
  /** 'secureConnection' fired (the server accepted the handshake). */
  accepted: boolean;
  authorized: boolean;
  /** Node's code for the client-certificate verification error, e.g. 'CERT_HAS_EXPIRED'. */
  authorizationError: string | null;
  peerCertificate: tls.PeerCertificate | null;
  /** Error passed to 'tlsClientError', if any. */
  clientError: (Error & { code?: string }) | null;
}

export interface ClientSide {
  /** The client got the server's "ok" after the handshake: both sides accepted. */
  gotReply: boolean;
  /** Error the client saw (server refused, or the client refused the server). */
  error: (Error & { code?: string }) | null;
  peerCertificate: tls.PeerCertificate | null;
}

export interface HandshakeOptions {
  server: tls.TlsOptions;
  client: tls.ConnectionOptions;
}

const REPLY = 'ok';

export async function handshake(opts: HandshakeOptions): Promise<{ server: ServerSide; client: ClientSide }> {
  const serverSide: ServerSide = {
    accepted: false,
    authorized: false,
    authorizationError: null,
    peerCertificate: null,
    clientError: null,
  };
  const server = tls.createServer(opts.server, (socket) => {
    serverSide.accepted = true;
    serverSide.authorized = socket.authorized;
    serverSide.authorizationError = socket.authorizationError ? String(socket.authorizationError) : null;
    const peer = socket.getPeerCertificate();
    serverSide.peerCertificate = peer && Object.keys(peer).length > 0 ? peer : null;
    socket.on('error', () => undefined);
    socket.end(REPLY);
  });
  server.on('tlsClientError', (err) => {
    serverSide.clientError = err;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  try {
    const client = await new Promise<ClientSide>((resolve) => {
      const result: ClientSide = { gotReply: false, error: null, peerCertificate: null };
      let data = '';
      const socket = tls.connect({ host: '127.0.0.1', port, ...opts.client });
      socket.setEncoding('utf8');
      socket.on('secureConnect', () => {
        const peer = socket.getPeerCertificate();
        result.peerCertificate = peer && Object.keys(peer).length > 0 ? peer : null;
      });
      socket.on('data', (chunk: string) => {
        data += chunk;
      });
      socket.on('error', (err) => {
        result.error = err;
      });
      socket.on('close', () => {
        result.gotReply = data === REPLY;
        resolve(result);
      });
    });
    // tlsClientError / secureConnection may land just after the client closed.
    await new Promise((r) => setTimeout(r, 20));
    return { server: serverSide, client };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
