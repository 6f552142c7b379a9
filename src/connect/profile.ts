import { readFileSync, statSync } from 'node:fs';
import { parseConnectProfile, type ParsedProfile } from '../core/connect-profile.js';
import { WgoError } from '../errors.js';

/**
 * Reads and validates a connect profile. The file holds a private key: on
 * POSIX systems a profile that others can read is refused, as ssh refuses
 * such a key (Windows has no such mode bits and is not checked).
 */
export function loadConnectProfile(file: string, platform: NodeJS.Platform = process.platform): ParsedProfile {
  let text: string;
  try {
    if (platform !== 'win32' && (statSync(file).mode & 0o077) !== 0) {
      throw new WgoError('BAD_INPUT', `${file} can be read by other users of this computer and holds your private key: run "chmod 600 ${file}" first`);
    }
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof WgoError) throw e;
    throw new WgoError('NOT_FOUND', `cannot read the connect profile ${file}: ${(e as Error).message}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new WgoError('BAD_INPUT', `${file} is not a wg-ollama connect profile (not JSON); it is the NAME.connect.json file your admin gave you`);
  }
  try {
    return parseConnectProfile(raw);
  } catch (e) {
    throw new WgoError('BAD_INPUT', `${file}: ${(e as Error).message}`, { cause: e });
  }
}
