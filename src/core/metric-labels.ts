/**
 * Metric labels from client-chosen strings. A model name is the client's
 * choice: every distinct value is a new time series, so only names of the
 * shape Ollama gives its models, and only for requests Ollama served, become
 * labels — at most `max` of them per process; the rest count as "other".
 */

import { parseModelName } from './model-name.js';

/** A name Ollama's grammar reads (core/model-name.ts), written in its display form: what records carry. */
function isModelLabel(model: string): boolean {
  const n = parseModelName(model);
  return n.ok && n.display === model;
}

export const OTHER_MODEL = 'other';

/** A labeller remembering the names it gave out; `served` = Ollama answered 2xx/3xx. */
export function modelLabeller(max = 64): (model: string | null, served: boolean) => string {
  const seen = new Set<string>();
  return (model, served) => {
    if (model === null || model === '') return '';
    if (!served || !isModelLabel(model)) return OTHER_MODEL;
    if (seen.has(model)) return model;
    if (seen.size >= max) return OTHER_MODEL;
    seen.add(model);
    return model;
  };
}
