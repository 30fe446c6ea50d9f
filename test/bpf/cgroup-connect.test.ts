// cgroup/connect4 in a test cgroup redirects a real TCP connection to another port.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { attachCgroup, BpfObject } from '../../src/bpf/index.js';
import { kernelIds, leftSince, makeCgroup, objectPath, runInCgroup } from '../../testbed/kernel.js';

async function server(reply: string): Promise<{ port: number; srv: Server }> {
  const srv = createServer((s) => s.end(reply));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as { port: number }).port, srv };
}

const client = `const s=require('net').connect(+process.argv[1],'127.0.0.1');let d='';s.on('data',x=>d+=x);s.on('end',()=>{console.log(d)});s.on('error',e=>{console.log('ERR '+e.code)})`;

test('connect4 redirects a TCP connection in a cgroup to another port', async (t) => {
  const before = kernelIds();
  const a = await server('from-A');
  const b = await server('from-B');
  t.after(() => {
    a.srv.close();
    b.srv.close();
  });
  const cg = makeCgroup(t);

  const obj = BpfObject.open(objectPath(import.meta.url, 'connect_redirect.bpf.o'));
  try {
    obj.setGlobals({ from_port: a.port, to_port: b.port });
    obj.load();
    const prog = obj.program('redirect_connect4');
    assert.equal(prog.type, 'cgroup_sock_addr');
    assert.equal(prog.expectedAttachType, 'cgroup_inet4_connect');
    const link = attachCgroup(prog, cg);
    try {
      const inside = await runInCgroup(cg, process.execPath, ['-e', client, String(a.port)]);
      assert.equal(inside.stdout.trim(), 'from-B', `client in cgroup should reach B: ${inside.stderr}`);
      assert.equal(obj.map('redirected').lookup(0), 1n);
      // a process outside the cgroup is not redirected
      const outside = await runInCgroup('/sys/fs/cgroup/unified', process.execPath, ['-e', client, String(a.port)]);
      assert.equal(outside.stdout.trim(), 'from-A');
      assert.equal(link.info().type, 'cgroup');
    } finally {
      link.close();
    }
    // detached: the same client in the cgroup now reaches A
    const after = await runInCgroup(cg, process.execPath, ['-e', client, String(a.port)]);
    assert.equal(after.stdout.trim(), 'from-A');
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test('setting an unknown global or a value that does not fit is refused before load', () => {
  const obj = BpfObject.open(objectPath(import.meta.url, 'connect_redirect.bpf.o'));
  try {
    assert.throws(() => obj.setGlobal('no_such_var', 1), /no_such_var.*known variables: from_port, to_port/s);
    assert.throws(() => obj.setGlobal('from_port', 70000), /from_port/);
    assert.deepEqual(
      obj.globals().map((g) => [g.name, g.section, g.typeName]),
      [
        ['from_port', '.rodata', 'const volatile __u16'],
        ['to_port', '.rodata', 'const volatile __u16'],
      ],
    );
  } finally {
    obj.close();
  }
});
