import QRCode from 'qrcode';
import { accountService, type NewAdmin } from '../admin/accounts.js';
import { createSecretBox, loadAdminKey } from '../admin/secret-box.js';
import type { Config } from '../config.js';
import { badInput } from '../errors.js';
import { openDatabase } from '../db/open.js';
import type { Actor } from '../gateway/peer-service.js';
import { emit, table, type Io } from './output.js';

/** The password for `admin add`: stdin with --password-stdin (one line, or the whole input without its final newline). */
export type PasswordSource = () => Promise<string>;

function open(config: Config, createKey: boolean) {
  const db = openDatabase(config.paths.db);
  let box: ReturnType<typeof createSecretBox> | null = null;
  const accounts = accountService({ db, box: () => (box ??= createSecretBox(loadAdminKey(config.paths.adminKey, createKey))) });
  return { db, accounts };
}

async function enrolmentText(a: NewAdmin, what: string): Promise<string> {
  const qr = await QRCode.toString(a.totpUri, { type: 'utf8', errorCorrectionLevel: 'M' });
  return [
    `${what} ${a.name} (${a.role}).`,
    'Scan this with an authenticator app (it is shown only now):',
    qr,
    a.totpUri,
    '',
  ].join('\n');
}

/** `admin add NAME [--role admin|viewer] [--password-stdin] [--json]` */
export async function adminAdd(config: Config, name: string, o: { role?: string; passwordStdin?: boolean; json?: boolean }, io: Io, who: Actor, readPassword: PasswordSource): Promise<void> {
  if (!o.passwordStdin) throw badInput('give the password on standard input with --password-stdin (it never goes on the command line)');
  const password = oneLine(await readPassword());
  const { db, accounts } = open(config, true);
  try {
    const a = await accounts.add({ name, role: o.role ?? 'admin', password }, who);
    if (o.json) emit(io, true, { name: a.name, role: a.role, createdAt: a.createdAt, totpUri: a.totpUri }, () => '');
    else io.out(await enrolmentText(a, 'Added admin'));
  } finally {
    db.close();
  }
}

export async function adminResetTotp(config: Config, name: string, o: { json?: boolean }, io: Io, who: Actor): Promise<void> {
  const { db, accounts } = open(config, false);
  try {
    const a = accounts.resetTotp(name, who);
    if (o.json) emit(io, true, { name: a.name, role: a.role, totpUri: a.totpUri }, () => '');
    else io.out(await enrolmentText(a, 'New TOTP secret for'));
  } finally {
    db.close();
  }
}

export function adminRemove(config: Config, name: string, o: { json?: boolean }, io: Io, who: Actor): void {
  const { db, accounts } = open(config, false);
  try {
    const a = accounts.remove(name, who);
    emit(io, o.json, { removed: a.name }, (d) => `Removed admin ${d.removed}; their sessions ended.\n`);
  } finally {
    db.close();
  }
}

export function adminList(config: Config, o: { json?: boolean }, io: Io): void {
  const { db, accounts } = open(config, false);
  try {
    const list = accounts.list();
    emit(io, o.json, list, (l) => (l.length === 0 ? 'No admins yet: wg-ollama admin add NAME --password-stdin\n' : table([['NAME', 'ROLE', 'CREATED'], ...l.map((a) => [a.name, a.role, a.createdAt])])));
  } finally {
    db.close();
  }
}

/** The password is the input without its final newline (echo adds one); more lines are an error. */
function oneLine(text: string): string {
  const line = text.replace(/\r?\n$/, '');
  if (/[\r\n]/.test(line)) throw badInput('the password on standard input must be one line');
  return line;
}

/** Reads all of stdin (at most 16 KiB). */
export function stdinPassword(stream: NodeJS.ReadableStream = process.stdin): PasswordSource {
  return () =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 16 * 1024) {
          reject(badInput('the password on standard input is over 16 KiB'));
          return;
        }
        chunks.push(c);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
}
