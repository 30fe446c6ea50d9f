// Program order on one tcx hook through the runtime: a program attached before or after another
// one's link runs there, seen in the verdict (the first ends the chain: pass or drop) and in the
// hook's program list (BPF_PROG_QUERY, run order).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attachTcx, BpfObject, inNetns, tcxHookPrograms } from '../../src/bpf/index.js';
import { objectPath } from '../../testbed/kernel.js';
import { idsOfObject, madeIds, makeNetnsPair, ping, stillListed } from '../../testbed/netns.js';

test('tcx: before/after a link decides which program runs first, and the hook lists them in that order', async (t) => {
  const made = madeIds();
  const net = await makeNetnsPair(t, 'kbpf-order');
  const obj = BpfObject.open(objectPath(import.meta.url, 'tcx_order.bpf.o'));
  try {
    obj.load();
    idsOfObject(made, obj);
    const pass = obj.program('tcx_pass');
    const drop = obj.program('tcx_drop');
    const seen = obj.map('seen');
    const counts = () => [seen.lookup(0), seen.lookup(1)];
    const order = () => inNetns(net.nsB, () => tcxHookPrograms('veth0', 'ingress').progIds);

    // drop first: pings to B are dropped, tcx_pass never sees them
    const dropLink = inNetns(net.nsB, () => attachTcx(drop, 'veth0', 'ingress'));
    made.link.push(dropLink.id);
    let passLink = inNetns(net.nsB, () => attachTcx(pass, 'veth0', 'ingress', { after: dropLink.id }));
    made.link.push(passLink.id);
    assert.deepEqual(order(), [drop.id, pass.id]);
    assert.equal((await ping(net.nsA, net.b.addr!, { count: 2, waitS: 0.5 })).received, 0);
    assert.deepEqual(counts(), [0n, 2n]);

    // pass before drop: pings get through, tcx_drop never sees them
    passLink.close();
    passLink = inNetns(net.nsB, () => attachTcx(pass, 'veth0', 'ingress', { before: dropLink.id }));
    made.link.push(passLink.id);
    assert.deepEqual(order(), [pass.id, drop.id]);
    assert.equal((await ping(net.nsA, net.b.addr!, { count: 2, waitS: 1 })).received, 2);
    assert.deepEqual(counts(), [2n, 2n]);

    // an anchor that is not on the hook is refused, naming it
    const gone = dropLink.id;
    dropLink.close();
    assert.throws(
      () => inNetns(net.nsB, () => attachTcx(drop, 'veth0', 'ingress', { after: gone })),
      new RegExp(`after link ${gone}`),
    );
    passLink.close();
  } finally {
    obj.close();
  }
  assert.deepEqual(await stillListed(made), { prog: [], map: [], link: [] });
});
