import { WgoError, type ErrorKind } from '../errors.js';

/** The admin UI's answer to each kind of error: the HTTP status of the page that reports it. */
const HTTP_STATUS: Record<ErrorKind, 400 | 403 | 404 | 409 | 500 | 503> = {
  'bad-input': 400,
  'not-found': 404,
  conflict: 409,
  forbidden: 403,
  unavailable: 503,
  internal: 500,
};

export function httpStatusOf(kind: ErrorKind): 400 | 403 | 404 | 409 | 500 | 503 {
  return HTTP_STATUS[kind];
}

/**
 * The status of a page that answers a refusal inline (the form again, with
 * the message): for bad input and for a clash with the current state; any
 * other error (undefined here) goes on to the app's error page.
 */
export function inlineStatus(e: unknown): 400 | 409 | undefined {
  if (!(e instanceof WgoError)) return undefined;
  return e.kind === 'bad-input' ? 400 : e.kind === 'conflict' ? 409 : undefined;
}
