import { Writable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { createLogger } from '../../../src/system/logger.js';
import { parseLogLines } from '../../support/log-line.js';

/** A logger writing into a string, as serve and guard write to stdout. */
function capture(base?: Record<string, unknown>) {
  let text = '';
  const destination = new Writable({ write(chunk, _enc, done) { text += String(chunk); done(); } });
  const log = createLogger({ base, destination });
  return { log, text: () => text };
}

describe('createLogger: the JSON lines of serve and guard', () => {
  test('one object per line: ISO time, level as a label, pid, event, msg', () => {
    const { log, text } = capture();
    log.info({ event: 'serve.start', interface: 'wgo0', peers: 2 }, 'serving');
    log.warn({ event: 'forwarding.off' }, 'net.ipv4.ip_forward is off');
    log.error({ event: 'reconcile.failed', errors: ['x'] }, 'reconcile failed');
    log.fatal({ event: 'serve.failed', code: 'INTERNAL', err: 'boom' }, 'serve stopped on an error');
    const lines = parseLogLines(text());
    expect(lines.map((l) => [l.level, l.event, l.msg])).toEqual([
      ['info', 'serve.start', 'serving'],
      ['warn', 'forwarding.off', 'net.ipv4.ip_forward is off'],
      ['error', 'reconcile.failed', 'reconcile failed'],
      ['fatal', 'serve.failed', 'serve stopped on an error'],
    ]);
    expect(lines[0]).toMatchObject({ pid: process.pid, interface: 'wgo0', peers: 2 });
    expect(lines[3]).toMatchObject({ code: 'INTERNAL', err: 'boom' });
    expect(Math.abs(Date.parse(lines[0]!.time) - Date.now())).toBeLessThan(60_000);
  });

  test('debug lines are off by default (level info)', () => {
    const { log, text } = capture();
    log.debug({ event: 'monitor.recorded', events: 3 }, 'connection events recorded');
    expect(text()).toBe('');
  });

  test('base fields and child fields are on every line (the guard adds its name)', () => {
    const { log, text } = capture();
    log.child({ guard: 'gpu1' }).info({ event: 'guard.start', listen: '127.0.0.1:11434' }, 'guard serving');
    expect(parseLogLines(text())[0]).toMatchObject({ guard: 'gpu1', event: 'guard.start' });
  });

  test('secrets are redacted at the top level and one object down', () => {
    const { log, text } = capture();
    log.info({
      event: 'peer.expired', peer: 'alice', privateKey: 'PRIV=', token: 'wgo_abc', password: 'hunter2 hunter2',
      peerInfo: { presharedKey: 'PSK=', apiToken: 'wgo_def', p12Passphrase: 'pass', totpCode: '123456' },
    }, 'peer expired');
    const out = text();
    for (const secret of ['PRIV=', 'wgo_abc', 'hunter2', 'PSK=', 'wgo_def', '"pass"', '123456']) expect(out).not.toContain(secret);
    expect(parseLogLines(out)[0]).toMatchObject({ peer: 'alice', privateKey: '[redacted]', peerInfo: { presharedKey: '[redacted]' } });
  });
});
