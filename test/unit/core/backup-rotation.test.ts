import { describe, expect, test } from 'vitest';
import { backupFileName, backupsToRemove, isBackupFileName } from '../../../src/core/backup-rotation.js';

describe('scheduled backup names and rotation', () => {
  test('the name is the UTC time, with -N when that name is taken', () => {
    const at = new Date(Date.UTC(2026, 11, 5, 1, 2, 3, 456));
    expect(backupFileName(at)).toBe('wg-ollama-20261205T010203Z.wgobak');
    expect(backupFileName(at, 2)).toBe('wg-ollama-20261205T010203Z-2.wgobak');
    expect(isBackupFileName(backupFileName(at, 2))).toBe(true);
  });

  test('keeps the newest N of ours, by time then attempt; never names another file', () => {
    const names = [
      'wg-ollama-20261203T000000Z.wgobak', 'notes.txt', 'wg-ollama-20261205T000000Z-1.wgobak', 'wg-ollama-20261201T235959Z.wgobak',
      'wg-ollama-20261205T000000Z.wgobak', 'wg-ollama-latest.wgobak', 'wg-ollama-20261204T000000Z.wgobak.tmp', '.wg-ollama-backup-x',
    ];
    expect(backupsToRemove(names, 2)).toEqual(['wg-ollama-20261201T235959Z.wgobak', 'wg-ollama-20261203T000000Z.wgobak']);
    expect(backupsToRemove(names, 1)).toEqual(['wg-ollama-20261201T235959Z.wgobak', 'wg-ollama-20261203T000000Z.wgobak', 'wg-ollama-20261205T000000Z.wgobak']);
    expect(backupsToRemove(names, 10)).toEqual([]);
    expect(backupsToRemove(['wg-ollama-20261205T000000Z-10.wgobak', 'wg-ollama-20261205T000000Z-9.wgobak'], 1)).toEqual(['wg-ollama-20261205T000000Z-9.wgobak']);
  });
});
