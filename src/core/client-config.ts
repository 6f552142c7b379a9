/** What goes into a person's wg-quick config. */
export interface ClientConfigInput {
  /** Null when the peer brought its own key: the line is left for them to fill in. */
  privateKey: string | null;
  address: string;
  serverPublicKey: string;
  presharedKey: string | null;
  endpoint: string;
  /** Only the GPU host: a split tunnel. */
  ollamaHost: string;
  persistentKeepalive: number;
}

/** Renders the wg-quick config text exactly as `add-peer` prints it and the QR code holds it. */
export function renderClientConfig(c: ClientConfigInput): string {
  const lines = ['[Interface]'];
  if (c.privateKey) lines.push(`PrivateKey = ${c.privateKey}`);
  else lines.push('# PrivateKey = <the private key of the public key you registered>');
  lines.push(`Address = ${c.address}/32`, '', '[Peer]', `PublicKey = ${c.serverPublicKey}`);
  if (c.presharedKey) lines.push(`PresharedKey = ${c.presharedKey}`);
  lines.push(`Endpoint = ${c.endpoint}`, `AllowedIPs = ${c.ollamaHost}/32`);
  if (c.persistentKeepalive > 0) lines.push(`PersistentKeepalive = ${c.persistentKeepalive}`);
  return lines.join('\n') + '\n';
}
