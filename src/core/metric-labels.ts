/**
 * Metric labels from client-chosen strings. A model name is the client's
 * choice: every distinct value is a new time series, so only names of the
 * shape Ollama gives its models, and only for requests Ollama served, become
 * labels — at most `max` of them per process; the rest count as "other".
 */

/** [host/][namespace/]model[:tag] in Ollama's normalised (lower-case) form, without `..` or a scheme. */
const MODEL_LABEL = /^(?!.*\.\.)(?!.*:\/\/)[a-z0-9_][a-z0-9_.-]{0,79}(?:\/[a-z0-9_][a-z0-9_.-]{0,79}){0,2}(?::[a-z0-9_][a-z0-9_.-]{0,127})?$/;

export const OTHER_MODEL = 'other';

/** A labeller remembering the names it gave out; `served` = Ollama answered 2xx/3xx. */
export function modelLabeller(max = 64): (model: string | null, served: boolean) => string {
  const seen = new Set<string>();
  return (model, served) => {
    if (model === null || model === '') return '';
    if (!served || !MODEL_LABEL.test(model)) return OTHER_MODEL;
    if (seen.has(model)) return model;
    if (seen.size >= max) return OTHER_MODEL;
    seen.add(model);
    return model;
  };
}
