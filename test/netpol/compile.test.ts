// compile() without a kernel: the generation's entries looked up the way netpol.bpf.c does
// (longest prefix match over the same keys), against Kubernetes' NetworkPolicy semantics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ANY_PEER,
  compile,
  EGRESS_ISOLATED,
  INGRESS_ISOLATED,
  KIND_PEER,
  KIND_PORT,
  type LocalPod,
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

function ipNum(ip: string): number {
  return ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
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
  const set = pv.readUInt32LE(dir === 'ingress' ? 0 : 4);
  const k = Buffer.alloc(16);
  k.writeUInt32LE(64, 0);
  k[4] = KIND_PORT;
  k.writeUInt32LE(set, 5);
  k[9] = proto;
  k.writeUInt16BE(port, 10);
  const cls = lpm(entries, k);
  if (!cls) return false;
  if (cls.readUInt32LE(4) & ANY_PEER) return true;
  const p = Buffer.alloc(16);
  p.writeUInt32LE(72, 0);
  p[4] = KIND_PEER;
  p.writeUInt32LE(cls.readUInt32LE(0), 5);
  p.writeUInt32BE(ipNum(peer), 9);
  const v = lpm(entries, p);
  return !!v && v.readUInt32LE(0) === 1;
}

const pods: LocalPod[] = [
  { namespace: 'shop', name: 'web', labels: { app: 'web' }, ip: '10.0.0.1', cgroupId: 101n },
  { namespace: 'shop', name: 'client', labels: { app: 'client' }, ip: '10.0.0.2', cgroupId: 102n },
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

test('policy checks name the field; a policy netpol cannot enforce fails closed in cluster mode', () => {
  assert.throws(
    () =>
      checkPolicy(
        { metadata: { name: 'x' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] } },
        'p',
      ),
    /spec\.ingress\[0\]\.ports\[0\]\.port: named port "http" is not supported/,
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
    spec: { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] },
  });
  assert.ok(e.problem);
  assert.deepEqual(e.policy.spec, { podSelector: {}, policyTypes: ['Ingress'], ingress: [], egress: [] });
});
