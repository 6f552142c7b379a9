// A SQLite database as reviewable SQL text, and the check that the text is faithful.
//
// dumpDatabase(path) → SQL: PRAGMA user_version, every table as written in sqlite_schema
// (after its ALTERs), its rows in rowid order (integers read as BigInt, so none is rounded;
// reals in the shortest form that reads back to the same double; blobs as X'..'), then the
// indexes and triggers — triggers last, so loading the rows fires none of them (a trigger that
// numbers peers.change_seq would renumber it). Loading is `db.exec(sql)` on an empty database.
// Not kept: the rowids of tables without an INTEGER PRIMARY KEY (their rows keep their order),
// page layout and free pages.
//
// sameDatabase(a, b) compares user_version, sqlite_schema and every row of every table.
import Database from 'better-sqlite3';

const ident = (name) => `"${name.replaceAll('"', '""')}"`;

function literal(v) {
  if (v === null) return 'NULL';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (Number.isNaN(v)) throw new Error('NaN cannot be dumped');
    if (!Number.isFinite(v)) return v > 0 ? '9e999' : '-9e999';
    // A REAL that is whole must stay REAL: 5 → 5.0.
    const t = String(v);
    return /[.eE]/.test(t) ? t : `${t}.0`;
  }
  if (Buffer.isBuffer(v)) return `X'${v.toString('hex')}'`;
  if (typeof v === 'string') {
    if (v.includes('\0')) throw new Error('text with NUL cannot be dumped as a literal');
    return `'${v.replaceAll("'", "''")}'`;
  }
  throw new Error(`cannot dump a ${typeof v}`);
}

/** Tables (user ones; not sqlite_* internals) and the rest of the schema, in creation order. */
function schemaOf(db) {
  const all = db.prepare(`SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid`).all();
  return { tables: all.filter((r) => r.type === 'table'), rest: all.filter((r) => r.type !== 'table') };
}

function rowsOf(db, table) {
  const cols = db.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(table);
  const withoutRowid = /\bWITHOUT\s+ROWID\b/i.test(db.prepare(`SELECT sql FROM sqlite_schema WHERE name = ?`).pluck().get(table));
  const order = withoutRowid ? '' : ' ORDER BY rowid';
  const stmt = db.prepare(`SELECT ${cols.map(ident).join(', ')} FROM ${ident(table)}${order}`).raw().safeIntegers();
  return { cols, rows: stmt.all() };
}

/** The whole database as SQL text (see the top of this file). */
export function dumpDatabase(path, header = []) {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const out = [...header.map((l) => `-- ${l}`), `PRAGMA user_version = ${db.pragma('user_version', { simple: true })};`, 'BEGIN;'];
    const { tables, rest } = schemaOf(db);
    for (const t of tables) {
      out.push('', `${t.sql};`);
      const { cols, rows } = rowsOf(db, t.name);
      const into = `INSERT INTO ${ident(t.name)} (${cols.map(ident).join(', ')}) VALUES`;
      for (const r of rows) out.push(`${into} (${r.map(literal).join(', ')});`);
    }
    out.push('');
    for (const r of rest) out.push(`${r.sql};`);
    out.push('COMMIT;', '');
    return out.join('\n');
  } finally {
    db.close();
  }
}

/** Differences between two databases (user_version, schema, rows); [] when they hold the same. */
export function compareDatabases(a, b) {
  const diffs = [];
  const read = (db) => {
    const { tables, rest } = schemaOf(db);
    const rows = Object.fromEntries(tables.map((t) => [t.name, JSON.stringify(rowsOf(db, t.name), (_, v) => (typeof v === 'bigint' ? `${v}n` : Buffer.isBuffer(v) ? v.toString('hex') : v))]));
    const schema = [...tables, ...rest].map((r) => `${r.type} ${r.name} ${r.sql}`).sort();
    return { version: db.pragma('user_version', { simple: true }), schema, rows };
  };
  const [x, y] = [a, b].map(read);
  if (x.version !== y.version) diffs.push(`user_version ${x.version} ≠ ${y.version}`);
  if (JSON.stringify(x.schema) !== JSON.stringify(y.schema)) diffs.push('schema differs');
  for (const t of new Set([...Object.keys(x.rows), ...Object.keys(y.rows)])) if (x.rows[t] !== y.rows[t]) diffs.push(`rows of ${t} differ`);
  return diffs;
}

/** Loads the SQL into a new in-memory database and checks it holds what the file at path holds. */
export function verifyDump(path, sql) {
  const original = new Database(path, { readonly: true, fileMustExist: true });
  const loaded = new Database(':memory:');
  try {
    loaded.exec(sql);
    const diffs = compareDatabases(original, loaded);
    if (diffs.length) throw new Error(`the dump of ${path} is not faithful: ${diffs.join('; ')}`);
  } finally {
    original.close();
    loaded.close();
  }
}
