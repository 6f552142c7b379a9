import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The connector's file name wherever it is handed out (add-peer --out, the admin UI). */
export const CONNECTOR_FILE = 'wg-ollama-connect.mjs';

/**
 * The bundled connector that `npm run build` makes (scripts/build-connect.mjs),
 * or null when it was not built. src/connect and dist/connect are both two
 * levels below the root of the checkout or of the installed app.
 */
export function connectorBundle(): string | null {
  const file = fileURLToPath(new URL(`../../dist/connect/${CONNECTOR_FILE}`, import.meta.url));
  return existsSync(file) ? file : null;
}
