/**
 * One wording for schema problems, shared by the config, device maps and board profiles: ajv's
 * errors turned into `{ path, message }` with the path of the key at fault (an unknown or missing
 * key names the key itself, not its parent).
 */
import type { ErrorObject, ValidateFunction } from 'ajv';

export interface SchemaProblem {
  path: string;
  message: string;
}

/**
 * A validator compiled on first use: compiling a schema costs noticeable time and memory, which
 * `holdfast --help` and the admin commands that never validate should not pay.
 */
export function lazyValidator(compile: () => ValidateFunction): ValidateFunction {
  let v: ValidateFunction | null = null;
  const f = ((doc: unknown) => {
    v ??= compile();
    const ok = v(doc);
    f.errors = v.errors;
    return ok;
  }) as ValidateFunction;
  return f;
}

/** `notMessage`: what a failed `not` means in that schema (e.g. "must not be 0"). */
export function describeAjvError(e: ErrorObject, notMessage = 'has a value that is not allowed'): SchemaProblem {
  const p = e.params as Record<string, unknown>;
  const path = e.instancePath || '/';
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: `${e.instancePath}/${String(p.additionalProperty)}`, message: 'unknown key' };
    case 'required':
      return { path: `${e.instancePath}/${String(p.missingProperty)}`, message: 'is required' };
    case 'enum':
      return { path, message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'propertyNames':
      return { path: `${e.instancePath}/${String(p.propertyName)}`, message: 'invalid name' };
    case 'not':
      return { path, message: notMessage };
    default:
      return { path, message: e.message ?? e.keyword };
  }
}
