// Crafted BTF that used to block the thread forever or blow the stack: each case runs in a child
// process with a time limit, so a regression fails the test instead of hanging the suite. Every
// case must end within the limit, either working or refused with a Corrupted/Unsupported error.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { BtfWriter, intEnc } from './btf-writer.js';

const INDEX = new URL('../../src/bpf/btf/index.js', import.meta.url).href;
const ERRORS = new URL('../../src/errors.js', import.meta.url).href;
const LIMIT_MS = 10_000;

interface Outcome {
  ok: boolean;
  kind?: string;
  message?: string;
  result?: unknown;
}

/** Runs `body` (an async function body with `btf`, `codecFor`, `Btf` in scope) on `blob` in a child process. */
function runCase(blob: Uint8Array, body: string): Outcome {
  const script = `
    const { Btf, codecFor } = await import(${JSON.stringify(INDEX)});
    const { kindOf } = await import(${JSON.stringify(ERRORS)});
    const blob = Buffer.from(${JSON.stringify(Buffer.from(blob).toString('base64'))}, 'base64');
    try {
      const btf = Btf.parse(blob);
      const result = await (async () => { ${body} })();
      console.log(JSON.stringify({ ok: true, result }));
    } catch (e) {
      console.log(JSON.stringify({ ok: false, kind: kindOf(e)?.name, message: String(e?.message ?? e).slice(0, 500) }));
    }
  `;
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: LIMIT_MS,
    maxBuffer: 1 << 20,
  });
  const took = Date.now() - started;
  assert.ok(
    r.error === undefined && r.signal === null,
    `did not finish within ${LIMIT_MS} ms (${took} ms): ${r.error}`,
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Outcome;
}

function refused(o: Outcome, pattern: RegExp): void {
  assert.equal(o.ok, false, `expected a refusal, got ${JSON.stringify(o.result)}`);
  assert.ok(
    o.kind === 'Corrupted' || o.kind === 'Unsupported',
    `expected a Corrupted or Unsupported error: ${o.kind} ${o.message}`,
  );
  assert.match(o.message ?? '', pattern);
}

describe('hostile BTF', () => {
  it('a function prototype whose parameters point back at itself is named quickly, not exponentially', () => {
    const w = new BtfWriter();
    const int = w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true })); // 1
    const ptr = w.add('PTR', '', 0, false, 3); // 2: pointer to the prototype
    // 3: int (*)(ptr a, ptr b, ptr c, ptr d)
    w.add('FUNC_PROTO', '', 4, false, int, w.str('a'), ptr, w.str('b'), ptr, w.str('c'), ptr, w.str('d'), ptr);
    const o = runCase(w.build(), 'return btf.typeName(2);');
    refused(o, /refers to itself|type 3/);
  });

  it('a deep chain of two-parameter prototypes (no cycle) is named within a bound', () => {
    const w = new BtfWriter();
    const int = w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true })); // 1
    const depth = 60;
    // ids 2..: PTR(i) -> PROTO(i+1); PROTO(i) has two params of PTR(i+2)
    for (let i = 0; i < depth; i++) {
      const self = 2 + 2 * i;
      w.add('PTR', '', 0, false, self + 1);
      const next = i + 1 < depth ? self + 2 : int;
      w.add('FUNC_PROTO', '', 2, false, int, w.str('x'), next, w.str('y'), next);
    }
    const o = runCase(w.build(), 'const n = btf.typeName(2); return n.length;');
    assert.equal(o.ok, true, o.message);
    assert.ok((o.result as number) <= 4096, `name is ${o.result} characters`);
  });

  it('int x[4294967295][0] is refused, not unrolled four billion times', () => {
    const w = new BtfWriter();
    const int = w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true })); // 1
    const inner = w.add('ARRAY', '', 0, false, 0, int, int, 0); // 2: int[0]
    const outer = w.add('ARRAY', '', 0, false, 0, inner, int, 0xffffffff); // 3: int[4294967295][0]
    refused(
      runCase(w.build(), `const c = codecFor(btf, ${outer}); return c.decode(new Uint8Array(0)).length;`),
      /elements|too/,
    );
  });

  it('int x[0][4294967295] decodes to an empty array without unrolling', () => {
    const w = new BtfWriter();
    const int = w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true })); // 1
    const inner = w.add('ARRAY', '', 0, false, 0, int, int, 0xffffffff); // 2: int[4294967295]
    const outer = w.add('ARRAY', '', 0, false, 0, inner, int, 0); // 3: int[0][4294967295]
    const o = runCase(w.build(), `const c = codecFor(btf, ${outer}); return c.decode(new Uint8Array(0));`);
    // Either an empty array or refused because the element type is too big: never a hang.
    if (o.ok) assert.deepEqual(o.result, []);
    else refused(o, /elements|too/);
  });

  it('a struct that contains itself by value is refused', () => {
    const w = new BtfWriter();
    w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true })); // 1
    w.add('STRUCT', 'loop', 2, false, 8, w.str('n'), 1, 0, w.str('again'), 2, 32); // 2
    refused(runCase(w.build(), 'return codecFor(btf, 2).size;'), /contains itself|refers to itself/);
  });

  it('an anonymous member that is its own struct is refused', () => {
    const w = new BtfWriter();
    w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true })); // 1
    w.add('STRUCT', '', 2, false, 8, w.str('n'), 1, 0, 0, 2, 32); // 2: struct { int n; <anon: itself> }
    w.add('STRUCT', 'outer', 1, false, 8, w.str('s'), 2, 0); // 3
    refused(runCase(w.build(), 'return codecFor(btf, 3).size;'), /contains itself|refers to itself/);
  });

  it('a qualifier that qualifies itself is refused', () => {
    const w = new BtfWriter();
    w.add('CONST', '', 0, false, 1); // 1: const <itself>
    w.add('STRUCT', 's', 1, false, 4, w.str('c'), 1, 0); // 2
    refused(runCase(w.build(), 'return codecFor(btf, 2).size;'), /refers to itself|chain too long/);
    refused(runCase(w.build(), 'return btf.typeName(1);'), /refers to itself|chain too long/);
  });

  it('a struct whose anonymous members fan out exponentially is refused within a bound', () => {
    const w = new BtfWriter();
    w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true })); // 1
    // level k (id 2+k) is an anonymous struct of 16 anonymous members of level k+1; the last holds ints
    const levels = 8;
    for (let k = 0; k < levels; k++) {
      const child = k + 1 < levels ? 3 + k : 1;
      const members: number[] = [];
      for (let m = 0; m < 16; m++) members.push(child === 1 ? w.str(`f${m}`) : 0, child, 0);
      w.add('STRUCT', k === 0 ? 'fan' : '', 16, false, 4, ...members);
    }
    const o = runCase(w.build(), 'return codecFor(btf, 2).size;');
    if (!o.ok) refused(o, /fields|too/);
  });

  it('a member type id past the end is refused when the blob is parsed', () => {
    const w = new BtfWriter();
    w.add('INT', 'int', 0, false, 4, intEnc(32)); // 1
    w.add('STRUCT', 's', 1, false, 4, w.str('x'), 999, 0); // 2
    refused(runCase(w.build(), 'return btf.typeCount;'), /type id 999|999/);
  });
});

describe('field names every object inherits', () => {
  it('encodes a struct with fields named constructor, toString and __proto__ from {} as zeros', () => {
    const w = new BtfWriter();
    w.add('INT', 'int', 0, false, 4, intEnc(32, { signed: true })); // 1
    w.add('STRUCT', 's', 3, false, 12, w.str('constructor'), 1, 0, w.str('toString'), 1, 32, w.str('__proto__'), 1, 64);
    const o = runCase(
      w.build(),
      `const c = codecFor(btf, 2);
       const zero = [...c.encode({})];
       const set = [...c.encode(JSON.parse('{"constructor": 1, "__proto__": 3}'))];
       const back = c.decode(new Uint8Array(set));
       return { zero, set, back: [back.constructor, back.toString, Object.hasOwn(back, '__proto__') && back.__proto__] };`,
    );
    assert.equal(o.ok, true, o.message);
    const r = o.result as { zero: number[]; set: number[]; back: unknown[] };
    assert.deepEqual(r.zero, new Array(12).fill(0));
    assert.deepEqual(r.set, [1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
    assert.deepEqual(r.back, [1, 0, 3]);
  });
});
