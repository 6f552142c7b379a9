import type { IncomingHttpHeaders, Server } from 'node:http';

export interface SimulatorOptions {
  /** Tokens per second; 0 = as fast as the event loop allows. Default 50. */
  tokenRate?: number;
  /** Tokens per answer unless the request sets options.num_predict (native) or max_tokens (OpenAI). Default 20. */
  tokens?: number;
  /** Installed models. Default ['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']. */
  models?: string[];
  /** Append a JSON line per request on arrival ({"event":"request"}) and at its end ({"event":"end"}). */
  record?: string;
  /** What GET /api/version answers. Default '0.12.6'. */
  version?: string;
  /** The generated text: this string, four characters a token, repeated to the token count. Default: a sentence about the sky. */
  answer?: string;
}

/** One request as the simulator saw it; updated in place when it ends. */
export interface RecordedRequest {
  id: number;
  /** ISO time the request's body had fully arrived. */
  at: string;
  method: string;
  /** The raw request URL, query included. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The body parsed as JSON, or null (empty, not JSON). */
  body: unknown;
  bodyBytes: number;
  remoteAddress: string | null;
  /** The connection closed before the answer was complete. */
  aborted: boolean;
  ended: boolean;
  /** The HTTP status sent; null until the request ends, and when it ended before anything was sent. */
  status: number | null;
  /** Tokens generated so far (written, when streaming). */
  tokens: number;
}

export interface Simulator {
  /** Not listening: call server.listen(). */
  server: Server;
  requests: RecordedRequest[];
  /** Empties `requests` in place. */
  clear(): void;
}

export function createSimulator(options?: SimulatorOptions): Simulator;
