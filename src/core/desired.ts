/**
 * Desired state: what the kernel should look like, as plain values computed
 * from the database. Everything else derives from these.
 */
export interface DesiredPeer {
  id: number;
  name: string;
  publicKey: string;
  /** Preshared key, or null when the peer has none. Never logged. */
  presharedKey: string | null;
  /** Path of the 0600 file holding the preshared key (what `wg set` reads). */
  presharedKeyFile: string | null;
  /** The peer's tunnel address, dotted quad (allowed-ips is ADDRESS/32). */
  address: string;
  /** When the peer expires (ms), or null. */
  expiresAt: number | null;
}

export interface DesiredState {
  iface: string;
  listenPort: number;
  /** The gateway's tunnel address with the subnet prefix, e.g. 10.66.0.1/24. */
  addressCidr: string;
  ollamaHost: string;
  ollamaPort: number;
  peers: DesiredPeer[];
}
