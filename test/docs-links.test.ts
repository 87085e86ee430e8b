/**
 * The docs hold together: every relative link in README.md and docs/*.md points at a file that
 * exists, every `#anchor` at a heading of the target file (GitHub's slugs), and the README stays
 * the front door (at most 12 KB). The checker is tested on small inline examples first.
 */
import t from 'tap';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './helpers/agent.js';

const README_MAX_BYTES = 12 * 1024;

interface Link {
  line: number;
  text: string;
  target: string;
}

/**
 * Calls `fn` with each line outside fenced code blocks (``` or ~~~, indented at most 3 spaces;
 * a fence closes with the same character, at least as long). Line numbers are 1-based.
 */
function eachProseLine(md: string, fn: (line: string, n: number) => void): void {
  let fence: { ch: string; len: number } | null = null;
  md.split(/\r?\n/).forEach((line, i) => {
    const m = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
    if (m) {
      const run = m[1]!;
      if (!fence) {
        // An opening backtick fence's info string may not contain a backtick.
        if (!(run[0] === '`' && m[2]!.includes('`'))) {
          fence = { ch: run[0]!, len: run.length };
          return;
        }
      } else if (run[0] === fence.ch && run.length >= fence.len && m[2]!.trim() === '') {
        fence = null;
        return;
      }
    }
    if (!fence) fn(line, i + 1);
  });
}

/** Removes inline code spans (`...`, ``...``): a link inside one is text, not a link. */
function stripCodeSpans(line: string): string {
  return line.replace(/(`+)[\s\S]*?\1/g, (s) => ' '.repeat(s.length));
}

/** Every markdown link `[text](target)` (and image, and `[ref]: target` definition) outside code. */
function extractLinks(md: string): Link[] {
  const links: Link[] = [];
  eachProseLine(md, (raw, line) => {
    const s = stripCodeSpans(raw);
    const inline = /!?\[((?:[^[\]]|\[[^\]]*\])*)\]\(\s*(<[^>]*>|[^\s()]+)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/g;
    for (const m of s.matchAll(inline)) links.push({ line, text: m[1]!, target: m[2]!.replace(/^<|>$/g, '') });
    const def = /^ {0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)/.exec(s);
    if (def) links.push({ line, text: def[1]!, target: def[2]!.replace(/^<|>$/g, '') });
  });
  return links;
}

/** A relative link: not a URL with a scheme (http:, https:, mailto:, ...), not protocol-relative. */
function isRelative(target: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('//');
}

/** GitHub's heading anchor: lowercase, punctuation dropped (not - or _), each space a hyphen. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link in a heading counts by its text
    .replace(/<[^>]+>/g, '') // inline HTML tags
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** The anchors a markdown file's ATX headings get, duplicates numbered -1, -2, ... as GitHub does. */
function anchors(md: string): Set<string> {
  const seen = new Set<string>();
  eachProseLine(md, (line) => {
    const m = /^ {0,3}#{1,6}(?:\s+(.*?))?(?:\s+#+)?\s*$/.exec(line);
    if (!m) return;
    const base = slug(m[1] ?? '');
    let s = base;
    for (let n = 1; seen.has(s); n++) s = `${base}-${n}`;
    seen.add(s);
  });
  return seen;
}

/** Problems with one file's relative links, as "file:line: ..." strings. */
function checkFile(file: string): string[] {
  const problems: string[] = [];
  const md = readFileSync(file, 'utf8');
  const where = (l: Link) => `${relative(ROOT, file)}:${l.line}: [${l.text}](${l.target})`;
  for (const l of extractLinks(md)) {
    if (!isRelative(l.target)) continue;
    const hash = l.target.indexOf('#');
    const path = decodeURIComponent(hash < 0 ? l.target : l.target.slice(0, hash));
    const anchor = hash < 0 ? null : decodeURIComponent(l.target.slice(hash + 1));
    const dest = path === '' ? file : resolve(dirname(file), path);
    if (!existsSync(dest)) {
      problems.push(`${where(l)}: ${relative(ROOT, dest)} does not exist`);
      continue;
    }
    if (anchor === null || !dest.endsWith('.md') || statSync(dest).isDirectory()) continue;
    if (!anchors(readFileSync(dest, 'utf8')).has(anchor.toLowerCase())) {
      problems.push(`${where(l)}: ${relative(ROOT, dest)} has no heading with anchor #${anchor}`);
    }
  }
  return problems;
}

t.test('slug: GitHub heading anchors', async (t) => {
  t.equal(slug('Quick start'), 'quick-start');
  t.equal(slug('Durability and the power-loss trade-off'), 'durability-and-the-power-loss-trade-off');
  t.equal(slug('Uplinks: MQTT, OTLP, IEEE 2030.5'), 'uplinks-mqtt-otlp-ieee-20305');
  t.equal(slug('The `synchronous` setting'), 'the-synchronous-setting');
  t.equal(slug('What is wrong?'), 'what-is-wrong');
  t.equal(slug('Field side: RTU transactions/s'), 'field-side-rtu-transactionss');
  t.equal(slug('A [linked](x.md) heading'), 'a-linked-heading');
  t.equal(slug('snake_case and  two spaces'), 'snake_case-and--two-spaces');
  t.equal(slug('Température (°C)'), 'température-c');

  const a = anchors('# Title\n\n## Keys\n\n```sh\n# not a heading\n```\n\n## Keys\n\n### Keys ###\n');
  t.same([...a], ['title', 'keys', 'keys-1', 'keys-2'], 'duplicates get -1, -2; fenced lines and closing #s ignored');
});

t.test('extractLinks: relative links outside code', async (t) => {
  const md = [
    'See [the durability notes](docs/durability.md#the-synchronous-setting) and [errors](docs/errors.md).',
    'An [outside link](https://example.com/x.md), [mail](mailto:ops@example.com), `[in code](nope.md)`.',
    '![a picture](img/a.png "title") and [same file](#quick-start).',
    '',
    '```md',
    '[inside a fence](missing.md)',
    '```',
    '~~~',
    '[inside a tilde fence](missing-too.md)',
    '~~~',
    '[ref]: docs/api.md',
  ].join('\n');
  const links = extractLinks(md);
  t.same(
    links.map((l) => [l.line, l.target]),
    [
      [1, 'docs/durability.md#the-synchronous-setting'],
      [1, 'docs/errors.md'],
      [2, 'https://example.com/x.md'],
      [2, 'mailto:ops@example.com'],
      [3, 'img/a.png'],
      [3, '#quick-start'],
      [11, 'docs/api.md'],
    ],
  );
  t.same(
    links.filter((l) => isRelative(l.target)).map((l) => l.target),
    ['docs/durability.md#the-synchronous-setting', 'docs/errors.md', 'img/a.png', '#quick-start', 'docs/api.md'],
    'http(s): and mailto: are skipped',
  );
});

const docFiles = [
  join(ROOT, 'README.md'),
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => join(ROOT, 'docs', f)),
];

t.test('every relative link in README.md and docs/*.md resolves', async (t) => {
  for (const f of docFiles) {
    const problems = checkFile(f);
    t.same(problems, [], `${relative(ROOT, f)}: links and anchors resolve`);
  }
});

t.test('README.md is the front door: at most 12 KB', async (t) => {
  const size = statSync(join(ROOT, 'README.md')).size;
  t.ok(size <= README_MAX_BYTES, `README.md is ${size} bytes (limit ${README_MAX_BYTES}); move detail into docs/`);
});
