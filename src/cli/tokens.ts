import type { Config } from '../config.js';
import { openGateway } from '../gateway/context.js';
import type { Actor } from '../gateway/peer-service.js';
import { tokenService } from '../gateway/token-service.js';
import { emit, type Io } from './output.js';

/**
 * `wg-ollama issue-token NAME [--json]`: a new peer-bound API token, printed
 * once on stdout (alone on its line, so `$(...)` or a pipe takes it); the
 * database keeps only its SHA-256. Replaces the peer's previous token.
 */
export function issueToken(config: Config, name: string, o: { json?: boolean }, io: Io, who: Actor): void {
  const ctx = openGateway(config);
  try {
    // Written before the transaction commits, and synchronously: a write that fails keeps the old token.
    const write = io.outSync ?? io.out;
    const t = tokenService({ db: ctx.db, config }).issue(name, who, (d) =>
      emit({ ...io, out: write }, o.json, { name: d.name, token: d.token, createdAt: d.createdAt, replaced: d.replaced }, (x) => `${x.token}\n`));
    if (!o.json) {
      io.err(`API token for ${t.name}${t.replaced ? ' (the previous one is dead)' : ''}: shown once, store it now. ` +
        `It works only as "Authorization: Bearer" over TLS from ${ctx.peers.show(t.name).address}, without a client certificate.\n`);
    }
  } finally {
    ctx.close();
  }
}

/** `wg-ollama revoke-token NAME [--json]`: the peer's API token stops working within a second; its certificate stays. */
export function revokeToken(config: Config, name: string, o: { json?: boolean }, io: Io, who: Actor): void {
  const ctx = openGateway(config);
  try {
    const r = tokenService({ db: ctx.db, config }).revoke(name, who);
    emit(io, o.json, r, (d) => `${d.name}: ${d.changed ? 'API token revoked' : 'had no API token'}\n`);
  } finally {
    ctx.close();
  }
}
