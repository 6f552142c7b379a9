#!/usr/bin/env node
// The promotion hook's source (failover benchmark): every active peer's public key and the endpoint
// the connection monitor last saw it at, from the gateway database (the shared state of a real
// active/standby pair), one "PUBLIC_KEY ENDPOINT" line each. Read-only.
import Database from 'better-sqlite3';

const db = new Database(process.argv[2], { readonly: true, fileMustExist: true });
const rows = db.prepare(`SELECT l.public_key AS k, l.endpoint AS e FROM peer_link l JOIN peers p ON p.id = l.peer_id
  WHERE p.status = 'active' AND l.endpoint IS NOT NULL AND l.public_key = p.public_key`).all();
for (const r of rows) process.stdout.write(`${r.k} ${r.e}\n`);
db.close();
