// mesh-accel on a real kernel with real HAProxy sidecars, run through the real agent.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { runMesh } from '../../testbed/mesh/mesh-node.js';
import { APP_PORT, APP_PORT_2, type Pod, Testbed } from '../../testbed/mesh/testbed.js';
import { stillListed } from '../../testbed/netns.js';

test('app to app through both sidecars on the eBPF path: no iptables rule, sidecars see the original destination, bytes go through the sockhash', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  assert.deepEqual(await tb.natRules(a), []);
  assert.deepEqual(await tb.natRules(b), []);

  const before = mesh.maps.stats();
  const r = await tb.get(a, `http://${b.ip}:${APP_PORT}/`);
  assert.ok(r.ok, `request failed: ${r.code} ${r.err}`);
  // A's sidecar (outbound) and B's sidecar (inbound) both saw B's address as the destination
  assert.match(
    r.body,
    new RegExp(`^app=pod1 port=${APP_PORT} outbound=${b.ip}:${APP_PORT} inbound=${b.ip}:${APP_PORT}$`, 'm'),
  );
  assert.equal(r.peer, '127.0.0.6', "B's sidecar connected to the app");
  const s = mesh.maps.stats();
  assert.ok(s.connect_out > before.connect_out, 'app connection went to the local sidecar');
  assert.ok(s.connect_peer > before.connect_peer, 'sidecar connection went to the peer inbound port');
  assert.ok(
    s.origdst - before.origdst >= 2n,
    `both sidecars got SO_ORIGINAL_DST from the map (${s.origdst - before.origdst})`,
  );
  assert.ok(
    s.msg_redirect_peer > before.msg_redirect_peer,
    'sidecar-to-sidecar bytes went through the sockhash redirect',
  );
  assert.ok(
    s.msg_redirect - s.msg_redirect_peer > before.msg_redirect - before.msg_redirect_peer,
    'app<->sidecar bytes went through the sockhash redirect',
  );
  assert.ok(s.sock_added - before.sock_added >= 6n, `sockets in the sockhash: ${s.sock_added - before.sock_added}`);

  // many requests, each on a new connection: all go through, none is dropped
  for (let i = 0; i < 20; i++) {
    const x = await tb.get(a, `http://${b.ip}/r${i}`);
    assert.ok(x.ok && x.body.includes(`inbound=${b.ip}:80`), `request ${i}: ${x.code} ${x.err}`);
  }
  // and back, B to A
  const back = await tb.get(b, `http://${a.ip}/`);
  assert.match(back.body, new RegExp(`app=pod0 port=80 outbound=${a.ip}:80 inbound=${a.ip}:80`));
});

test('the first request to a newly declared pod succeeds, both ways', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const c = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  // no warm-up, no retry: the very first connection from and to the new pod
  const first = await tb.get(c, `http://${a.ip}/`);
  assert.ok(first.ok, `${first.code} ${first.err}`);
  assert.match(first.body, new RegExp(`outbound=${a.ip}:80 inbound=${a.ip}:80`));
  const d = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const toNew = await tb.get(a, `http://${d.ip}/`);
  assert.ok(toNew.ok, `${toNew.code} ${toNew.err}`);
  assert.match(toNew.body, new RegExp(`app=pod2 port=80 outbound=${d.ip}:80 inbound=${d.ip}:80`));
});

test('excluded ports and CIDRs bypass the sidecar; include lists limit what is captured', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p, { excludeOutboundPorts: [APP_PORT_2] }) });
  const c = await tb.addPod({ beforeStart: (p) => mesh.declare(p, { excludeOutboundCidrs: [`${b.ip}/32`] }) });
  const d = await tb.addPod({ beforeStart: (p) => mesh.declare(p, { includeOutboundCidrs: [`${tb.subnet}.128/25`] }) });

  const meshed = await tb.get(a, `http://${b.ip}:${APP_PORT}/`);
  assert.match(meshed.body, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80`));
  const excludedPort = await tb.get(a, `http://${b.ip}:${APP_PORT_2}/`);
  assert.ok(excludedPort.ok, excludedPort.err);
  assert.match(excludedPort.body, new RegExp(`^app=pod0 port=${APP_PORT_2} outbound= inbound=$`, 'm'));

  const excludedCidr = await tb.get(c, `http://${b.ip}/`);
  assert.match(excludedCidr.body, /^app=pod0 port=80 outbound= inbound=$/m);
  const notExcluded = await tb.get(c, `http://${a.ip}/`);
  assert.match(notExcluded.body, new RegExp(`outbound=${a.ip}:80 inbound=${a.ip}:80`));

  // d only captures 10.x.y.128/25: the pods (.10-.13) are outside it
  const notIncluded = await tb.get(d, `http://${b.ip}/`);
  assert.match(notIncluded.body, /^app=pod0 port=80 outbound= inbound=$/m);
  assert.ok(mesh.maps.stats().connect_excluded >= 3n);
});

// one keep-alive connection, a request every 600 ms: prints "i localPort body" per request
const KEEPALIVE_CLIENT = `
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = () => new Promise((res, rej) => {
  const rq = http.get(process.argv[1], { agent, timeout: 3000 }, (r) => {
    const port = r.socket.localPort; let b = '';
    r.on('data', (d) => (b += d)); r.on('end', () => res(port + ' ' + b.trim()));
  });
  rq.on('timeout', () => rq.destroy(new Error('timeout'))); rq.on('error', rej);
});
(async () => {
  for (let i = 0; i < Number(process.argv[2]); i++) {
    try { console.log(i, await get()); } catch (e) { console.log(i, 'ERR', e.message); }
    await new Promise((r) => setTimeout(r, 600));
  }
  process.exit(0);
})();
`;

test('L4 sidecars (tcp mode, no HTTP parsing): the eBPF path carries the bytes through both, SO_ORIGINAL_DST alone finds the destination', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ sidecarProtocol: 'tcp', beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ sidecarProtocol: 'tcp', beforeStart: (p) => mesh.declare(p) });
  const before = mesh.maps.stats();
  const r = await tb.get(a, `http://${b.ip}:${APP_PORT_2}/`);
  assert.ok(r.ok, `request failed: ${r.code} ${r.err}`);
  // no x-mesh headers (L4 sidecars add none), but B's sidecar is who connected to the app, on
  // the port the client asked for: both sidecars took the destination from SO_ORIGINAL_DST
  assert.match(r.body, new RegExp(`^app=pod1 port=${APP_PORT_2} outbound= inbound=$`, 'm'));
  assert.equal(r.peer, '127.0.0.6');
  const s = mesh.maps.stats();
  assert.ok(
    s.origdst - before.origdst >= 2n,
    `both sidecars got SO_ORIGINAL_DST from the map (${s.origdst - before.origdst})`,
  );
  assert.ok(
    s.msg_redirect_peer > before.msg_redirect_peer,
    'sidecar-to-sidecar bytes went through the sockhash redirect',
  );
  assert.ok(
    s.msg_redirect - s.msg_redirect_peer > before.msg_redirect - before.msg_redirect_peer,
    'app<->sidecar bytes went through the sockhash redirect',
  );
});

test('the iptables path of the test bed: istio-init REDIRECT rules carry the same request through both sidecars', async (t) => {
  const tb = await Testbed.create(t);
  const a = await tb.addPod();
  const b = await tb.addPod();
  const direct = await tb.get(a, `http://${b.ip}/`);
  assert.match(direct.body, /^app=pod1 port=80 outbound= inbound=$/m);
  assert.equal(direct.peer, a.ip, 'no sidecar: the app sees the client pod');
  await tb.enableIptables(a);
  await tb.enableIptables(b);
  assert.ok((await tb.natRules(a)).some((l) => /REDIRECT --to-ports 15001/.test(l)));
  const r = await tb.get(a, `http://${b.ip}/`);
  assert.ok(r.ok, r.err);
  assert.match(r.body, new RegExp(`^app=pod1 port=80 outbound=${b.ip}:80 inbound=${b.ip}:80$`, 'm'));
  await tb.disableIptables(a);
  await tb.disableIptables(b);
  assert.deepEqual(await tb.natRules(a), []);
});

test('the test bed pins a running pod to CPUs (setPodCpus): every thread of its processes, and what starts in it later; null undoes it', async (t) => {
  const tb = await Testbed.create(t);
  const a = await tb.addPod();
  // the CPUs each thread of the pod's processes may run on, from /proc/PID/task/TID/status
  const allowed = () => {
    const pids = readFileSync(`${a.cgroup}/cgroup.procs`, 'utf8').split('\n').filter(Boolean);
    assert.ok(pids.length >= 2, `app and sidecar in the pod's cgroup: ${pids.join(' ')}`);
    return new Set(
      pids.flatMap((pid) =>
        readdirSync(`/proc/${pid}/task`).map(
          (tid) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1],
        ),
      ),
    );
  };
  const all = `0-${availableParallelism() - 1}`;
  const everywhere = availableParallelism() === 1 ? '0' : all;
  assert.deepEqual([...allowed()], [everywhere]);
  await tb.setPodCpus(a, '0');
  assert.deepEqual([...allowed()], ['0']);
  await tb.restartSidecar(a);
  assert.deepEqual([...allowed()], ['0'], "a restarted sidecar starts on the pod's CPUs");
  const inPod = await tb.execInPod(a, 'grep', ['Cpus_allowed_list', '/proc/self/status']);
  assert.match(inPod.stdout, /Cpus_allowed_list:\s*0$/m);
  assert.ok((await tb.get(a, `http://${a.ip}/`)).ok, 'the pinned pod still answers');
  await tb.setPodCpus(a, null);
  assert.deepEqual([...allowed()], [everywhere]);
});

test('rm of the instance restores direct traffic at once, keeps existing connections working, and leaves no program, map or link', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const r = await tb.get(a, `http://${b.ip}/`);
  assert.match(r.body, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80`));
  const ids = mesh.ids();
  assert.ok(ids.prog.length >= 8 && ids.map.length >= 6 && ids.link.length >= 8, `pinned: ${JSON.stringify(ids)}`);

  // a keep-alive connection that lives across the rm (its bytes went through the sockhash)
  const client = tb.execInPod(a, 'node', ['-e', KEEPALIVE_CLIENT, `http://${b.ip}/`, '5'], { timeoutMs: 20_000 });
  await new Promise((res) => setTimeout(res, 900));
  await mesh.remove();
  const out = await client;
  const lines = out.stdout.trim().split('\n');
  assert.equal(lines.length, 5, out.stdout + out.stderr);
  const ports = new Set(lines.map((l) => l.split(' ')[1]));
  assert.equal(ports.size, 1, `one connection throughout: ${out.stdout}`);
  for (const l of lines)
    assert.match(l, new RegExp(`^\\d \\d+ app=pod1 port=80 outbound=${b.ip}:80 inbound=${b.ip}:80$`), out.stdout);

  const direct = await tb.get(a, `http://${b.ip}/`);
  assert.ok(direct.ok, direct.err);
  assert.match(direct.body, /^app=pod1 port=80 outbound= inbound=$/m);
  assert.deepEqual(await stillListed(ids), { prog: [], map: [], link: [] });
});

// a DNS proxy stand-in on 127.0.0.1:PORT (and [::1]:PORT with a second argument "6"), UDP and TCP
const DNS_PROXY = `
const dgram = require('node:dgram');
for (const [fam, host] of [['udp4', '127.0.0.1'], ...(process.argv[2] === '6' ? [['udp6', '::1']] : [])]) {
  const s = dgram.createSocket(fam);
  s.on('message', (m, r) => s.send('proxied:' + m, r.port, r.address));
  s.bind(Number(process.argv[1]), host);
  require('node:net').createServer((c) => c.on('data', (d) => c.end('proxied:' + d))).listen(Number(process.argv[1]), host);
}
`;
const DNS_CLIENT = `
const dgram = require('node:dgram');
const [addr, how] = [process.argv[1], process.argv[2]];
const t = setTimeout(() => { console.log(JSON.stringify({ timeout: true })); process.exit(1); }, 3000);
if (how === 'tcp') {
  const c = require('node:net').connect(53, addr, () => c.write('q1'));
  let b = '';
  c.on('data', (d) => (b += d));
  c.on('end', () => {
    clearTimeout(t);
    console.log(JSON.stringify({ reply: b, from: c.remoteAddress + ':' + c.remotePort, peer: { address: c.remoteAddress, port: c.remotePort } }));
  });
  c.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1); });
} else {
  const s = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m, r) => {
    clearTimeout(t);
    console.log(JSON.stringify({ reply: String(m), from: r.address + ':' + r.port, peer: how === 'connected' ? s.remoteAddress() : null }));
    s.close();
  });
  if (how === 'connected') s.connect(53, addr, () => s.send('q1'));
  else s.send('q1', 53, addr);
}
`;

test('DNS capture (istio mode): UDP and TCP 53 go to the DNS proxy on 127.0.0.1:15053 and replies come from the original server', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  await startDnsProxy(tb, a, false);
  const server = `${tb.subnet}.250`; // no such host: only the proxy can answer
  for (const how of ['unconnected', 'connected', 'tcp']) {
    const r = await tb.execInPod(a, 'node', ['-e', DNS_CLIENT, server, how]);
    assert.equal(r.code, 0, `${how}: ${r.stdout} ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { reply: string; from: string; peer: { address: string; port: number } | null };
    assert.equal(out.reply, 'proxied:q1', how);
    assert.equal(out.from, `${server}:53`, how);
    if (how !== 'unconnected')
      assert.deepEqual({ address: out.peer!.address, port: out.peer!.port }, { address: server, port: 53 });
  }
  const s = mesh.maps.stats();
  assert.ok(
    s.dns_redirect >= 3n && s.dns_restore >= 2n && s.peername >= 2n,
    JSON.stringify({ redirect: String(s.dns_redirect), restore: String(s.dns_restore) }),
  );
});

test('linkerd mode: the proxy bind on 127.0.0.1:4140 is rewritten so app traffic reaches it, sidecar-to-sidecar via 4143', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ mode: 'linkerd', beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ mode: 'linkerd', beforeStart: (p) => mesh.declare(p) });
  const ss = await tb.execInPod(a, 'ss', ['-Htln']);
  assert.match(ss.stdout, /0\.0\.0\.0:4140\s/, ss.stdout);
  assert.doesNotMatch(ss.stdout, /127\.0\.0\.1:4140\s/);
  const r = await tb.get(a, `http://${b.ip}/`);
  assert.ok(r.ok, `${r.code} ${r.err}`);
  assert.match(r.body, new RegExp(`app=pod1 port=80 outbound=${b.ip}:80 inbound=${b.ip}:80`));
  const s = mesh.maps.stats();
  assert.ok(s.bind_rewrite >= 2n && s.connect_peer >= 1n && s.msg_redirect_peer >= 1n);
});

for (const mode of ['kuma', 'osm'] as const) {
  test(`${mode} mode: its sidecar uid and ports (inbound ${mode === 'osm' ? 15003 : 15006}) carry app traffic through both sidecars`, async (t) => {
    const tb = await Testbed.create(t);
    const mesh = await runMesh(t, tb);
    const a = await tb.addPod({ mode, beforeStart: (p) => mesh.declare(p) });
    const b = await tb.addPod({ mode, beforeStart: (p) => mesh.declare(p) });
    const r = await tb.get(a, `http://${b.ip}/`);
    assert.ok(r.ok, `${r.code} ${r.err}`);
    assert.match(r.body, new RegExp(`app=pod1 port=80 outbound=${b.ip}:80 inbound=${b.ip}:80`));
    const s = mesh.maps.stats();
    assert.ok(s.connect_out >= 1n && s.connect_peer >= 1n && s.origdst >= 2n && s.msg_redirect_peer >= 1n);
  });
}

test('redirect_msgs=0 (config): connect-time redirection only, nothing enters the sockhash, traffic still flows', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb, 'mesh-nomsg', undefined, { redirect_msgs: '0' });
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const r = await tb.get(a, `http://${b.ip}/`);
  assert.match(r.body, new RegExp(`app=pod1 port=80 outbound=${b.ip}:80 inbound=${b.ip}:80`));
  const s = mesh.maps.stats();
  assert.equal(s.sock_added, 0n);
  assert.equal(s.msg_redirect, 0n);
  assert.ok(s.connect_out >= 1n && s.connect_peer >= 1n && s.origdst >= 2n);
});

test('standalone declarations: the declare CLI applies a pods file to a running instance, lists and removes them', async (t) => {
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const { run } = await import('../../testbed/netns.js');
  const cli = fileURLToPath(new URL('../../apps/mesh-accel/declare.js', import.meta.url));
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb, 'mesh');
  const bpffs = mesh.ta.paths.bpffsDir;
  const declare = async (pod: { ip: string; cgroup: string }, verb = 'apply') => {
    const file = join(tb.dir, `${pod.ip}.yaml`);
    writeFileSync(
      file,
      `pods:\n  - ip: ${pod.ip}\n    cgroup: ${pod.cgroup}\n    mode: istio\n    excludeOutboundPorts: [${APP_PORT_2}]\n`,
    );
    const r = await run('node', [cli, '--bpffs', bpffs, '--instance', 'mesh', verb, file]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const a = await tb.addPod({ beforeStart: (p) => declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => declare(p) });
  const listed = await run('node', [cli, '--bpffs', bpffs, 'list']);
  assert.equal(listed.stdout.trim().split('\n').length, 2, listed.stdout + listed.stderr);
  const r = await tb.get(a, `http://${b.ip}/`);
  assert.match(r.body, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80`));
  assert.match((await tb.get(a, `http://${b.ip}:${APP_PORT_2}/`)).body, /outbound= inbound=$/m);
  assert.match(await declare(a, 'delete'), /removed 1 pod/);
  assert.match((await tb.get(a, `http://${b.ip}/`)).body, /^app=pod1 port=80 outbound= inbound=$/m);
  const stats = await run('node', [cli, '--bpffs', bpffs, 'stats']);
  assert.match(stats.stdout, /^connect_out: [1-9]/m);
});

test('a meshed pod (eBPF) talks to a pod that is meshed with iptables: the two data paths coexist, SO_ORIGINAL_DST falls back to the kernel', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const c = await tb.addPod(); // not declared: as if on another node, meshed the iptables way
  await tb.enableIptables(c);
  const before = mesh.maps.stats();
  const r = await tb.get(a, `http://${c.ip}/`);
  assert.ok(r.ok, `${r.code} ${r.err}`);
  assert.match(r.body, new RegExp(`^app=pod1 port=80 outbound=${c.ip}:80 inbound=${c.ip}:80$`, 'm'));
  const s = mesh.maps.stats();
  assert.equal(s.connect_peer, before.connect_peer, 'no shortcut to an undeclared pod');
  assert.ok(s.origdst_miss > before.origdst_miss, "C's sidecar got its answer from conntrack");
  // and back: C's app through its iptables sidecar to A (no inbound capture in A: A's app answers)
  const back = await tb.get(c, `http://${a.ip}/`);
  assert.match(back.body, new RegExp(`^app=pod0 port=80 outbound=${a.ip}:80 inbound=$`, 'm'));
});

test('upgrade of the running instance under traffic: a live keep-alive connection and new connections all succeed, pods stay declared', async (t) => {
  const tb = await Testbed.create(t);
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const client = tb.execInPod(a, 'node', ['-e', KEEPALIVE_CLIENT, `http://${b.ip}/`, '6'], { timeoutMs: 20_000 });
  const fresh: Promise<{ ok: boolean; body: string; err: string }>[] = [];
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      fresh.push(tb.get(a, `http://${b.ip}/`));
      await new Promise((res) => setTimeout(res, 50));
    }
  })();
  await new Promise((res) => setTimeout(res, 1000));
  const st = await mesh.ta.agent.upgrade(mesh.name, { image: mesh.ref, config: { redirect_msgs: '1' } });
  await new Promise((res) => setTimeout(res, 1000));
  stop = true;
  await loop;
  const out = await client;
  const lines = out.stdout.trim().split('\n');
  assert.equal(lines.length, 6, out.stdout + out.stderr);
  assert.equal(new Set(lines.map((l) => l.split(' ')[1])).size, 1, out.stdout);
  for (const l of lines) assert.match(l, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80$`), out.stdout);
  const results = await Promise.all(fresh);
  assert.ok(results.length >= 10);
  for (const r of results) assert.match(r.body, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80`), `${r.err}`);
  assert.equal(st.revision, 2);
  assert.equal(st.phase, 'running');
  // the pods were carried over with the maps: a new connection after the upgrade is meshed
  const after = await tb.get(b, `http://${a.ip}/`);
  assert.match(after.body, new RegExp(`outbound=${a.ip}:80 inbound=${a.ip}:80`));
});

test('IPv6 (connect6): app to app over IPv6 through both sidecars (IP6T_SO_ORIGINAL_DST), sockhash on IPv6; IPv4 and v4-mapped on the same pods take the IPv4 path; IPv6 CIDRs exclude', async (t) => {
  const tb = await Testbed.create(t, 'kbpfmesh', { ipv6: true });
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  assert.ok(a.ip6 && b.ip6);
  assert.deepEqual(
    mesh.maps
      .pods6()
      .map((p) => p.ip6)
      .sort(),
    [a.ip6, b.ip6].sort(),
  );
  assert.deepEqual(await tb.natRules(a), []);

  const before = mesh.maps.stats();
  const r = await tb.get(a, `http://[${b.ip6}]:${APP_PORT}/`);
  assert.ok(r.ok, `request failed: ${r.code} ${r.err}`);
  // both IPv6 sidecars got B's IPv6 address from getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)
  // (without the answer they close the connection; getsockname would say [A]:15001 / [B]:15006)
  assert.match(
    r.body,
    new RegExp(
      `^app=pod1 port=${APP_PORT} outbound=\\[${b.ip6}\\]:${APP_PORT} inbound=\\[${b.ip6}\\]:${APP_PORT}$`,
      'm',
    ),
  );
  const s = mesh.maps.stats();
  assert.ok(s.connect_out > before.connect_out, 'app connection went to the local sidecar');
  assert.ok(s.connect_peer > before.connect_peer, 'sidecar connection went to the peer inbound port');
  assert.ok(
    s.origdst - before.origdst >= 2n,
    `both sidecars got IP6T_SO_ORIGINAL_DST from the map (${s.origdst - before.origdst})`,
  );
  assert.ok(s.msg_redirect_peer > before.msg_redirect_peer, 'sidecar-to-sidecar bytes went through the IPv6 sockhash');
  assert.ok(s.sock_added - before.sock_added >= 6n, `sockets in the sockhash: ${s.sock_added - before.sock_added}`);
  for (let i = 0; i < 10; i++) {
    const x = await tb.get(a, `http://[${b.ip6}]/r${i}`);
    assert.ok(x.ok && x.body.includes(`inbound=[${b.ip6}]:80`), `request ${i}: ${x.code} ${x.err}`);
  }
  const back = await tb.get(b, `http://[${a.ip6}]/`);
  assert.match(back.body, new RegExp(`^app=pod0 port=80 outbound=\\[${a.ip6}\\]:80 inbound=\\[${a.ip6}\\]:80$`, 'm'));

  // IPv4 on the same (dual-stack) pods: HAProxy's IPv4 listeners, as before
  const v4 = await tb.get(a, `http://${b.ip}/`);
  assert.ok(v4.ok, `${v4.code} ${v4.err}`);
  assert.match(v4.body, new RegExp(`^app=pod1 port=80 outbound=${b.ip}:80 inbound=${b.ip}:80$`, 'm'));
  // a v4-mapped destination on an AF_INET6 socket (curl to [::ffff:B]) behaves like IPv4
  const m0 = mesh.maps.stats();
  const mapped = await tb.get(a, `http://[::ffff:${b.ip}]/`);
  assert.ok(mapped.ok, `${mapped.code} ${mapped.err}`);
  assert.match(mapped.body, new RegExp(`^app=pod1 port=80 outbound=${b.ip}:80 inbound=${b.ip}:80$`, 'm'));
  const m1 = mesh.maps.stats();
  assert.ok(
    m1.connect_out > m0.connect_out && m1.msg_redirect > m0.msg_redirect,
    'the v4-mapped connection was redirected and went through the sockhash',
  );

  // IPv6 ranges: c excludes B's IPv6 address; d includes only an IPv4 range (so no IPv6 capture)
  const c = await tb.addPod({ beforeStart: (p) => mesh.declare(p, { excludeOutboundCidrs: [`${b.ip6}/128`] }) });
  const d = await tb.addPod({ beforeStart: (p) => mesh.declare(p, { includeOutboundCidrs: [`${tb.subnet}.0/24`] }) });
  assert.match((await tb.get(c, `http://[${b.ip6}]/`)).body, /^app=pod1 port=80 outbound= inbound=$/m);
  assert.match(
    (await tb.get(c, `http://[${a.ip6}]/`)).body,
    new RegExp(`outbound=\\[${a.ip6}\\]:80 inbound=\\[${a.ip6}\\]:80`),
  );
  assert.match((await tb.get(c, `http://${b.ip}/`)).body, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80`));
  assert.match((await tb.get(d, `http://[${b.ip6}]/`)).body, /^app=pod1 port=80 outbound= inbound=$/m);
  assert.match((await tb.get(d, `http://${b.ip}/`)).body, new RegExp(`outbound=${b.ip}:80 inbound=${b.ip}:80`));
});

/** Starts the DNS proxy stand-in in the pod (as the sidecar uid) and waits for its listeners. */
async function startDnsProxy(tb: Testbed, pod: Pod, ipv6: boolean): Promise<void> {
  const proxy = tb.spawnInPod(pod, 'node', ['-e', DNS_PROXY, '15053', ...(ipv6 ? ['6'] : [])], {
    uid: pod.sidecar.uid,
  });
  assert.ok(proxy.pid);
  const want = (out: string) =>
    out.split('127.0.0.1:15053').length === 3 && (!ipv6 || out.split('[::1]:15053').length === 3); // udp and tcp
  let ready = false;
  for (let i = 0; i < 200 && !ready; i++) {
    ready = want((await tb.execInPod(pod, 'ss', ['-Htunl'])).stdout);
    if (!ready) await new Promise((res) => setTimeout(res, 30));
  }
  assert.ok(ready, `the DNS proxy never listened on 127.0.0.1:15053${ipv6 ? ' and [::1]:15053' : ''}`);
}

test('DNS capture over IPv6 (sendmsg6 / recvmsg6 / connect6): UDP and TCP 53 to an IPv6 server go to [::1]:15053, v4-mapped ones to 127.0.0.1:15053; replies come from the original server', async (t) => {
  const tb = await Testbed.create(t, 'kbpfmesh', { ipv6: true });
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  await startDnsProxy(tb, a, true);
  const before = mesh.maps.stats();
  const server6 = `${tb.subnet6}::fa`; // no such host: only the proxy can answer
  const mapped = `::ffff:${tb.subnet}.250`;
  for (const [server, how] of [
    [server6, 'unconnected'],
    [server6, 'connected'],
    [server6, 'tcp'],
    [mapped, 'unconnected'],
    [mapped, 'connected'],
  ] as const) {
    const r = await tb.execInPod(a, 'node', ['-e', DNS_CLIENT, server, how]);
    assert.equal(r.code, 0, `${server} ${how}: ${r.stdout} ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { reply: string; from: string; peer: { address: string; port: number } | null };
    assert.equal(out.reply, 'proxied:q1', `${server} ${how}`);
    assert.equal(out.from, `${server}:53`, `${server} ${how}: the reply's source is the server the app asked`);
    if (how !== 'unconnected')
      assert.deepEqual(
        { address: out.peer!.address, port: out.peer!.port },
        { address: server, port: 53 },
        `${server} ${how}`,
      );
  }
  const s = mesh.maps.stats();
  assert.ok(s.dns_redirect - before.dns_redirect >= 5n, `redirected: ${s.dns_redirect - before.dns_redirect}`);
  assert.ok(s.dns_restore - before.dns_restore >= 3n, `restored: ${s.dns_restore - before.dns_restore}`);
  // the proxy's own upstream query (sidecar uid) is not captured: it fails to reach the (absent) server
  const own = await tb.execInPod(a, 'node', ['-e', DNS_CLIENT, server6, 'unconnected'], { uid: a.sidecar.uid });
  assert.notEqual(own.code, 0, `the sidecar's own DNS query was captured: ${own.stdout}`);
});

test('linkerd mode over IPv6 (bind6): the proxy bind on [::1]:4140 becomes [::]:4140 and IPv6 app traffic reaches it', async (t) => {
  const tb = await Testbed.create(t, 'kbpfmesh', { ipv6: true });
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ mode: 'linkerd', beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ mode: 'linkerd', beforeStart: (p) => mesh.declare(p) });
  const ss = await tb.execInPod(a, 'ss', ['-Htln6']);
  assert.match(ss.stdout, /\[::\]:4140\s/, ss.stdout);
  assert.doesNotMatch(ss.stdout, /\[::1\]:4140\s/);
  const r = await tb.get(a, `http://[${b.ip6}]/`);
  assert.ok(r.ok, `${r.code} ${r.err}`);
  assert.match(r.body, new RegExp(`^app=pod1 port=80 outbound=\\[${b.ip6}\\]:80 inbound=\\[${b.ip6}\\]:80$`, 'm'));
  const s = mesh.maps.stats();
  assert.ok(s.bind_rewrite >= 4n, `bind rewrites (2 pods x IPv4 + IPv6): ${s.bind_rewrite}`);
});

test('IPv6-only pods (no IPv4 address): declared by ip6 alone, app to app through both sidecars with the sockhash, removal restores direct traffic', async (t) => {
  const tb = await Testbed.create(t, 'kbpfmesh', { ipv6Only: true });
  const mesh = await runMesh(t, tb);
  const a = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const b = await tb.addPod({ beforeStart: (p) => mesh.declare(p) });
  const addrs = await tb.execInPod(a, 'ip', ['-o', 'addr', 'show', 'dev', 'eth0']);
  assert.doesNotMatch(addrs.stdout, /inet /, 'no IPv4 address in the pod');
  assert.deepEqual(mesh.maps.pods(), [], 'nothing in pods_by_ip');
  assert.deepEqual(
    mesh.maps
      .pods6()
      .map((p) => p.ip6)
      .sort(),
    [a.ip6, b.ip6].sort(),
  );
  const before = mesh.maps.stats();
  const r = await tb.get(a, `http://[${b.ip6}]/`);
  assert.ok(r.ok, `${r.code} ${r.err}`);
  assert.match(r.body, new RegExp(`^app=pod1 port=80 outbound=\\[${b.ip6}\\]:80 inbound=\\[${b.ip6}\\]:80$`, 'm'));
  const s = mesh.maps.stats();
  assert.ok(
    s.connect_out > before.connect_out && s.connect_peer > before.connect_peer,
    'app -> sidecar -> peer inbound',
  );
  assert.ok(s.msg_redirect_peer > before.msg_redirect_peer, 'sidecar-to-sidecar bytes went through the IPv6 sockhash');
  // IPv4 loopback inside the pod is left alone (no IPv4 capture for a pod without an IPv4 address)
  const lo = await tb.get(a, 'http://127.0.0.1/');
  assert.match(lo.body, /^app=pod0 port=80 outbound= inbound=$/m);
  mesh.maps.removePod({ ip6: a.ip6, cgroup: a.cgroup });
  assert.match((await tb.get(a, `http://[${b.ip6}]/`)).body, /^app=pod1 port=80 outbound= inbound=$/m);
});
