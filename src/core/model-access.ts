/**
 * Which models a request names and whether the peer may use them: every name
 * the endpoint reads is checked with Ollama's grammar first (400 bad_model,
 * allowlist or not), then names the request reads against `models` and names
 * it writes against `writeModels` (403), then digests that could name any
 * model's layers (403). Pure; decideBody calls it on the parsed body.
 */
import type { EndpointDef } from './ollama-api.js';
import { matchesPatterns, parseModelName, type ParsedName } from './model-name.js';
import type { Refusal, RequestPolicy } from './policy.js';

type Failure = { ok: false; refusal: Refusal };
const refuse = (status: 400 | 403 | 404, reason: string, error: string): Failure => ({ ok: false, refusal: { status, reason, error } });

/** Whether `policy.models` lets the peer read `name` (null = every model). */
export function mayRead(policy: Pick<RequestPolicy, 'models'>, name: ParsedName): boolean {
  return policy.models === null || matchesPatterns(policy.models, name);
}

/** Whether `policy.writeModels` lets the peer create, overwrite, delete, pull or push `name` (null = any; [] = none). */
export function mayWrite(policy: Pick<RequestPolicy, 'writeModels'>, name: ParsedName): boolean {
  // A peer set spooled by a guard release that predates writeModels has none: no writes.
  return policy.writeModels === null || matchesPatterns(policy.writeModels ?? [], name);
}

/** The model of /v1/models/:model: a bad name is 400, one outside the allowlist 404 as if it did not exist. */
export function checkPathModel(policy: RequestPolicy, model: string): { ok: true; model: string } | Failure {
  const n = parseModelName(model);
  if (!n.ok) return refuse(400, 'bad_model', `invalid ${n.error}`);
  if (!mayRead(policy, n)) return refuse(404, 'model_denied', `model "${model}" not found`);
  return { ok: true, model: n.display };
}

interface Found {
  field: string;
  written: string;
  name: ParsedName;
  read: boolean;
  write: boolean;
}

/**
 * The models of a JSON body. Groups, in order: modelFields (read, required),
 * writeModelFields (write, required), optionalModelFields (read); in each, the
 * first field holding a non-empty string wins, as Ollama's cmp.Or(req.Model, req.Name).
 * `model` is the first name found, in its display form (null when the endpoint names none).
 */
export function checkBodyModels(endpoint: EndpointDef, req: Record<string, unknown>, policy: RequestPolicy): { ok: true; model: string | null } | Failure {
  const groups: [group: readonly string[], required: boolean, access: 'read' | 'write'][] = [
    ...endpoint.modelFields.map((g) => [g, true, 'read'] as [readonly string[], boolean, 'read']),
    ...(endpoint.writeModelFields ?? []).map((g) => [g, true, 'write'] as [readonly string[], boolean, 'write']),
    ...(endpoint.optionalModelFields ?? []).map((g) => [g, false, 'read'] as [readonly string[], boolean, 'read']),
  ];
  // 1. Every name present and well-formed, before any allowlist.
  const found: Found[] = [];
  for (const [group, required, access] of groups) {
    let hit: { field: string; value: string } | null = null;
    for (const f of group) {
      const v = req[f];
      if (v === undefined || v === null || v === '') continue;
      if (typeof v !== 'string') return refuse(400, 'bad_model', `${f} must be a string`);
      hit = { field: f, value: v };
      break;
    }
    if (hit === null) {
      if (required) return refuse(400, 'model_missing', `${group[0] ?? 'model'} is required`);
      continue;
    }
    const n = parseModelName(hit.value);
    if (!n.ok) return refuse(400, 'bad_model', `invalid ${n.error}`);
    const same = found.find((x) => x.field === hit.field);
    if (same) same[access] = true;
    else found.push({ field: hit.field, written: hit.value, name: n, read: access === 'read', write: access === 'write' });
  }
  // 2. Reads against models, writes against writeModels.
  for (const f of found) {
    if (f.read && !mayRead(policy, f.name)) return refuse(403, 'model_denied', `model "${f.written}" is not allowed for this peer`);
    if (f.write && !mayWrite(policy, f.name)) {
      return refuse(403, 'write_denied', `model "${f.written}" may not be created, overwritten, deleted, pulled or pushed by this peer (policy field writeModels)`);
    }
  }
  // 3. A digest can name any installed model's layers: only for a peer that may read every model.
  if (policy.models !== null) {
    const used = (endpoint.digestFields ?? []).filter((f) => {
      const v = req[f];
      return v !== undefined && v !== null && !(typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0);
    });
    if (used.length > 0) {
      return refuse(403, 'digest_denied', `${used.map((f) => `"${f}"`).join(', ')} name blobs by digest, and a digest can name the layers of any installed model: not allowed while this peer has a models allowlist (use "from" with an allowed model)`);
    }
  }
  return { ok: true, model: found[0]?.name.display ?? null };
}
