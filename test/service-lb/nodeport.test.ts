// service-lb north-south (apps/service-lb/north-south/nodeport.bpf.c) on three node namespaces and a client
// on one bridge (testbed/cluster-net.ts): NodePort and an external IP reach a backend on another
// node, which sees the client's own address; with DSR no reply crosses the node the client
// went to (tcpdump on that node's interface), with SNAT it does; externalTrafficPolicy Local
// only picks the node's own backends; closing everything leaves nothing in the kernel.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { attachTcx, BpfObject, inNetns, type Link } from 'kbpf/bpf';
import { type NodePortDeclaration, NodePortMaps } from '../../apps/service-lb/nodeport.js';
import { testAgent } from '../../testbed/agent.js';
import {
  type Backend,
  type ClusterNet,
  capture,
  connectFromClient,
  inNode,
  makeClusterNet,
  startBackend,
  udpFromClient,
} from '../../testbed/cluster-net.js';
import { kernelIds, leftSince } from '../../testbed/kernel.js';
import { idsOfObject, madeIds, makeNetns, makeVethPair, stillListed } from '../../testbed/netns.js';

const OBJECT = fileURLToPath(new URL('../../apps/service-lb/north-south/nodeport.bpf.o', import.meta.url));
const NODE_PORT = 30080;
const PACKAGE = fileURLToPath(new URL('../../../apps/service-lb/north-south/', import.meta.url));

interface NodeLb {
  obj: BpfObject;
  links: Link[];
  maps: NodePortMaps;
}

describe('service-lb NodePort on tc', () => {
  const cleanups: (() => unknown)[] = [];
  const t = { after: (fn: () => unknown) => cleanups.push(fn) };
  const made = madeIds();
  let net: ClusterNet;
  const lbs: NodeLb[] = [];
  const backends: Backend[] = [];
  const externalIp = () => `${net.subnet}.200`;

  before(async () => {
    net = await makeClusterNet(t, 3);
    // the external IP is routed to node1, as a LoadBalancer's announcement would
    await inNode(
      { ...net.nodes[0]!, netns: net.client.netns },
      `ip route add ${externalIp()}/32 via ${net.nodes[0]!.ip}`,
    );
    for (const node of net.nodes) {
      backends.push(await startBackend(t, node));
      const obj = BpfObject.open(OBJECT);
      obj.load();
      idsOfObject(made, obj);
      const links = inNetns(node.netns, () => [
        attachTcx(obj.program('nodeport_ingress'), 'eth0', 'ingress'),
        attachTcx(obj.program('nodeport_egress'), 'eth0', 'egress'),
      ]);
      for (const l of links) made.link.push(l.id);
      lbs.push({ obj, links, maps: NodePortMaps.ofObject(obj) });
    }
  });

  after(async () => {
    for (const lb of lbs) {
      for (const l of lb.links) l.close();
      lb.maps.close();
      lb.obj.close();
    }
    for (const fn of cleanups.reverse()) await fn();
  });

  const nodes = () => Object.fromEntries(net.nodes.map((n) => [n.name, n.ip]));
  const backend = (i: number) => ({ ip: net.nodes[i]!.podIp, port: 8080, node: net.nodes[i]!.name });
  const applyAll = (decl: NodePortDeclaration) => {
    net.nodes.forEach((n, i) => {
      lbs[i]!.maps.apply(decl, n.name);
    });
  };
  const stats = (i: number) => lbs[i]!.maps.stats();

  test('DSR: NodePort and an external IP reach a backend on another node that sees the client; no reply crosses the first node', async () => {
    applyAll({
      nodes: nodes(),
      services: [
        {
          name: 'web',
          port: 80,
          nodePort: NODE_PORT,
          externalIPs: [externalIp()],
          mode: 'dsr',
          backends: [backend(1)],
        },
      ],
    });
    const before = stats(0).dsr_encap;
    const seen = await capture(net.nodes[0]!, `tcp and dst host ${net.client.ip}`, async () => {
      const r = await connectFromClient(net, net.nodes[0]!.ip, NODE_PORT);
      assert.match(r, new RegExp(`^peer=${net.client.ip.replaceAll('.', '\\.')}:\\d+ node=node2$`));
      const viaExternal = await connectFromClient(net, externalIp(), 80);
      assert.match(viaExternal, new RegExp(`^peer=${net.client.ip.replaceAll('.', '\\.')}:\\d+ node=node2$`));
    });
    assert.deepEqual(seen, [], 'DSR: no packet to the client leaves or crosses node1');
    assert.ok(
      backends[1]!.peers.every((p) => p.startsWith(`${net.client.ip}:`)),
      backends[1]!.peers.join(','),
    );
    assert.ok(stats(0).dsr_encap > before);
    assert.ok(
      stats(1).dsr_decap >= 2n && stats(1).reply_revnat > 0n,
      JSON.stringify(stats(1), (_, v) => String(v)),
    );
  });

  test('DSR over UDP: the backend sees the client, the client gets its answer from the node port', async () => {
    applyAll({
      nodes: nodes(),
      services: [{ name: 'dns', protocol: 'UDP', port: 53, nodePort: NODE_PORT, backends: [backend(2)] }],
    });
    const seen = await capture(net.nodes[0]!, `udp and dst host ${net.client.ip}`, async () => {
      const r = await udpFromClient(net, net.nodes[0]!.ip, NODE_PORT);
      const ip = net.client.ip.replaceAll('.', '\\.');
      const from = `${net.nodes[0]!.ip}:${NODE_PORT}`.replaceAll('.', '\\.');
      assert.match(r, new RegExp(`^peer=${ip}:\\d+ node=node3 from=${from}$`));
    });
    assert.deepEqual(seen, [], 'DSR: the UDP answer does not cross node1');
  });

  test('SNAT: the backend on another node answers through the first node', async () => {
    applyAll({
      nodes: nodes(),
      services: [{ name: 'web', port: 80, nodePort: NODE_PORT, mode: 'snat', backends: [backend(2)] }],
    });
    const seen = await capture(net.nodes[0]!, `tcp and dst host ${net.client.ip}`, async () => {
      const r = await connectFromClient(net, net.nodes[0]!.ip, NODE_PORT);
      assert.match(r, new RegExp(`^peer=${net.nodes[0]!.ip.replaceAll('.', '\\.')}:4\\d{4} node=node3$`));
    });
    assert.ok(seen.length > 0, 'SNAT: the replies go back through node1');
    assert.ok(
      seen.every((l) => l.includes(`${net.nodes[0]!.ip}.${NODE_PORT} >`)),
      seen.join('\n'),
    );
    assert.ok(stats(0).snat_out > 0n && stats(0).snat_reply > 0n);
  });

  test('externalTrafficPolicy Local picks only the node’s own backends, and a node with none drops', async () => {
    const svc = { name: 'web', port: 80, nodePort: NODE_PORT, backends: [backend(0), backend(1)] };
    applyAll({ nodes: nodes(), services: [{ ...svc, externalTrafficPolicy: 'Local' }] });
    for (let i = 0; i < 6; i++) {
      assert.match(await connectFromClient(net, net.nodes[0]!.ip, NODE_PORT), / node=node1$/);
      assert.match(await connectFromClient(net, net.nodes[1]!.ip, NODE_PORT), / node=node2$/);
    }
    const drops = stats(2).no_backend;
    assert.equal(await connectFromClient(net, net.nodes[2]!.ip, NODE_PORT, 500), 'TIMEOUT');
    assert.ok(stats(2).no_backend > drops);
    // Cluster: the same node reaches both
    applyAll({ nodes: nodes(), services: [svc] });
    const reached = new Set<string>();
    for (let i = 0; i < 12 && reached.size < 2; i++)
      reached.add((await connectFromClient(net, net.nodes[2]!.ip, NODE_PORT)).replace(/.* node=/, ''));
    assert.deepEqual([...reached].sort(), ['node1', 'node2']);
  });

  test('closing the programs leaves nothing, and the node port is plain routing again', async () => {
    for (const lb of lbs.splice(0)) {
      for (const l of lb.links) l.close();
      lb.maps.close();
      lb.obj.close();
    }
    assert.deepEqual(await stillListed(made), { prog: [], map: [], link: [] });
    assert.match(await connectFromClient(net, net.nodes[0]!.ip, NODE_PORT, 1000), /^ERR ECONNREFUSED$/);
  });
});

test('service-lb runs as a package: tcx on the interface, declarations through the pins, rm leaves nothing', async (t) => {
  const before = kernelIds();
  const ns = await makeNetns(t, 'kbpf-np');
  const veth = await makeVethPair(t, null, ns);
  const ta = await testAgent(t);
  const ref = await ta.build(PACKAGE, 'service-lb:test');
  const st = await ta.agent.run({ image: ref, name: 'svc', attach: { iface: veth.a.ifname } });
  assert.equal(st.phase, 'running');
  const hooks = ta.agent.inspect('svc').hooks ?? [];
  assert.deepEqual(
    hooks.map((h) => [h.attach, h.programs.map((p) => `${p.instance}/${p.program}`)]),
    [
      [`tc ingress ${veth.a.ifname}`, ['svc/nodeport_ingress']],
      [`tc egress ${veth.a.ifname}`, ['svc/nodeport_egress']],
    ],
  );
  const maps = NodePortMaps.ofInstance(ta.paths.bpffsDir, 'svc');
  try {
    maps.apply(
      {
        nodes: { a: '10.9.0.1', b: '10.9.0.2' },
        services: [
          {
            name: 'web',
            port: 80,
            nodePort: 30080,
            externalIPs: ['10.9.0.200'],
            backends: [{ ip: '10.9.1.5', port: 8080, node: 'b' }],
          },
        ],
      },
      'a',
    );
    assert.deepEqual(
      maps
        .frontends()
        .map((f) => `${f.address}:${f.port}/${f.protocol} ${f.backends} ${f.flags}`)
        .sort(),
      ['10.9.0.1:30080/TCP 1 dsr', '10.9.0.200:80/TCP 1 dsr', '10.9.0.2:30080/TCP 1 dsr'],
    );
    assert.throws(() => maps.apply({ nodes: { a: '10.9.0.1' }, services: [] }, 'z'), /node z is not one of/);
  } finally {
    maps.close();
  }
  await ta.agent.remove('svc', { force: true });
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
