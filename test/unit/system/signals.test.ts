import { EventEmitter } from 'node:events';
import { describe, expect, test } from 'vitest';
import { onStopSignal } from '../../../src/system/signals.js';

describe('onStopSignal', () => {
  test('stops once, at the first SIGTERM or SIGINT', () => {
    const e = new EventEmitter();
    const seen: string[] = [];
    onStopSignal((s) => seen.push(s), e);
    e.emit('SIGINT');
    e.emit('SIGTERM');
    expect(seen).toEqual(['SIGINT']);
  });

  test('its listener is still there while stopping, so signal-exit (execa) does not re-raise the signal and kill the teardown', () => {
    // signal-exit re-raises a signal when, as its own listener runs, the process has no other listener.
    const e = new EventEmitter();
    let during = -1;
    const off = onStopSignal(() => (during = e.listenerCount('SIGTERM')), e);
    e.emit('SIGTERM');
    expect(during).toBe(1);
    expect(e.listenerCount('SIGTERM')).toBe(1);
    off();
    expect([e.listenerCount('SIGTERM'), e.listenerCount('SIGINT')]).toEqual([0, 0]);
  });
});
