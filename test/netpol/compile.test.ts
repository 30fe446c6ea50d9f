// compile() without a kernel: the generation's entries looked up the way netpol.bpf.c does
// (longest prefix match over the same keys), against Kubernetes' NetworkPolicy semantics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ANY_PEER,
  compile,
  EGRESS_ISOLATED,
  INGRESS_ISOLATED,
  type LocalPod,
  lookupKeys,
  podKey,
  portBlocks,
} from '../../apps/netpol/compile.js';
import { enforceable } from '../../apps/netpol/k8s-policies.js';
import {
  checkPolicy,
  matches,
  type NetworkPolicy,
  type PolicyInput,
  parsePolicyFile,
} from '../../apps/netpol/policy.js';

/** Longest prefix match over the entries, bit by bit as the LPM trie compares the key's data. */
function lpm(entries: [Buffer, Buffer][], k: Buffer): Buffer | undefined {
  let best: [number, Buffer] | undefined;
  for (const [ek, v] of entries) {
    const plen = ek.readUInt32LE(0);
    if (plen > k.readUInt32LE(0)) continue;
    let ok = true;
    for (let bit = 0; bit < plen && ok; bit++) {
      const byte = 4 + (bit >> 3);
      const mask = 0x80 >> (bit & 7);
      ok = (ek[byte]! & mask) === (k[byte]! & mask);
    }
    if (ok && (!best || plen > best[0])) best = [plen, v];
  }
  return best?.[1];
}

/** The data path's decision for a packet's first packet in a direction (netpol.bpf.c check()). */
function decide(
  entries: [Buffer, Buffer][],
  pod: LocalPod,
  dir: 'ingress' | 'egress',
  peer: string,
  proto: number,
  port: number,
): boolean {
  const pv = lpm(entries, podKey(pod.cgroupId));
  if (!pv) return true;
  const flags = pv.readUInt32LE(8);
  if (!(flags & (dir === 'ingress' ? INGRESS_ISOLATED : EGRESS_ISOLATED))) return true;
  const keys = lookupKeys(pv.readUInt32LE(dir === 'ingress' ? 0 : 4), proto, port, peer);
  const cls = lpm(entries, keys.port);
  if (!cls) return false;
  if (cls.readUInt32LE(4) & ANY_PEER) return true;
  const v = lpm(entries, keys.peer(cls.readUInt32LE(0)));
  return !!v && v.readUInt32LE(0) === 1;
}

const pods: LocalPod[] = [
  {
    namespace: 'shop',
    name: 'web',
    labels: { app: 'web' },
    ip: '10.0.0.1',
    ip6: 'fd00::1',
    cgroupId: 101n,
    ports: [{ name: 'http', containerPort: 8080 }],
  },
  {
    namespace: 'shop',
    name: 'client',
    labels: { app: 'client' },
    ip: '10.0.0.2',
    ip6: 'fd00::2',
    cgroupId: 102n,
    ports: [
      { name: 'http', containerPort: 9090 },
      { name: 'dns', containerPort: 53, protocol: 'UDP' },
    ],
  },
  { namespace: 'ops', name: 'probe', labels: { app: 'probe' }, ip: '10.0.1.3', cgroupId: 103n },
];

function gen(policies: NetworkPolicy[], namespaces: PolicyInput['namespaces'] = []) {
  const input: PolicyInput = { policies: policies.map((p, i) => checkPolicy(p, `p${i}`)), pods, namespaces };
  const ids = new Map(input.policies.map((p, i) => [`${p.metadata.namespace}/${p.metadata.name}`, i + 1]));
  return compile(input, pods, ids, 7);
}

const [web, client, probe] = pods as [LocalPod, LocalPod, LocalPod];

test('port ranges become aligned prefix blocks', () => {
  assert.deepEqual(portBlocks(80, 80), [[80, 16]]);
  assert.deepEqual(portBlocks(0, 65535), [[0, 0]]);
  assert.deepEqual(portBlocks(8000, 8009), [
    [8000, 13],
    [8008, 15],
  ]);
  for (const [lo, hi] of [
    [1, 65535],
    [79, 81],
    [1000, 2000],
  ] as const) {
    const covered = portBlocks(lo, hi).reduce((n, [, plen]) => n + 2 ** (16 - plen), 0);
    assert.equal(covered, hi - lo + 1);
  }
});

test('label selectors: matchLabels and every operator; {} selects everything', () => {
  const l = { app: 'web', tier: 'front' };
  assert.ok(matches({}, l));
  assert.ok(matches({ matchLabels: { app: 'web' } }, l));
  assert.ok(!matches({ matchLabels: { app: 'db' } }, l));
  assert.ok(matches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'x'] }] }, l));
  assert.ok(!matches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, l));
  assert.ok(matches({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, l));
  assert.ok(!matches({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, l));
});

test('ingress by pod selector and port; a pod no policy selects has no entry', () => {
  const g = gen([
    {
      metadata: { namespace: 'shop', name: 'web' },
      spec: {
        podSelector: { matchLabels: { app: 'web' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }],
      },
    },
  ]);
  assert.equal(g.selected.size, 1);
  assert.deepEqual(g.selected.get('shop/web'), { ingress: ['shop/web'], egress: [] });
  assert.ok(decide(g.entries, web, 'ingress', client.ip!, 6, 80));
  assert.ok(!decide(g.entries, web, 'ingress', client.ip!, 6, 81));
  assert.ok(!decide(g.entries, web, 'ingress', client.ip!, 17, 80), 'UDP is not TCP');
  assert.ok(!decide(g.entries, web, 'ingress', probe.ip!, 6, 80), 'probe is in another namespace');
  assert.ok(decide(g.entries, web, 'egress', probe.ip!, 6, 1234), 'egress is not isolated');
  assert.ok(decide(g.entries, client, 'ingress', probe.ip!, 6, 80), 'client is selected by nothing');
  const pv = lpm(g.entries, podKey(web.cgroupId))!;
  assert.equal(pv.readUInt32LE(12), 1, 'drops name the selecting policy');
  assert.equal(pv.readUInt32LE(20), 7, 'the generation');
});

test('default deny (no rules) and allow-all (an empty rule); policies add up', () => {
  const deny = gen([
    { metadata: { namespace: 'shop', name: 'deny' }, spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } },
  ]);
  assert.ok(!decide(deny.entries, web, 'ingress', client.ip!, 6, 80));
  assert.ok(!decide(deny.entries, client, 'egress', web.ip!, 1, 0), 'ICMP too');
  assert.ok(decide(deny.entries, probe, 'egress', web.ip!, 6, 80), 'another namespace');
  const both = gen([
    { metadata: { namespace: 'shop', name: 'deny' }, spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] } },
    { metadata: { namespace: 'shop', name: 'allow-in' }, spec: { podSelector: {}, ingress: [{}] } },
  ]);
  assert.ok(decide(both.entries, web, 'ingress', '192.168.9.9', 1, 0), 'an empty rule allows everything');
  assert.ok(!decide(both.entries, web, 'egress', client.ip!, 6, 80), 'egress still denied');
  const pv = lpm(both.entries, podKey(web.cgroupId))!;
  assert.equal(pv.readUInt32LE(12), 2, 'drops name the first selecting policy by name: shop/allow-in (id 2)');
});

test('ipBlock with except, protocol-only ports and endPort ranges', () => {
  const g = gen([
    {
      metadata: { namespace: 'shop', name: 'out' },
      spec: {
        podSelector: { matchLabels: { app: 'client' } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.0/24', '10.0.0.1/32'] } }],
            ports: [{ protocol: 'TCP', port: 8000, endPort: 8009 }, { protocol: 'UDP' }],
          },
          { to: [{ ipBlock: { cidr: '10.0.1.128/25' } }], ports: [{ port: 8005 }] },
        ],
      },
    },
  ]);
  const ok = (ip: string, proto: number, port: number) => decide(g.entries, client, 'egress', ip, proto, port);
  assert.ok(ok('10.0.5.5', 6, 8000));
  assert.ok(ok('10.0.5.5', 6, 8009));
  assert.ok(!ok('10.0.5.5', 6, 8010));
  assert.ok(!ok('10.0.5.5', 6, 7999));
  assert.ok(ok('10.0.5.5', 17, 53), 'UDP, every port');
  assert.ok(!ok('10.0.5.5', 132, 53), 'not SCTP');
  assert.ok(!ok('10.0.0.1', 6, 8000), 'excepted /32');
  assert.ok(!ok('10.0.1.5', 6, 8000), 'excepted /24');
  assert.ok(ok('10.0.1.200', 6, 8005), 'the second rule: 10.0.1.128/25 on 8005');
  assert.ok(!ok('10.0.1.200', 6, 8004), 'the second rule only has 8005; the first excepts 10.0.1.0/24');
  assert.ok(!ok('10.1.0.1', 6, 8000), 'outside the CIDR');
});

test('namespaceSelector alone and with podSelector; namespaces carry kubernetes.io/metadata.name', () => {
  const g = gen(
    [
      {
        metadata: { namespace: 'shop', name: 'from-ops' },
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          ingress: [
            { from: [{ namespaceSelector: { matchLabels: { team: 'ops' } } }], ports: [{ port: 80 }] },
            {
              from: [
                {
                  namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } },
                  podSelector: { matchLabels: { app: 'client' } },
                },
              ],
              ports: [{ port: 443 }],
            },
          ],
        },
      },
    ],
    [{ name: 'ops', labels: { team: 'ops' } }],
  );
  assert.ok(decide(g.entries, web, 'ingress', probe.ip!, 6, 80));
  assert.ok(!decide(g.entries, web, 'ingress', client.ip!, 6, 80));
  assert.ok(decide(g.entries, web, 'ingress', client.ip!, 6, 443));
  assert.ok(!decide(g.entries, web, 'ingress', probe.ip!, 6, 443));
});

test('rule sets and peer sets are shared by pods with the same policies', () => {
  const many = Array.from({ length: 3 }, (_, i) => ({
    namespace: 'shop',
    name: `w${i}`,
    labels: { app: 'w' },
    ip: `10.0.2.${i + 1}`,
    cgroupId: BigInt(200 + i),
  }));
  const input: PolicyInput = {
    policies: [
      checkPolicy(
        {
          metadata: { namespace: 'shop', name: 'w' },
          spec: {
            podSelector: { matchLabels: { app: 'w' } },
            ingress: [{ from: [{ podSelector: {} }], ports: [{ port: 80 }] }],
          },
        },
        'p',
      ),
    ],
    pods: many,
    namespaces: [],
  };
  const g = compile(input, many, new Map([['shop/w', 1]]), 1);
  assert.equal(g.ruleSets, 1);
  assert.equal(g.peerSets, 1);
  assert.equal(g.entries.length, 3 + 1 + 3, 'three pods, one port class, three peers');
});

test('IPv6: pod addresses and ipBlock CIDRs with except, each family on its own', () => {
  const g = gen([
    {
      metadata: { namespace: 'shop', name: 'web' },
      spec: {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }],
        egress: [{ to: [{ ipBlock: { cidr: '2001:db8::/32', except: ['2001:db8:1::/48'] } }] }],
      },
    },
  ]);
  assert.ok(decide(g.entries, web, 'ingress', 'fd00::2', 6, 80), "client's IPv6 address is a /128 peer");
  assert.ok(decide(g.entries, web, 'ingress', '10.0.0.2', 6, 80), 'and its IPv4 address a /32');
  assert.ok(!decide(g.entries, web, 'ingress', 'fd00::3', 6, 80));
  assert.ok(decide(g.entries, web, 'egress', '2001:db8:2::9', 6, 443));
  assert.ok(!decide(g.entries, web, 'egress', '2001:db8:1::9', 6, 443), 'excepted');
  assert.ok(!decide(g.entries, web, 'egress', '2001:db9::1', 6, 443), 'outside');
  assert.ok(
    !decide(g.entries, web, 'egress', '32.1.13.184', 6, 443),
    'an IPv4 address with the same bits is not in it',
  );
  assert.throws(
    () =>
      checkPolicy(
        {
          metadata: { name: 'x' },
          spec: { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '2001:db8::/129' } }] }] },
        },
        'p',
      ),
    /not an IPv4 or IPv6 CIDR/,
  );
  assert.throws(
    () =>
      checkPolicy(
        {
          metadata: { name: 'x' },
          spec: { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '2001:db8::/32', except: ['10.0.0.0/8'] } }] }] },
        },
        'p',
      ),
    /is not within/,
  );
});

test("named ports: an ingress rule's are the protected pod's numbers, an egress rule's each peer's", () => {
  const g = gen([
    {
      metadata: { namespace: 'shop', name: 'in' },
      spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 'http' }, { port: 81 }] }] },
    },
    {
      metadata: { namespace: 'shop', name: 'out' },
      spec: {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ podSelector: {} }], ports: [{ port: 'http' }, { protocol: 'UDP', port: 'dns' }] }],
      },
    },
  ]);
  assert.ok(decide(g.entries, web, 'ingress', '192.0.2.1', 6, 8080), "web's http");
  assert.ok(decide(g.entries, web, 'ingress', '192.0.2.1', 6, 81), 'a number beside the name');
  assert.ok(!decide(g.entries, web, 'ingress', '192.0.2.1', 6, 9090), "client's http is not web's");
  assert.ok(decide(g.entries, web, 'egress', client.ip!, 6, 9090), "client's http");
  assert.ok(decide(g.entries, web, 'egress', 'fd00::2', 6, 9090), "client's http over IPv6");
  assert.ok(!decide(g.entries, web, 'egress', client.ip!, 6, 8080), "web's own http is not client's");
  assert.ok(decide(g.entries, web, 'egress', client.ip!, 17, 53), "client's dns (UDP)");
  assert.ok(!decide(g.entries, web, 'egress', client.ip!, 6, 53), 'dns is UDP only');
  assert.ok(!decide(g.entries, web, 'egress', probe.ip!, 6, 9090), 'probe names no port and is in another namespace');
});

test('policy checks name the field; a policy netpol cannot enforce fails closed in cluster mode', () => {
  assert.throws(
    () =>
      checkPolicy(
        { metadata: { name: 'x' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 'Not_A_Name' }] }] } },
        'p',
      ),
    /spec\.ingress\[0\]\.ports\[0\]\.port: "Not_A_Name" is neither a port number nor a port name/,
  );
  assert.throws(
    () =>
      checkPolicy(
        { metadata: { name: 'x' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] } },
        'p',
      ),
    /endPort: not with a named port/,
  );
  assert.throws(
    () =>
      checkPolicy(
        {
          metadata: { name: 'x' },
          spec: { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/8'] } }] }] },
        },
        'p',
      ),
    /except\[0\]: 11\.0\.0\.0\/8 is not within 10\.0\.0\.0\/8/,
  );
  assert.throws(
    () =>
      checkPolicy(
        { metadata: { name: 'x' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] } },
        'p',
      ),
    /endPort/,
  );
  assert.throws(
    () => parsePolicyFile({ policies: [{ spec: {} }] }, 'f.yaml'),
    /f\.yaml: policies\[0\]: needs metadata\.name/,
  );
  const e = enforceable({
    metadata: { name: 'x', namespace: 'shop' },
    spec: { podSelector: {}, ingress: [{ ports: [{ port: 'Not_A_Name' }] }] },
  });
  assert.ok(e.problem);
  assert.deepEqual(e.policy.spec, { podSelector: {}, policyTypes: ['Ingress'], ingress: [], egress: [] });
});
