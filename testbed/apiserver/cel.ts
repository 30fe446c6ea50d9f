// A small evaluator for the subset of CEL that the kbpf CRDs' x-kubernetes-validations and the
// kbpf ValidatingAdmissionPolicies use: literals, self / oldSelf (or object, oldObject, request,
// variables), field access, has(), size(), contains(), startsWith(), endsWith(), matches(),
// type(), the macros all() and exists() on lists and maps (keys), the operators ! && || == !=
// < <= > >= + - in and ?:. Anything outside the subset is a compile error, so a rule this server
// cannot check is noticed, not skipped.

type Tok = { k: 'num' | 'str' | 'id' | 'op'; v: string };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (/[0-9]/.test(c)) {
      let j = i;
      while (j < src.length && /[0-9]/.test(src[j]!)) j++;
      out.push({ k: 'num', v: src.slice(i, j) });
      if (src[j] === 'u') j++;
      i = j;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (j < src.length && /[A-Za-z0-9_]/.test(src[j]!)) j++;
      out.push({ k: 'id', v: src.slice(i, j) });
      i = j;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\') {
          const n = src[j + 1]!;
          s += n === 'n' ? '\n' : n === 't' ? '\t' : n;
          j += 2;
        } else s += src[j++];
      }
      if (j >= src.length) throw new Error(`unterminated string in ${src}`);
      out.push({ k: 'str', v: s });
      i = j + 1;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (['&&', '||', '==', '!=', '<=', '>='].includes(two)) {
      out.push({ k: 'op', v: two });
      i += 2;
      continue;
    }
    if ('()[].,!<>?:+-'.includes(c)) {
      out.push({ k: 'op', v: c });
      i++;
      continue;
    }
    throw new Error(`unexpected character ${JSON.stringify(c)} in ${src}`);
  }
  return out;
}

type Node =
  | { t: 'lit'; v: unknown }
  | { t: 'id'; name: string }
  | { t: 'sel'; obj: Node; field: string }
  | { t: 'idx'; obj: Node; index: Node }
  | { t: 'call'; fn: string; target?: Node; args: Node[] }
  | { t: 'un'; op: string; x: Node }
  | { t: 'bin'; op: string; a: Node; b: Node }
  | { t: 'cond'; c: Node; a: Node; b: Node };

function parse(src: string): Node {
  const toks = tokenize(src);
  let p = 0;
  const peek = (v?: string): boolean => p < toks.length && toks[p]!.k === 'op' && (v === undefined || toks[p]!.v === v);
  const expect = (v: string): void => {
    if (!peek(v)) throw new Error(`expected ${v} at token ${p} in ${src}`);
    p++;
  };
  const args = (): Node[] => {
    const list: Node[] = [];
    expect('(');
    if (!peek(')')) {
      list.push(expr());
      while (peek(',')) {
        p++;
        list.push(expr());
      }
    }
    expect(')');
    return list;
  };
  const primary = (): Node => {
    const t = toks[p++];
    if (!t) throw new Error(`unexpected end of ${src}`);
    if (t.k === 'num') return { t: 'lit', v: Number(t.v) };
    if (t.k === 'str') return { t: 'lit', v: t.v };
    if (t.k === 'id') {
      if (t.v === 'true' || t.v === 'false') return { t: 'lit', v: t.v === 'true' };
      if (t.v === 'null') return { t: 'lit', v: null };
      if (peek('(')) return { t: 'call', fn: t.v, args: args() };
      return { t: 'id', name: t.v };
    }
    if (t.v === '(') {
      const e = expr();
      expect(')');
      return e;
    }
    throw new Error(`unexpected ${t.v} in ${src}`);
  };
  const postfix = (): Node => {
    let n = primary();
    for (;;) {
      if (peek('.')) {
        p++;
        const id = toks[p++];
        if (id?.k !== 'id') throw new Error(`expected a name after . in ${src}`);
        n = peek('(') ? { t: 'call', fn: id.v, target: n, args: args() } : { t: 'sel', obj: n, field: id.v };
      } else if (peek('[')) {
        p++;
        const index = expr();
        expect(']');
        n = { t: 'idx', obj: n, index };
      } else return n;
    }
  };
  const unary = (): Node => {
    if (peek('!')) {
      p++;
      return { t: 'un', op: '!', x: unary() };
    }
    if (peek('-')) {
      p++;
      return { t: 'un', op: '-', x: unary() };
    }
    return postfix();
  };
  const level = (ops: string[], next: () => Node) => (): Node => {
    let a = next();
    while (p < toks.length && toks[p]!.k === 'op' && ops.includes(toks[p]!.v)) {
      const op = toks[p++]!.v;
      a = { t: 'bin', op, a, b: next() };
    }
    return a;
  };
  const add = level(['+', '-'], unary);
  const relIn = (): Node => {
    let a = add();
    for (;;) {
      if (p < toks.length && toks[p]!.k === 'op' && ['<', '<=', '>', '>='].includes(toks[p]!.v)) {
        const op = toks[p++]!.v;
        a = { t: 'bin', op, a, b: add() };
      } else if (p < toks.length && toks[p]!.k === 'id' && toks[p]!.v === 'in') {
        p++;
        a = { t: 'bin', op: 'in', a, b: add() };
      } else return a;
    }
  };
  const rel = relIn;
  const eq = level(['==', '!='], rel);
  const and = level(['&&'], eq);
  const or = level(['||'], and);
  function expr(): Node {
    const c = or();
    if (peek('?')) {
      p++;
      const a = expr();
      expect(':');
      return { t: 'cond', c, a, b: expr() };
    }
    return c;
  }
  const e = expr();
  if (p !== toks.length) throw new Error(`unexpected ${toks[p]!.v} in ${src}`);
  return e;
}

class TypeName {
  constructor(readonly name: string) {}
}

function typeOf(v: unknown): string {
  if (v === null) return 'null_type';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'double';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'list';
  return 'map';
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a))
    return a.length === (b as unknown[]).length && a.every((x, i) => deepEqual(x, (b as unknown[])[i]));
  const ka = Object.keys(a as object).sort();
  const kb = Object.keys(b as object).sort();
  return (
    ka.length === kb.length &&
    ka.every((k, i) => k === kb[i] && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}

function evaluate(n: Node, env: Record<string, unknown>): unknown {
  switch (n.t) {
    case 'lit':
      return n.v;
    case 'id':
      if (n.name in env) return env[n.name];
      if (['int', 'string', 'bool', 'list', 'map', 'double'].includes(n.name)) return new TypeName(n.name);
      throw new Error(`undeclared reference to '${n.name}'`);
    case 'sel': {
      const o = evaluate(n.obj, env);
      if (o === null || typeof o !== 'object' || !(n.field in (o as object)))
        throw new Error(`no such key: ${n.field}`);
      return (o as Record<string, unknown>)[n.field];
    }
    case 'idx': {
      const o = evaluate(n.obj, env) as Record<string, unknown> | unknown[];
      const i = evaluate(n.index, env);
      const v = (o as Record<string, unknown>)[String(i)];
      if (v === undefined) throw new Error(`no such key: ${String(i)}`);
      return v;
    }
    case 'un': {
      const x = evaluate(n.x, env);
      if (n.op === '!') return !x;
      return -(x as number);
    }
    case 'cond':
      return evaluate(n.c, env) ? evaluate(n.a, env) : evaluate(n.b, env);
    case 'bin': {
      if (n.op === '&&') return !!evaluate(n.a, env) && !!evaluate(n.b, env);
      if (n.op === '||') return !!evaluate(n.a, env) || !!evaluate(n.b, env);
      const a = evaluate(n.a, env);
      const b = evaluate(n.b, env);
      switch (n.op) {
        case '==':
          return a instanceof TypeName || b instanceof TypeName
            ? (a as TypeName).name === (b as TypeName).name
            : deepEqual(a, b);
        case '!=':
          return a instanceof TypeName || b instanceof TypeName
            ? (a as TypeName).name !== (b as TypeName).name
            : !deepEqual(a, b);
        case '<':
          return (a as number) < (b as number);
        case '<=':
          return (a as number) <= (b as number);
        case '>':
          return (a as number) > (b as number);
        case '>=':
          return (a as number) >= (b as number);
        case '+':
          return (a as number) + (b as number);
        case '-':
          return (a as number) - (b as number);
        case 'in':
          if (Array.isArray(b)) return b.some((x) => deepEqual(x, a));
          if (b && typeof b === 'object') return Object.hasOwn(b, String(a));
          throw new Error('in: not a list or map');
      }
      throw new Error(`operator ${n.op}`);
    }
    case 'call': {
      if (n.fn === 'has' && !n.target) {
        const arg = n.args[0];
        if (arg?.t !== 'sel') throw new Error('has() takes a field selection');
        const o = evaluate(arg.obj, env);
        return o !== null && typeof o === 'object' && arg.field in (o as object);
      }
      if ((n.fn === 'all' || n.fn === 'exists') && n.target) {
        const v = n.args[0];
        if (v?.t !== 'id' || n.args.length !== 2) throw new Error(`${n.fn}() takes a variable and an expression`);
        const c = evaluate(n.target, env);
        const items = Array.isArray(c) ? c : c && typeof c === 'object' ? Object.keys(c) : undefined;
        if (!items) throw new Error(`${n.fn}() of a non-container`);
        const test = (x: unknown) => !!evaluate(n.args[1]!, { ...env, [v.name]: x });
        return n.fn === 'all' ? items.every(test) : items.some(test);
      }
      const target = n.target ? evaluate(n.target, env) : undefined;
      const args = n.args.map((a) => evaluate(a, env));
      const subject = n.target ? target : args.shift();
      switch (n.fn) {
        case 'size':
          if (typeof subject === 'string' || Array.isArray(subject)) return subject.length;
          if (subject && typeof subject === 'object') return Object.keys(subject).length;
          throw new Error('size() of a non-container');
        case 'type':
          return new TypeName(typeOf(subject));
        case 'contains':
          return String(subject).includes(String(args[0]));
        case 'startsWith':
          return String(subject).startsWith(String(args[0]));
        case 'endsWith':
          return String(subject).endsWith(String(args[0]));
        case 'matches':
          return new RegExp(String(args[0])).test(String(subject));
        case 'int':
          return Math.trunc(Number(subject));
        case 'string':
          return String(subject);
      }
      throw new Error(`function ${n.fn} is not supported by the test API server`);
    }
  }
}

export interface CompiledRule {
  usesOldSelf: boolean;
  eval(self: unknown, oldSelf?: unknown): boolean;
}

/** An expression evaluated against named values (a ValidatingAdmissionPolicy's object, request, variables, …). */
export function compileExpression(src: string): (env: Record<string, unknown>) => unknown {
  const ast = parse(src);
  return (env) => evaluate(ast, env);
}

export function compileRule(rule: string): CompiledRule {
  const ast = parse(rule);
  return {
    usesOldSelf: /\boldSelf\b/.test(rule),
    eval(self, oldSelf) {
      return !!evaluate(ast, oldSelf === undefined ? { self } : { self, oldSelf });
    },
  };
}
