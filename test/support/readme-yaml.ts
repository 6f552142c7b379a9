/**
 * A strict reader for the small YAML the README's examples use (there is no
 * YAML library among the dependencies): block mappings and sequences by
 * indentation, `- key: value` items, flow sequences `[a, b]` of plain words,
 * plain and quoted scalars, comments. Anything else (tabs, anchors, multi-line
 * strings, an indentation that fits nothing, a key given twice) is an error
 * naming the line, so a block that reads here has one meaning.
 */
export type Yaml = string | null | Yaml[] | { [key: string]: Yaml };

interface Line {
  n: number;
  indent: number;
  text: string;
}

export function parseYaml(source: string): Yaml {
  const lines: Line[] = [];
  source.split('\n').forEach((raw, i) => {
    if (/\t/.test(raw)) throw new Error(`line ${i + 1}: a tab`);
    const text = raw.replace(/(^|\s)#.*$/, '').trimEnd();
    if (text.trim() === '') return;
    if (/[&*!|>]/.test(text.trim()[0]!)) throw new Error(`line ${i + 1}: unsupported YAML: ${raw}`);
    lines.push({ n: i + 1, indent: text.length - text.trimStart().length, text: text.trimStart() });
  });
  let i = 0;
  const fail = (l: Line, why: string): never => {
    throw new Error(`line ${l.n}: ${why}: ${l.text}`);
  };

  function scalar(l: Line, s: string): Yaml {
    if (s.startsWith('[')) {
      if (!s.endsWith(']')) fail(l, 'an unclosed flow sequence');
      const inner = s.slice(1, -1).trim();
      return inner === '' ? [] : inner.split(',').map((x) => scalar(l, x.trim()));
    }
    if (/^".*"$/.test(s)) return JSON.parse(s) as string;
    if (/^'.*'$/.test(s)) return s.slice(1, -1).replace(/''/g, "'");
    if (/^["'{]/.test(s) || /: |[,\]}]$/.test(s)) fail(l, 'not a plain scalar');
    return s;
  }

  /** key: value on a line (value '' when the block follows). */
  function pair(l: Line, s: string): [string, string] {
    const m = /^([A-Za-z_][\w.-]*):(?:\s+(.*))?$/.exec(s);
    if (!m) fail(l, 'expected "key: value"');
    return [m![1]!, m![2] ?? ''];
  }

  function block(indent: number): Yaml {
    const first = lines[i]!;
    return first.text.startsWith('- ') || first.text === '-' ? sequence(indent) : mapping(indent, {});
  }

  function valueAfter(l: Line, rest: string, parentIndent: number): Yaml {
    if (rest !== '') return scalar(l, rest);
    const next = lines[i];
    if (!next || next.indent <= parentIndent) return null;
    return block(next.indent);
  }

  function mapping(indent: number, into: { [key: string]: Yaml }): Yaml {
    while (i < lines.length && lines[i]!.indent === indent && !lines[i]!.text.startsWith('- ')) {
      const l = lines[i++]!;
      const [key, rest] = pair(l, l.text);
      if (key in into) fail(l, `"${key}" given twice`);
      into[key] = valueAfter(l, rest, indent);
    }
    if (i < lines.length && lines[i]!.indent > indent) fail(lines[i]!, 'an indentation that fits nothing');
    return into;
  }

  function sequence(indent: number): Yaml[] {
    const out: Yaml[] = [];
    while (i < lines.length && lines[i]!.indent === indent && lines[i]!.text.startsWith('- ')) {
      const l = lines[i++]!;
      const item = l.text.slice(2).trim();
      if (/^[A-Za-z_][\w.-]*:(\s|$)/.test(item)) {
        // "- key: value" opens a mapping whose further keys line up with "key".
        const itemIndent = indent + 2;
        const [key, rest] = pair(l, item);
        const m: { [key: string]: Yaml } = { [key]: valueAfter(l, rest, itemIndent) };
        out.push(i < lines.length && lines[i]!.indent === itemIndent ? mapping(itemIndent, m) : m);
      } else {
        out.push(scalar(l, item));
      }
    }
    if (i < lines.length && lines[i]!.indent > indent) fail(lines[i]!, 'an indentation that fits nothing');
    return out;
  }

  if (lines.length === 0) return null;
  if (lines[0]!.indent !== 0) fail(lines[0]!, 'the first line is indented');
  const doc = block(0);
  if (i < lines.length) fail(lines[i]!, 'an indentation that fits nothing');
  return doc;
}
