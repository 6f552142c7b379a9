/**
 * TLS 1.3 session resumption without a client certificate. Node reports a
 * resumed TLS 1.3 session that carries no peer certificate as `authorized`
 * (it treats resumption like PSK), with an empty getPeerCertificate(). A
 * browser that got the help page (no certificate; the answer closes the
 * connection) resumes its session for the next request — found by the chat
 * page's lab test, where it made the guard process exit. Such a connection is
 * a connection without a certificate: 401, and the guard keeps serving.
 */
import { once } from 'node:events';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { errorOf, parseRaw, readUntilClose, startEnv, type GuardEnv } from '../../support/guard-env.js';

let env: GuardEnv;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

/** One request on a fresh TLS connection (optionally resuming `session`); the answer and the session to resume next time. */
async function once1(o: { session?: Buffer; cert?: boolean }): Promise<{ reused: boolean; answer: ReturnType<typeof parseRaw>; session: Buffer | undefined }> {
  const s = tls.connect({ host: '127.0.0.1', port: env.port, ...env.tlsFor(o.cert ? 'alice' : null), minVersion: 'TLSv1.3', ...(o.session ? { session: o.session } : {}) });
  let session: Buffer | undefined;
  s.on('session', (b: Buffer) => (session = b));
  await once(s, 'secureConnect');
  const reused = s.isSessionReused();
  s.write(`GET /api/version HTTP/1.1\r\nhost: 127.0.0.1:${env.port}\r\naccept: */*\r\nconnection: close\r\n\r\n`);
  const r = await readUntilClose(s, 3000);
  return { reused, answer: parseRaw(r.data), session };
}

test('a resumed TLS 1.3 session without a certificate is answered 401 like the first one, and the guard keeps serving', async () => {
  const first = await once1({});
  expect(first.answer.status).toBe(401);
  expect(first.session).toBeDefined();
  const again = await once1({ session: first.session });
  expect(again.reused).toBe(true); // otherwise this test proves nothing
  expect(again.answer.status).toBe(401);
  expect(errorOf({ body: again.answer.body })).toBe('client certificate required');
  expect(env.errors).toEqual([]);
  // Still serving, with a certificate, and a resumed session of a certificate holder still works.
  const alice = await once1({ cert: true });
  expect(alice.answer.status).toBe(200);
  const aliceAgain = await once1({ cert: true, session: alice.session });
  expect(aliceAgain.reused).toBe(true);
  expect(aliceAgain.answer.status).toBe(200);
});
