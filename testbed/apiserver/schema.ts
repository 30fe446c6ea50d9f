// Validation of objects against a CRD's structural OpenAPI v3 schema, as the API server does it:
// defaults are applied, unknown fields are pruned (and reported as warnings), types, formats,
// enums, bounds and patterns are checked, and x-kubernetes-validations rules are evaluated
// (transition rules with oldSelf only on update, where the old value exists).
import { type CompiledRule, compileRule } from './cel.js';

export interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  pattern?: string;
  format?: string;
  default?: unknown;
  nullable?: boolean;
  description?: string;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-validations'?: {
    rule: string;
    message?: string;
    messageExpression?: string;
    reason?: string;
    fieldPath?: string;
  }[];
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
}

export interface Problems {
  errors: string[];
  warnings: string[];
}

const ruleCache = new Map<string, CompiledRule>();
function rule(src: string): CompiledRule {
  let r = ruleCache.get(src);
  if (!r) {
    r = compileRule(src);
    ruleCache.set(src, r);
  }
  return r;
}

/** Checks that every rule in a schema compiles (a CRD with a rule we cannot evaluate is refused). */
export function compileSchemaRules(s: Schema | undefined, path = ''): string[] {
  if (!s) return [];
  const errs: string[] = [];
  for (const v of s['x-kubernetes-validations'] ?? []) {
    try {
      rule(v.rule);
    } catch (e) {
      errs.push(
        `${path || '<root>'}: x-kubernetes-validations rule ${JSON.stringify(v.rule)}: ${(e as Error).message}`,
      );
    }
  }
  for (const [k, p] of Object.entries(s.properties ?? {})) errs.push(...compileSchemaRules(p, `${path}.${k}`));
  if (typeof s.additionalProperties === 'object')
    errs.push(...compileSchemaRules(s.additionalProperties, `${path}[*]`));
  if (s.items) errs.push(...compileSchemaRules(s.items, `${path}[*]`));
  return errs;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/**
 * Validates `value` (and prunes/defaults it in place). Returns the possibly replaced value.
 * `old` is the stored value at the same path on update.
 */
export function validate(s: Schema, value: unknown, path: string, p: Problems, old?: unknown, root = false): unknown {
  if (value === null && s.nullable) return value;
  const at = path || '<root>';
  if (s['x-kubernetes-int-or-string']) {
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) {
      p.errors.push(`${at}: Invalid value: "${typeName(value)}": ${at} in body must be of type integer or string`);
      return value;
    }
  } else if (s.type) {
    const t = typeName(value);
    const ok = s.type === t || (s.type === 'number' && t === 'integer');
    if (!ok) {
      p.errors.push(`${at}: Invalid value: "${t}": ${at} in body must be of type ${s.type}: "${t}"`);
      return value;
    }
  }
  if (s.enum && !s.enum.some((e) => e === value))
    p.errors.push(
      `${at}: Unsupported value: ${JSON.stringify(value)}: supported values: ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`,
    );
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum)
      p.errors.push(`${at}: Invalid value: ${value}: ${at} in body should be greater than or equal to ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum)
      p.errors.push(`${at}: Invalid value: ${value}: ${at} in body should be less than or equal to ${s.maximum}`);
  }
  if (typeof value === 'string') {
    if (s.minLength !== undefined && value.length < s.minLength)
      p.errors.push(
        `${at}: Invalid value: ${JSON.stringify(value)}: ${at} in body should be at least ${s.minLength} chars long`,
      );
    if (s.maxLength !== undefined && value.length > s.maxLength)
      p.errors.push(`${at}: Too long: may not be more than ${s.maxLength} bytes`);
    if (s.pattern && !new RegExp(s.pattern).test(value))
      p.errors.push(`${at}: Invalid value: ${JSON.stringify(value)}: ${at} in body should match '${s.pattern}'`);
    if (s.format === 'date-time' && Number.isNaN(Date.parse(value)))
      p.errors.push(`${at}: Invalid value: ${JSON.stringify(value)}: ${at} in body must be of type date-time`);
  }
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems)
      p.errors.push(`${at}: Invalid value: ${value.length}: ${at} in body should have at least ${s.minItems} items`);
    if (s.maxItems !== undefined && value.length > s.maxItems)
      p.errors.push(`${at}: Too many: ${value.length}: must have at most ${s.maxItems} items`);
    if (s['x-kubernetes-list-type'] === 'set' && new Set(value.map((v) => JSON.stringify(v))).size !== value.length)
      p.errors.push(`${at}: Duplicate value in a list of type set`);
    if (s['x-kubernetes-list-type'] === 'map' && s['x-kubernetes-list-map-keys']) {
      const keys = value.map((v) =>
        JSON.stringify(s['x-kubernetes-list-map-keys']!.map((k) => (v as Record<string, unknown>)?.[k])),
      );
      if (new Set(keys).size !== keys.length) p.errors.push(`${at}: Duplicate value: list map keys must be unique`);
    }
    if (s.items)
      for (let i = 0; i < value.length; i++) value[i] = validate(s.items, value[i], `${path}[${i}]`, p, undefined);
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const oldO = old && typeof old === 'object' ? (old as Record<string, unknown>) : undefined;
    for (const [k, ps] of Object.entries(s.properties ?? {})) {
      if (!(k in o) && ps.default !== undefined) o[k] = structuredClone(ps.default);
    }
    if (s.maxProperties !== undefined && Object.keys(o).length > s.maxProperties)
      p.errors.push(`${at}: Too many: ${Object.keys(o).length}: must have at most ${s.maxProperties} items`);
    for (const r of s.required ?? []) if (!(r in o)) p.errors.push(`${path ? `${path}.` : ''}${r}: Required value`);
    for (const k of Object.keys(o)) {
      const child = path ? `${path}.${k}` : k;
      const ps = s.properties?.[k];
      if (ps) {
        // metadata is the API server's own: validated elsewhere, never pruned
        if (root && k === 'metadata') continue;
        o[k] = validate(ps, o[k], child, p, oldO?.[k]);
      } else if (typeof s.additionalProperties === 'object') {
        o[k] = validate(s.additionalProperties, o[k], child, p, oldO?.[k]);
      } else if (s.additionalProperties === true || s['x-kubernetes-preserve-unknown-fields']) {
        /* kept */
      } else if (s.properties || s.type === 'object') {
        p.warnings.push(`unknown field "${child}"`);
        delete o[k];
      }
    }
  }
  for (const v of s['x-kubernetes-validations'] ?? []) {
    const r = rule(v.rule);
    if (r.usesOldSelf && old === undefined) continue;
    let ok = false;
    let err = '';
    try {
      ok = r.eval(value, old);
    } catch (e) {
      err = (e as Error).message;
    }
    if (!ok)
      p.errors.push(
        `${at}: Invalid value: "${typeName(value)}": ${err ? `rule ${JSON.stringify(v.rule)} failed to evaluate: ${err}` : (v.message ?? `failed rule: ${v.rule}`)}`,
      );
  }
  return value;
}
