import { readFileSync, writeFileSync } from 'node:fs';

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/** net.ipv4.ip_forward of the current network namespace. */
export function ipForwarding(): boolean {
  return readFileSync(IP_FORWARD, 'utf8').trim() === '1';
}

export function enableIpForwarding(): void {
  writeFileSync(IP_FORWARD, '1\n');
}
