// Program order on one hook (kbpf.yaml programs.X.order): two instances of a connect4 rewriter
// chained on one cgroup (A: X -> Y, B: Y -> Z). A connection to X ends at Z when A runs first and
// at Y when B does, so the kernel's run order is observed on a real connection; inspect lists the
// hook's programs in that order; rm leaves nothing.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { describeInstance } from '../../src/cli/render/instances.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds, leftSince, makeCgroup, runInCgroup } from '../../testbed/kernel.js';

const PKG = fileURLToPath(new URL('../../../test/agent/packages/order_rewrite/', import.meta.url));

async function server(reply: string): Promise<{ port: number; srv: Server }> {
  const srv = createServer((s) => s.end(reply));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as { port: number }).port, srv };
}

const client = `const s=require('net').connect(+process.argv[1],'127.0.0.1');let d='';s.on('data',x=>d+=x);s.on('end',()=>console.log(d));s.on('error',e=>console.log('ERR '+e.code))`;

/** The package with `order` added to its program (a copy in a temp dir). */
function withOrder(t: { after(fn: () => unknown): void }, order: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-order-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(PKG, dir, { recursive: true });
  const yaml = readFileSync(join(dir, 'kbpf.yaml'), 'utf8');
  writeFileSync(join(dir, 'kbpf.yaml'), `${yaml}programs:\n  order_rewrite: { order: ${order} }\n`);
  return dir;
}

test('order before/after/priority places programs on one cgroup hook, seen on a real connection and in inspect', async (t) => {
  const before = kernelIds();
  const [x, y, z] = [await server('X'), await server('Y'), await server('Z')];
  t.after(() => {
    for (const s of [x, y, z]) s.srv.close();
  });
  const cg = makeCgroup(t, 'kbpf-order');
  const ta = await testAgent(t);
  const plain = await ta.build(PKG, 'order-rewrite:plain');
  const afterA = await ta.build(withOrder(t, '{ after: a }'), 'order-rewrite:after-a');
  const beforeA = await ta.build(withOrder(t, '{ before: a }'), 'order-rewrite:before-a');
  const reached = async () => (await runInCgroup(cg, process.execPath, ['-e', client, String(x.port)])).stdout.trim();
  const rewrite = (from: number, to: number) => ({ from_port: String(from), to_port: String(to) });
  const order = (name: string) => ta.agent.inspect(name).hooks?.[0]?.programs.map((p) => p.instance ?? p.name);

  await ta.agent.run({ image: plain, name: 'a', config: rewrite(x.port, y.port), attach: { cgroup: cg } });
  assert.equal(await reached(), 'Y');

  // b after a: X -> Y -> Z
  await ta.agent.run({ image: afterA, name: 'b', config: rewrite(y.port, z.port), attach: { cgroup: cg } });
  assert.equal(await reached(), 'Z');
  assert.deepEqual(order('a'), ['a', 'b']);
  const text = describeInstance(ta.agent.inspect('b'));
  assert.match(
    text,
    /on cgroup\/connect4 .*, in run order:\n {4}1\. a\/order_rewrite {2}prog \d+\n {4}2\. b\/order_rewrite/,
  );
  await ta.agent.remove('b', { force: true });

  // c before a: c sees X (not its Y) and passes it on, then a takes X to Y
  await ta.agent.run({ image: beforeA, name: 'c', config: rewrite(y.port, z.port), attach: { cgroup: cg } });
  assert.equal(await reached(), 'Y');
  assert.deepEqual(order('a'), ['c', 'a']);
  await ta.agent.remove('c', { force: true });

  // the same from run --order, over a package that declares none
  const cfg = rewrite(y.port, z.port);
  await ta.agent.run({
    image: plain,
    name: 'e',
    config: cfg,
    attach: { cgroup: cg, order: { order_rewrite: 'before:a' } },
  });
  assert.equal(await reached(), 'Y');
  assert.deepEqual(order('a'), ['e', 'a']);
  await ta.agent.remove('e', { force: true });
  await assert.rejects(
    ta.agent.run({ image: plain, name: 'f', config: cfg, attach: { cgroup: cg, order: { nope: 'before:a' } } }),
    /--order nope: the package has no program "nope"/,
  );
  await assert.rejects(
    ta.agent.run({ image: plain, name: 'f', config: cfg, attach: { cgroup: cg, order: { order_rewrite: 'first' } } }),
    /--order order_rewrite=first: must be before:INSTANCE/,
  );
  await ta.agent.remove('f', { force: true }).catch(() => {});
  await ta.agent.remove('a', { force: true });

  // priorities: the lower runs first whichever starts first
  const prio = (n: number) => ta.build(withOrder(t, `{ priority: ${n} }`), `order-rewrite:p${n}`);
  const [p10, p5] = [await prio(10), await prio(5)];
  await ta.agent.run({ image: p10, name: 'late', config: rewrite(y.port, z.port), attach: { cgroup: cg } });
  await ta.agent.run({ image: p5, name: 'early', config: rewrite(x.port, y.port), attach: { cgroup: cg } });
  assert.deepEqual(order('late'), ['early', 'late']);
  assert.equal(await reached(), 'Z');
  await ta.agent.remove('late', { force: true });
  await ta.agent.remove('early', { force: true });

  assert.equal(await reached(), 'X');
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('an order on a hook without one is refused when the package is built', async (t) => {
  const ta = await testAgent(t);
  const dir = withOrder(t, '{ before: a }');
  writeFileSync(
    join(dir, 'kbpf.yaml'),
    readFileSync(join(dir, 'kbpf.yaml'), 'utf8').replace('{ order: { before: a } }', '{ order: { first: a } }'),
  );
  await assert.rejects(ta.build(dir, 'order-rewrite:bad'), /programs\.order_rewrite\.order must be one of/);
});
