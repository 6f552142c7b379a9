/**
 * Run by test/unit/guard/spool-thread.test.ts in a process of its own (vite-node): hands one
 * record to the spool's writer thread and lets the process end by itself, without waiting for
 * the answer. The record must be in the spool afterwards: a write not yet answered keeps the
 * process alive. With `close`, it then closes the thread and prints "closed" once close()
 * answered: what a shutdown does after it (the guard's last log line) must still happen.
 */
import { openSpool } from '../../src/guard/spool.js';
import { startSpoolThread } from '../../src/guard/spool-thread.js';

const [path, then] = [process.argv[2]!, process.argv[3]];
openSpool(path).close();
const thread = startSpoolThread(path, { maxBytes: 1 << 30 });
void thread.append([{
  at: 1, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model: null,
  promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 0, bytesOut: 0, promptTokens: 1, evalTokens: 1,
  ttfbMs: null, durationMs: 1, refusal: null,
}]);
if (then === 'close') void thread.close().then(() => process.stdout.write('closed\n'));
