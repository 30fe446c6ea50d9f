// netpol on a real kernel: test bed pods (network namespaces on a bridge, a cgroup each, HAProxy
// answering on :80 and :8081), the package run by a real agent on their parent cgroup, policies
// applied standalone as the declare CLI does.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { addrText } from '../../apps/flow-monitor/collector.js';
import type { Flow } from '../../apps/flow-monitor/flow.js';
import { Identities } from '../../apps/flow-monitor/identities.js';
import { main as declare } from '../../apps/netpol/declare.js';
import { type DropEvent, flowOfDrop } from '../../apps/netpol/drops.js';
import type { NetworkPolicy, PolicyInput } from '../../apps/netpol/policy.js';
import { startApiServer } from '../../src/agent/api-server.js';
import { runCli } from '../../src/cli/program.js';
import { runFlowMonitor } from '../../testbed/flows.js';
import { kernelIds, leftSince } from '../../testbed/kernel.js';
import { APP_PORT, APP_PORT_2, type Pod, Testbed } from '../../testbed/mesh/testbed.js';
import { podIdentity, runNetpol } from '../../testbed/netpol/netpol-node.js';

/** Whether an HTTP request from `from` to ip:port gets its answer (a dropped SYN: no answer within 0.7 s). */
async function reaches(tb: Testbed, from: Pod, to: string, port = APP_PORT): Promise<boolean> {
  return (await tb.get(from, `http://${to}:${port}/`, 0.7)).ok;
}

function policy(namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy {
  return { metadata: { namespace, name }, spec };
}

/** Three pods of namespace shop, labelled app=web, app=client and app=other, and their identities. */
async function shopPods(tb: Testbed): Promise<{ web: Pod; client: Pod; other: Pod; pods: PolicyInput['pods'] }> {
  const web = await tb.addPod({ sidecar: false });
  const client = await tb.addPod({ sidecar: false });
  const other = await tb.addPod({ sidecar: false });
  const pods = [
    podIdentity(web, 'shop', { app: 'web' }),
    podIdentity(client, 'shop', { app: 'client' }),
    podIdentity(other, 'shop', { app: 'other' }),
  ];
  return { web, client, other, pods };
}

/** web-ingress: web takes APP_PORT from client only. */
const webIngress = (): NetworkPolicy =>
  policy('shop', 'web-ingress', {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: APP_PORT }] }],
  });

test('an unselected pod is unrestricted; ingress allowed by podSelector + port passes and the rest drops; drops become flows named by the policy, are counted per policy; rm leaves nothing and traffic flows again', async (t) => {
  const tb = await Testbed.create(t, 'kbpfnp');
  const before = kernelIds();
  const np = await runNetpol(t, tb);
  const { web, client, other, pods } = await shopPods(tb);
  const input: PolicyInput = {
    pods,
    namespaces: [],
    policies: [
      policy('shop', 'web-ingress', {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Ingress'],
        ingress: [
          { from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ protocol: 'TCP', port: 80 }] },
        ],
      }),
    ],
  };
  assert.ok(await reaches(tb, other, web.ip), 'nothing applied yet: everything passes');

  // through the declare CLI, as a user does
  const file = join(tb.dir, 'policies.yaml');
  writeFileSync(file, JSON.stringify(input)); // JSON is YAML
  const lines: string[] = [];
  const bpffs = np.ta.paths.bpffsDir;
  assert.equal(
    declare(['--bpffs', bpffs, 'apply', file], (s) => lines.push(s)),
    0,
  );
  assert.match(lines.join(''), /applied generation 1 to netpol: 1 policies, 1 pod\(s\) selected/);

  assert.ok(await reaches(tb, client, web.ip), 'client -> web:80 is allowed');
  assert.ok(!(await reaches(tb, client, web.ip, APP_PORT_2)), 'client -> web:8081 is not');
  assert.ok(!(await reaches(tb, other, web.ip)), 'other -> web:80 is not');
  assert.ok(await reaches(tb, web, other.ip), "web's egress is not selected: web -> other passes (and its replies)");
  assert.ok(await reaches(tb, other, client.ip), 'client is selected by nothing: other -> client passes');

  // the drop of other -> web:80 as a flow
  let drop: DropEvent | undefined;
  for (let i = 0; i < 50 && !drop; i++) {
    drop = np.ta.agent.logs
      .read('netpol')
      .map((r) => (r as { event?: DropEvent }).event)
      .find((e) => e && e.direction === 0 && e.dport === APP_PORT && addrText(e.saddr, e.family) === other.ip);
    if (!drop) await sleep(100);
  }
  assert.ok(drop, 'a drop event for other -> web:80');
  assert.equal(drop.policy, 'shop/web-ingress', 'the event names its policy');
  const flow = flowOfDrop(drop, { identities: new Identities(input.pods), node: 'node-1' });
  assert.equal(flow.verdict, 'DROPPED');
  assert.equal(flow.drop_reason_desc, 'POLICY_DENIED');
  assert.equal(flow.policy_name, 'shop/web-ingress');
  assert.equal(flow.traffic_direction, 'INGRESS');
  assert.deepEqual([flow.source.pod_name, flow.destination.pod_name], [other.name, web.name]);
  assert.equal(flow.destination.namespace, 'shop');
  assert.deepEqual(flow.destination.labels, ['app=web']);
  assert.equal(flow.l4.TCP?.destination_port, APP_PORT);
  assert.equal(flow.l4.TCP?.flags?.SYN, true);

  const drops = np.maps.drops().get('shop/web-ingress') ?? 0n;
  assert.ok(drops >= 2n, `drops counted for shop/web-ingress: ${drops}`);
  lines.length = 0;
  assert.equal(
    declare(['--bpffs', bpffs, 'stats'], (s) => lines.push(s)),
    0,
  );
  assert.match(lines.join(''), /^drops shop\/web-ingress: \d+$/m);
  assert.match(lines.join(''), /^allowed: [1-9]/m);

  await np.remove();
  assert.ok(await reaches(tb, other, web.ip), 'after rm: other -> web:80 passes again');
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] }, 'nothing of ours is left in the kernel');
});

test('egress to a CIDR with except and a port range; ingress by namespaceSelector; replies of allowed connections pass', async (t) => {
  const tb = await Testbed.create(t, 'kbpfnp');
  const np = await runNetpol(t, tb);
  const c = await tb.addPod({ sidecar: false });
  const w1 = await tb.addPod({ sidecar: false });
  const w2 = await tb.addPod({ sidecar: false });
  const x = await tb.addPod({ sidecar: false });
  const input: PolicyInput = {
    pods: [
      podIdentity(c, 'a', { app: 'c' }),
      podIdentity(w1, 'b', { app: 'w' }),
      podIdentity(w2, 'b', { app: 'w' }),
      podIdentity(x, 'other', { app: 'x' }),
    ],
    namespaces: [{ name: 'a', labels: { team: 'blue' } }],
    policies: [
      policy('a', 'egress-subnet', {
        podSelector: { matchLabels: { app: 'c' } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [{ ipBlock: { cidr: `${tb.subnet}.0/24`, except: [`${w2.ip}/32`] } }],
            ports: [{ protocol: 'TCP', port: 79, endPort: 80 }],
          },
        ],
      }),
      policy('b', 'from-blue', {
        podSelector: {},
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['blue'] }] },
                podSelector: { matchExpressions: [{ key: 'app', operator: 'Exists' }] },
              },
            ],
          },
        ],
      }),
    ],
  };
  const a = np.maps.apply(input);
  assert.equal(a.pods, 3);
  assert.ok(await reaches(tb, c, w1.ip), 'c -> w1:80: in the CIDR and the port range, and from a blue namespace');
  assert.ok(!(await reaches(tb, c, w2.ip)), 'c -> w2:80: excepted');
  assert.ok(!(await reaches(tb, c, w1.ip, APP_PORT_2)), 'c -> w1:8081: outside the port range');
  assert.ok(!(await reaches(tb, x, w1.ip)), 'x -> w1: namespace other is not blue');
  assert.ok(!(await reaches(tb, w2, w1.ip)), 'w2 -> w1: namespace b is not blue either');
  assert.ok(await reaches(tb, w1, x.ip), "w1's egress is unrestricted");
  assert.ok(
    await reaches(tb, w1, c.ip),
    "w1 -> c: c's ingress is open, and its replies pass its egress policy (they belong to an allowed connection)",
  );
});

test('IPv6: pod IPs and ipBlock CIDRs with except per family; allowed and denied IPv6 connections; an IPv6 drop names its policy', async (t) => {
  const tb = await Testbed.create(t, 'kbpfnp', { ipv6: true });
  const np = await runNetpol(t, tb);
  const { web, client, other, pods } = await shopPods(tb);
  const v6 = (p: Pod) => p.ip6!;
  const input: PolicyInput = {
    pods,
    namespaces: [],
    policies: [
      webIngress(),
      policy('shop', 'client-egress', {
        podSelector: { matchLabels: { app: 'client' } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [{ ipBlock: { cidr: `${tb.subnet6}::/64`, except: [`${v6(other)}/128`] } }],
            ports: [{ port: APP_PORT }],
          },
        ],
      }),
    ],
  };
  np.maps.apply(input);
  const url = (p: Pod) => `[${v6(p)}]`;
  assert.ok(await reaches(tb, client, url(web)), 'client -> web:80 over IPv6: in the /64, and a selected peer of web');
  assert.ok(!(await reaches(tb, client, url(web), APP_PORT_2)), 'client -> web:8081 over IPv6: not the port');
  assert.ok(!(await reaches(tb, other, url(web))), "other -> web:80 over IPv6: not in web's ingress");
  assert.ok(!(await reaches(tb, client, url(other))), 'client -> other:80 over IPv6: excepted from the /64');
  assert.ok(
    !(await reaches(tb, client, web.ip)),
    "client -> web:80 over IPv4: client's egress CIDR is IPv6's only (each family its own)",
  );
  assert.ok(await reaches(tb, web, `[${v6(other)}]`), "web's egress and other's ingress are open: IPv6 passes");
  assert.ok(await reaches(tb, other, client.ip), 'IPv4 still flows where nothing restricts it');

  let drop: DropEvent | undefined;
  for (let i = 0; i < 50 && !drop; i++) {
    drop = np.ta.agent.logs
      .read('netpol')
      .map((r) => (r as { event?: DropEvent }).event)
      .find((e) => e && e.family === 10 && e.direction === 1 && addrText(e.daddr, 10) === v6(other));
    if (!drop) await sleep(100);
  }
  assert.ok(drop, 'an IPv6 drop event for client -> other');
  const flow = flowOfDrop(drop, { identities: new Identities(input.pods), node: 'n' });
  assert.equal(flow.IP.ipVersion, 'IPv6');
  assert.equal(flow.IP.source, v6(client));
  assert.equal(flow.policy_name, 'shop/client-egress');
  assert.deepEqual([flow.source.pod_name, flow.destination.pod_name], [client.name, other.name]);
  assert.ok(np.maps.stats().dropped > 0n);
});

// Connects to ip:port over and over for `ms`, alternating the given ports, each attempt an HTTP
// request with a 150 ms budget; prints {"PORT": {"ok": N, "fail": N}} at the end.
const CHURN_CLIENT = `
const net = require('node:net');
const [ip, ms, ...ports] = process.argv.slice(1);
const out = Object.fromEntries(ports.map((p) => [p, { ok: 0, fail: 0 }]));
const once = (port) => new Promise((res) => {
  const s = net.connect({ host: ip, port: Number(port) });
  const done = (ok) => { clearTimeout(t); s.destroy(); out[port][ok ? 'ok' : 'fail']++; res(); };
  const t = setTimeout(() => done(false), 150);
  s.on('connect', () => s.write('GET / HTTP/1.0\\r\\n\\r\\n'));
  s.on('data', (d) => { if (String(d).startsWith('HTTP/1.')) done(true); });
  s.on('error', () => done(false));
});
(async () => {
  const end = Date.now() + Number(ms);
  for (let i = 0; Date.now() < end; i++) await once(ports[i % ports.length]);
  console.log(JSON.stringify(out));
})();
`;

test('policy changes apply atomically: under churn between two generations no connection gets what neither allows', async (t) => {
  const tb = await Testbed.create(t, 'kbpfnp');
  const np = await runNetpol(t, tb);
  const s = await tb.addPod({ sidecar: false });
  const c1 = await tb.addPod({ sidecar: false });
  const c2 = await tb.addPod({ sidecar: false });
  const pods = [
    podIdentity(s, 'ns', { app: 's' }),
    podIdentity(c1, 'ns', { app: 'c1' }),
    podIdentity(c2, 'ns', { app: 'c2' }),
  ];
  // A: c1 -> s:80 only; B: c2 -> s:8081 only. Both compile to the same ids (rule set 1, peer set
  // 1), so a generation half written over the other would let c2 reach :80 or c1 reach :8081.
  const only = (from: string, port: number): PolicyInput => ({
    pods,
    namespaces: [],
    policies: [
      policy('ns', 's', {
        podSelector: { matchLabels: { app: 's' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: from } } }], ports: [{ port }] }],
      }),
    ],
  });
  const a = only('c1', APP_PORT);
  const b = only('c2', APP_PORT_2);
  np.maps.apply(a);
  assert.ok(await reaches(tb, c1, s.ip));
  const ms = 3000;
  const clients = [c1, c2].map((c) =>
    tb.execInPod(c, process.execPath, ['-e', CHURN_CLIENT, s.ip, String(ms), String(APP_PORT), String(APP_PORT_2)], {
      timeoutMs: ms + 10_000,
    }),
  );
  let flips = 0;
  const end = Date.now() + ms + 300;
  while (Date.now() < end) {
    np.maps.apply(flips % 2 ? a : b);
    flips++;
    await sleep(5 * (1 + (flips % 3))); // each generation lives 5-15 ms (plus the next one's build)
  }
  const [r1, r2] = await Promise.all(clients);
  const out1 = JSON.parse(r1!.stdout) as Record<string, { ok: number; fail: number }>;
  const out2 = JSON.parse(r2!.stdout) as Record<string, { ok: number; fail: number }>;
  t.diagnostic(`${flips} generations; c1 ${JSON.stringify(out1)}; c2 ${JSON.stringify(out2)}`);
  assert.ok(flips > 50, `generations applied: ${flips}`);
  assert.equal(out1[APP_PORT_2]!.ok, 0, 'c1 never reached :8081');
  assert.equal(out2[APP_PORT]!.ok, 0, 'c2 never reached :80');
  assert.ok(out1[APP_PORT]!.ok > 0 && out2[APP_PORT_2]!.ok > 0, 'what each generation allows got through');
  assert.ok(np.maps.generation().gen > flips, 'the generation counts up');
});

// One keep-alive HTTP connection to ip:80, a request every 100 ms (an answer within 500 ms) for
// `ms` or until one goes unanswered; prints {"oks": [ms of each answer], "failedAt": ms | null,
// "closed": bool} (Date.now() times).
const KEEPALIVE_CLIENT = `
const net = require('node:net');
const [ip, ms] = process.argv.slice(1);
const out = { oks: [], failedAt: null, closed: false };
const s = net.connect({ host: ip, port: 80 });
const end = Date.now() + Number(ms);
let buf = '';
let waiting = null;
const finish = () => { s.destroy(); console.log(JSON.stringify(out)); process.exit(0); };
const ask = () => {
  if (Date.now() > end) return finish();
  s.write('GET / HTTP/1.1\\r\\nHost: s\\r\\n\\r\\n');
  waiting = setTimeout(() => { out.failedAt = Date.now(); finish(); }, 500);
};
s.on('connect', ask);
s.on('data', (d) => {
  buf += d;
  if (!/\\r\\n\\r\\n[^]*\\n/.test(buf)) return; // headers and the one-line body
  buf = '';
  clearTimeout(waiting);
  out.oks.push(Date.now());
  setTimeout(ask, 100);
});
s.on('close', () => { out.closed = true; finish(); });
s.on('error', () => {});
`;

/** The drop events of netpol's log from the `from`-th on. */
function dropEvents(np: { ta: { agent: { logs: { read(name: string): unknown[] } } } }, from = 0): DropEvent[] {
  return np.ta.agent.logs
    .read('netpol')
    .slice(from)
    .map((x) => (x as { event?: DropEvent }).event)
    .filter((e): e is DropEvent => e !== undefined);
}

test("a connection's packets after the first are decided by its sockets' records (pods isolated both ways) or by the policy's verdict alone (one way); a new generation that denies it cuts the established connection, its drop named", async (t) => {
  const tb = await Testbed.create(t, 'kbpfnp');
  const np = await runNetpol(t, tb);
  const s = await tb.addPod({ sidecar: false });
  const c = await tb.addPod({ sidecar: false });
  const pods = [podIdentity(s, 'ns', { app: 's' }), podIdentity(c, 'ns', { app: 'c' })];
  // s takes c on :80 (or nobody); c sends to s:80. `both`: both pods isolated both ways as well
  // (s sends nothing, c takes nothing), so replies pass by the connection's records only; else
  // s's egress and c's ingress are unrestricted and the connection needs no record.
  const gen = (from: string, both: boolean): PolicyInput => ({
    pods,
    namespaces: [],
    policies: [
      policy('ns', 's', {
        podSelector: { matchLabels: { app: 's' } },
        ...(both ? { policyTypes: ['Ingress', 'Egress'], egress: [] } : { policyTypes: ['Ingress'] }),
        ingress: [{ from: [{ podSelector: { matchLabels: { app: from } } }], ports: [{ port: APP_PORT }] }],
      }),
      policy('ns', 'c', {
        podSelector: { matchLabels: { app: 'c' } },
        ...(both ? { policyTypes: ['Ingress', 'Egress'], ingress: [] } : { policyTypes: ['Egress'] }),
        egress: [{ to: [{ podSelector: { matchLabels: { app: 's' } } }], ports: [{ port: APP_PORT }] }],
      }),
    ],
  });

  for (const both of [true, false]) {
    const way = both ? 'isolated both ways' : 'isolated one way';
    np.maps.apply(gen('c', both));
    assert.ok(await reaches(tb, c, s.ip), `${way}: c -> s:80 (and its replies) pass`);
    if (both) assert.ok(!(await reaches(tb, s, c.ip)), "s -> c:80: s's egress allows nothing");

    const run = tb.execInPod(c, process.execPath, ['-e', KEEPALIVE_CLIENT, s.ip, '6000'], { timeoutMs: 20_000 });
    await sleep(800);
    const s0 = np.maps.stats();
    await sleep(1200);
    const s1 = np.maps.stats();
    const socket = s1.socket - s0.socket;
    const conn = s1.conn - s0.conn;
    t.diagnostic(`${way}, over 1.2 s: ${conn} known-connection packets, ${socket} decided by sockets' records`);
    assert.equal(s1.allowed, s0.allowed, `${way}: no first packets (the one connection)`);
    if (both) {
      assert.ok(socket >= 20n, `the requests' packets were decided by the sockets' records (${socket})`);
      assert.equal(conn, socket, 'every known-connection packet was (none went to a table)');
    } else {
      assert.ok(conn >= 20n, `the requests' packets passed on the policy's verdict (${conn})`);
      assert.equal(socket, 0n, 'no records: the replies pass the unrestricted directions');
    }

    const logged = np.ta.agent.logs.read('netpol').length;
    const cutAt = Date.now();
    np.maps.apply(gen('nobody', both));
    const r = await run;
    const out = JSON.parse(r.stdout) as { oks: number[]; failedAt: number | null; closed: boolean };
    t.diagnostic(`${way}: ${out.oks.length} answers, cut at ${cutAt}, failed at ${out.failedAt}`);
    assert.equal(out.closed, false, 'the server kept the connection open');
    assert.ok(out.oks.filter((x) => x < cutAt).length >= 10, `${way}: answers on the one connection before`);
    assert.ok(out.failedAt !== null && out.failedAt >= cutAt, `${way}: a request went unanswered after the change`);
    assert.equal(out.oks.filter((x) => x > cutAt + 50).length, 0, `${way}: no answer after the change`);
    const s2 = np.maps.stats();
    if (both) assert.ok(s2.rechecked > s1.rechecked, 'the connection was checked again in the new generation');
    assert.ok(s2.dropped > s1.dropped);

    let drop: DropEvent | undefined;
    for (let i = 0; i < 50 && !drop; i++) {
      drop = dropEvents(np, logged).find(
        (e) => e.direction === 0 && e.dport === APP_PORT && addrText(e.saddr, e.family) === c.ip,
      );
      if (!drop) await sleep(100);
    }
    assert.ok(drop, `${way}: a drop event for the connection's packet at s`);
    assert.equal(drop.policy, 'ns/s', 'named by the policy selecting s for ingress');
    assert.equal(drop.tcp_flags & 0x02, 0, 'a packet of the established connection (no SYN)');
  }
  assert.ok((np.maps.drops().get('ns/s') ?? 0n) > 0n, 'counted for ns/s');
});

async function kbpf(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    stdout: (x: string) => {
      out += x;
    },
    stderr: (x: string) => {
      err += x;
    },
    env: {},
  });
  return { code, out, err };
}

function jsonFlows(out: string): Flow[] {
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { flow: Flow }).flow);
}

test("netpol's drops in kbpf flows: DROPPED with POLICY_DENIED and the policy's name, merged with flow-monitor's record of the connection; --verdict DROPPED filters them", async (t) => {
  const tb = await Testbed.create(t, 'kbpfnp');
  const np = await runNetpol(t, tb);
  const { web, client, other, pods } = await shopPods(tb);
  const input: PolicyInput = {
    pods,
    namespaces: [],
    policies: [
      webIngress(),
      policy('shop', 'other-egress', {
        podSelector: { matchLabels: { app: 'other' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: APP_PORT }] }],
      }),
    ],
  };
  const fm = await runFlowMonitor(t, tb.parentCgroup, { agent: { ta: np.ta }, name: 'flows', pods: input.pods });
  np.maps.apply(input);
  const socket = join(tb.dir, 'agent.sock');
  const server = await startApiServer(np.ta.agent, socket);
  t.after(() => server.close());
  const podsFile = join(tb.dir, 'pods.yaml');
  writeFileSync(podsFile, stringify({ pods: input.pods }));

  assert.ok(await reaches(tb, client, web.ip), 'client -> web:80 is allowed');
  assert.ok(!(await reaches(tb, other, web.ip)), "other -> web:80: other's egress allows it, web's ingress does not");
  assert.ok(!(await reaches(tb, other, client.ip)), "other -> client:80: other's egress does not allow it");
  const denied = (f: Flow, to: Pod) => f.IP.source === other.ip && f.IP.destination === to.ip;
  // flow-monitor's record of each denied connection (reported when the client gives up)
  for (const to of [web, client])
    await fm.waitFor((f) => denied(f, to) && f.state === 'CLOSED' && !f.flow_id.includes('/netpol/'), 10_000);

  const k = (...args: string[]) => kbpf(['--socket', socket, 'flows', '--pods', podsFile, '--last', '1000', ...args]);
  const all = await k('-o', 'json');
  assert.equal(all.code, 0, all.err);
  const flows = jsonFlows(all.out);
  const ok = flows.filter((f) => f.IP.source === client.ip && f.IP.destination === web.ip);
  assert.ok(ok.length > 0 && ok.every((f) => f.verdict === 'FORWARDED'), JSON.stringify(ok));

  const dropped = await k('-o', 'json', '--verdict', 'DROPPED');
  assert.equal(dropped.code, 0, dropped.err);
  const drops = jsonFlows(dropped.out);
  assert.ok(drops.length > 0 && drops.every((f) => f.verdict === 'DROPPED'), dropped.out);
  assert.ok(!drops.some((f) => f.IP.source === client.ip), 'the allowed connection is not DROPPED');
  for (const [to, dir, name] of [
    [web, 'INGRESS', 'shop/web-ingress'],
    [client, 'EGRESS', 'shop/other-egress'],
  ] as const) {
    const mine = drops.filter((f) => denied(f, to));
    const fromNetpol = mine.find((f) => f.flow_id.includes('/netpol/'));
    const fromMonitor = mine.find((f) => !f.flow_id.includes('/netpol/'));
    assert.ok(fromNetpol, `netpol's record of other -> ${to.name}: ${dropped.out}`);
    assert.equal(fromNetpol.drop_reason_desc, 'POLICY_DENIED');
    assert.equal(fromNetpol.policy_name, name);
    assert.equal(fromNetpol.traffic_direction, dir);
    assert.equal(fromNetpol.l4.TCP?.destination_port, APP_PORT);
    assert.equal(fromNetpol.l4.TCP?.flags?.SYN, true);
    assert.deepEqual([fromNetpol.source.pod_name, fromNetpol.destination.pod_name], [other.name, to.name]);
    assert.ok(fromMonitor, `flow-monitor's record of other -> ${to.name}, with the policy's verdict: ${dropped.out}`);
    assert.equal(fromMonitor.drop_reason_desc, 'POLICY_DENIED');
    assert.equal(fromMonitor.policy_name, name);
    assert.equal(fromMonitor.l4.TCP?.source_port, fromNetpol.l4.TCP?.source_port, 'the same connection');
  }
  const table = await k('--verdict', 'DROPPED', '--from-pod', `shop/${other.name}`);
  assert.match(table.out, /DROPPED.*POLICY_DENIED shop\/web-ingress/);
});
