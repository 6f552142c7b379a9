import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { LOG_EVENTS } from '../../src/core/log-events.js';
import { createLogger } from '../../src/system/logger.js';
import { parseLogLines } from '../support/log-line.js';
import { parseYaml, type Yaml } from '../support/readme-yaml.js';

/**
 * The README's "Logs" section is what operators copy: its Promtail and
 * Vector examples must be well formed, select wg-ollama's units and name
 * only fields the code writes; its event table must be the code's events at
 * the levels the code logs them.
 */

const ROOT = resolve(import.meta.dirname, '../..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const SECTION = (() => {
  const start = README.indexOf('\n## Logs\n');
  expect(start, 'README has a "## Logs" section').toBeGreaterThan(0);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
})();

function blocks(lang: string): string[] {
  return [...SECTION.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

const UNITS = readdirSync(join(ROOT, 'systemd')).filter((f) => f.endsWith('.service'));
const DAEMON_UNITS = ['wg-ollama.service', 'wg-ollama-guard.service'];

/** The fields a real line of the shared logger has (time, level, pid, event, msg). */
const EMITTED = (() => {
  let text = '';
  const destination = new Writable({ write(c, _e, done) { text += String(c); done(); } });
  createLogger({ destination }).info({ event: 'serve.start' }, 'serving');
  return Object.keys(parseLogLines(text)[0]!);
})();

const obj = (v: Yaml | undefined, what: string): { [k: string]: Yaml } => {
  expect(v !== null && typeof v === 'object' && !Array.isArray(v), `${what} is a mapping`).toBe(true);
  return v as { [k: string]: Yaml };
};
const list = (v: Yaml | undefined, what: string): Yaml[] => {
  expect(Array.isArray(v), `${what} is a list`).toBe(true);
  return v as Yaml[];
};

describe('the README\'s Promtail example', () => {
  const [yaml, ...more] = blocks('yaml');
  test('there is one, and it is well formed', () => {
    expect(more).toEqual([]);
    expect(() => parseYaml(yaml!)).not.toThrow();
  });

  test('it keeps exactly the journal entries of serve and guard', () => {
    const doc = obj(parseYaml(yaml!), 'the document');
    const scrape = obj(list(doc.scrape_configs, 'scrape_configs')[0], 'the scrape config');
    obj(scrape.journal, 'journal');
    const keep = list(scrape.relabel_configs, 'relabel_configs').map((r) => obj(r, 'a relabel config')).find((r) => r.action === 'keep')!;
    expect(keep.source_labels).toEqual(['__journal__systemd_unit']);
    // Prometheus relabel regexes are anchored at both ends.
    const re = new RegExp(`^(?:${keep.regex as string})$`);
    expect(UNITS.filter((u) => re.test(u)).sort()).toEqual([...DAEMON_UNITS].sort());
    expect(re.test('ssh.service')).toBe(false);
  });

  test('its pipeline reads fields the code writes: json, labels, timestamp', () => {
    const doc = obj(parseYaml(yaml!), 'the document');
    const stages = list(obj(list(doc.scrape_configs, 'scrape_configs')[0], 'scrape').pipeline_stages, 'pipeline_stages').map((s) => obj(s, 'a stage'));
    const expressions = obj(obj(stages.find((s) => 'json' in s)!.json, 'json').expressions, 'expressions');
    for (const [name, path] of Object.entries(expressions)) {
      expect(EMITTED, `json expression ${name}`).toContain(path);
    }
    const labels = Object.keys(obj(stages.find((s) => 'labels' in s)!.labels, 'labels'));
    expect(labels.length).toBeGreaterThan(0);
    for (const l of labels) expect(Object.keys(expressions)).toContain(l);
    const ts = obj(stages.find((s) => 'timestamp' in s)!.timestamp, 'timestamp');
    expect(Object.keys(expressions)).toContain(ts.source);
    expect(ts.format).toBe('RFC3339Nano');
  });
});

describe('the README\'s Vector example', () => {
  const [json, ...more] = blocks('json');
  test('there is one, and it is JSON', () => {
    expect(more).toEqual([]);
    expect(() => JSON.parse(json!)).not.toThrow();
  });

  type Component = { type: string; inputs?: string[]; [k: string]: unknown };
  const config = (): { sources: Record<string, Component>; transforms: Record<string, Component>; sinks: Record<string, Component> } => JSON.parse(json!);

  test('journald reads the units of serve and guard; the remap parses the JSON message', () => {
    const c = config();
    const journald = Object.values(c.sources).find((s) => s.type === 'journald')!;
    expect(journald.include_units).toEqual(DAEMON_UNITS);
    for (const u of journald.include_units as string[]) expect(UNITS).toContain(u);
    const remap = Object.values(c.transforms).find((t) => t.type === 'remap')!;
    expect(remap.inputs).toEqual(Object.keys(c.sources).filter((k) => c.sources[k]!.type === 'journald'));
    expect(remap.source).toMatch(/parse_json\(\.message\)/);
  });

  test('exec runs logs requests --follow --json, decoded as JSON, respawned', () => {
    const exec = Object.values(config().sources).find((s) => s.type === 'exec')!;
    const command = exec.command as string[];
    expect(command.slice(0, 5)).toEqual(['wg-ollama', 'logs', 'requests', '--follow', '--json']);
    expect(exec.mode).toBe('streaming');
    expect(exec.decoding).toEqual({ codec: 'json' });
    expect(exec.streaming).toEqual({ respawn_on_exit: true });
  });

  test('every input names a component that exists', () => {
    const c = config();
    const ids = new Set([...Object.keys(c.sources), ...Object.keys(c.transforms)]);
    for (const comp of [...Object.values(c.transforms), ...Object.values(c.sinks)]) {
      expect(comp.inputs!.length).toBeGreaterThan(0);
      for (const input of comp.inputs!) expect(ids).toContain(input);
    }
  });
});

describe('the README\'s event table', () => {
  const rows = [...SECTION.matchAll(/^\| `([a-z.-]+)` \| (debug|info|warn|error|fatal) \| /gm)].map((m) => [m[1]!, m[2]!] as const);

  test('lists exactly the events of src/core/log-events.ts', () => {
    expect(rows.map(([e]) => e).sort()).toEqual(Object.keys(LOG_EVENTS).sort());
  });

  test('at the level each is logged with in src/', () => {
    const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
      .flatMap((d) => (d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : []));
    const code = files(join(ROOT, 'src')).map((f) => readFileSync(f, 'utf8')).join('\n');
    const logged = new Map<string, Set<string>>();
    for (const m of code.matchAll(/\.(debug|info|warn|error|fatal)\(\{[^{}]*?\bevent: '([a-z.-]+)'/g)) {
      logged.set(m[2]!, (logged.get(m[2]!) ?? new Set()).add(m[1]!));
    }
    // serve.failed and guard.failed: one log.fatal in src/cli/main.ts names both.
    for (const e of ['serve.failed', 'guard.failed']) {
      expect(code).toContain(`'${e}'`);
      logged.set(e, new Set(['fatal']));
    }
    const documented = Object.fromEntries(rows);
    for (const [event, levels] of logged) {
      expect([...levels], `${event} is logged at the documented level`).toEqual([documented[event]]);
    }
    expect([...logged.keys()].sort(), 'every event in the table is logged somewhere').toEqual(Object.keys(LOG_EVENTS).sort());
  });
});
