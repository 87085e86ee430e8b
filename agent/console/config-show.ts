/**
 * `config show`: the running config as `path = value` lines (one key a line reads on a 72-column
 * terminal; nested JSON does not). Secrets never appear: the config names files for them (the
 * file's path is shown, never its content), and anything that still looks like one (a key named
 * like a password or token, a password inside a URL) is replaced by [redacted].
 */
import type { Config } from '../config/types.js';

const SECRET_KEY = /pass(word)?$|secret|token$|credential|private/i;

function redactUrl(s: string): string {
  return s.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]*@/i, '$1:[redacted]@');
}

function walk(v: unknown, path: string, out: string[]): void {
  if (Array.isArray(v)) {
    if (v.length === 0) out.push(`${path} = []`);
    v.forEach((x, i) => walk(x, `${path}[${i}]`, out));
  } else if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 0) out.push(`${path} = {}`);
    for (const [k, x] of entries) {
      const p = path ? `${path}.${k}` : k;
      if (SECRET_KEY.test(k) && !/File$/.test(k)) out.push(`${p} = [redacted]`);
      else walk(x, p, out);
    }
  } else {
    out.push(`${path} = ${typeof v === 'string' ? JSON.stringify(redactUrl(v)) : String(v)}`);
  }
}

export function configLines(cfg: Config): string[] {
  const out: string[] = [];
  walk(cfg, '', out);
  return out;
}
