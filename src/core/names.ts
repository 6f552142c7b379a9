import { badInput } from '../errors.js';

/** Names that would be confusing in logs, URLs or file names. */
const RESERVED = new Set([
  'all', 'any', 'none', 'null', 'self', 'me', 'root', 'admin', 'administrator', 'system',
  'gateway', 'guard', 'server', 'ca', 'localhost', 'wg-ollama', 'wgo', 'ollama', 'default', 'new',
]);

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,31}$/;

/**
 * Validates a peer name: 1–32 characters of [a-z0-9._-], starting with a letter
 * or digit (so it is never `.`, `..` or an option-like `-x`), not reserved.
 * Returns the name unchanged; throws BAD_INPUT with a message naming the rule broken.
 */
export function validatePeerName(input: unknown, what = 'peer name'): string {
  if (typeof input !== 'string' || input.length === 0) throw badInput(`${what} is required`);
  if (input.length > 32) throw badInput(`${what} is ${input.length} characters long; the limit is 32`);
  if (/[A-Z]/.test(input)) throw badInput(`${what} must be lowercase ([a-z0-9._-])`);
  if (!NAME_RE.test(input)) {
    throw badInput(`${what} may contain only a-z, 0-9, ".", "_" and "-", and must start with a letter or digit`);
  }
  if (RESERVED.has(input)) throw badInput(`${what} "${input}" is reserved`);
  return input;
}
