// Real-world-style sources through the real CLI and agent: a UAPI-header program whose record
// struct is only in its header, run from its files in one command; a BPF_UPROBE program run
// from its directory; bpf_printk lines in their own instance's logs only; a log2 histogram map;
// addresses as addresses.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { kernelIds, leftSince, makeCgroup, run, runInCgroup, tempDir } from '../../testbed/kernel.js';
import { Node, ROOT } from './cli.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
const KILLSNOOP = join(FIXTURES, 'buildenv/killsnoop');

type Rec = { source: string; event: Record<string, unknown> };

async function until<T>(what: string, poke: () => unknown, get: () => T | undefined, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await poke();
    await sleep(150);
    const v = get();
    if (v !== undefined) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

function jsonLines(out: string): Rec[] {
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Rec);
}

/** A uprobe package in the style of libbpf-bootstrap's uprobe example, attached to `bin`. */
function uprobeSource(dir: string, bin: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'addprobe.bpf.c'),
    `#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("uprobe/${bin}:kbpf_target")
int BPF_UPROBE(target_entry, int x)
{
	bpf_printk("kbpf_target entered with x=%d", x);
	return 0;
}

SEC("uretprobe/${bin}:kbpf_target")
int BPF_URETPROBE(target_exit, int ret)
{
	bpf_printk("kbpf_target returned %d", ret);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
`,
  );
}

test('sources written for other loaders build and run unchanged, with decoded events and their own printk lines', async (t) => {
  const before = kernelIds();
  const node = new Node(t);
  await node.startAgent();
  const dir = tempDir(t, 'kbpf-buildenv-');

  // UAPI-style killsnoop, run from its files: kbpf run FILE.bpf.c FILE.h
  const ran = node.kbpf([
    'run',
    '--name',
    'ks',
    '--set',
    `target_pid=${process.pid}`,
    join(KILLSNOOP, 'killsnoop.bpf.c'),
    join(KILLSNOOP, 'killsnoop.h'),
  ]);
  assert.equal(ran.code, 0, ran.stderr);
  assert.match(ran.stderr, /built killsnoop:0\.0\.0/);

  // BPF_UPROBE package from its directory: kbpf run DIR
  const bin = join(dir, 'kbpf_uprobe_target');
  execFileSync('cc', ['-O1', '-o', bin, join(FIXTURES, 'uprobe_target.c')]);
  const src = join(dir, 'addprobe');
  uprobeSource(src, bin);
  node.ok(['run', '--name', 'up', src]);

  const ks = await until(
    'killsnoop events and printk lines',
    () => process.kill(process.pid, 0),
    () => {
      const recs = jsonLines(node.ok(['logs', 'ks', '-o', 'json']));
      const ev = recs.find((r) => r.source === 'events' && r.event.pid === process.pid);
      const pk = recs.find((r) => r.source === 'kbpf_printk');
      return ev && pk && recs.filter((r) => r.source === 'events').length >= 5 ? { ev, pk, recs } : undefined;
    },
  );
  // the record struct is only in killsnoop.h: still decoded with field names; JSON keeps the data
  assert.equal(ks.ev.event.target, process.pid);
  assert.equal(ks.ev.event.sig, 0);
  assert.equal(ks.ev.event.daddr, 0x0100007f);
  assert.equal(ks.ev.event.dport, 8080);
  assert.match(String(ks.pk.event.line), new RegExp(`^kill by ${process.pid} of ${process.pid} with signal 0`));

  const up = await until(
    'uprobe printk lines',
    () => run(bin, ['5']),
    () => {
      const recs = jsonLines(node.ok(['logs', 'up', '-o', 'json']));
      const lines = recs.map((r) => String(r.event.line));
      return lines.includes('kbpf_target entered with x=5') && lines.includes('kbpf_target returned 16')
        ? recs
        : undefined;
    },
  );
  // each instance's printk lines are its own
  assert.ok(up.every((r) => r.source === 'kbpf_printk' && !String(r.event.line).startsWith('kill by')));
  const ksLines = jsonLines(node.ok(['logs', 'ks', '-o', 'json', '--source', 'printk']));
  assert.ok(ksLines.length > 0);
  assert.ok(
    ksLines.every((r) => String(r.event.line).startsWith('kill by')),
    JSON.stringify(ksLines),
  );

  // the human table: addresses, ports and flags as they read; printk lines marked
  const table = node.ok(['logs', 'ks']);
  assert.match(table, /127\.0\.0\.1/);
  assert.match(table, /::1\b/);
  assert.match(table, /KILL_SELF\|KILL_PROBE/);
  assert.match(table, /printk: kill by \d+ of \d+ with signal 0/);
  assert.doesNotMatch(node.ok(['logs', 'ks', '--source', 'events']), /printk:/);

  // the n-th call lands in slot log2(n): a histogram like the tools draw
  const maps = node.ok(['maps', 'ks', 'calls']);
  assert.match(maps, /value\s+: count\s+distribution/);
  assert.match(maps, /0 -> 1\s+: 1\s+\|\*+\s*\|/);
  assert.match(maps, /2 -> 3\s+: 2\s+\|\*+\s*\|/);

  node.ok(['rm', '--force', 'ks', 'up']);
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});

test("tcpconnect's destination shows as 127.0.0.1 in kbpf logs", async (t) => {
  const before = kernelIds();
  const node = new Node(t);
  await node.startAgent();
  const cg = makeCgroup(t);
  const srv = createServer((s) => s.end());
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => srv.close());
  const port = (srv.address() as { port: number }).port;
  node.ok(['run', '--name', 'tc', '--cgroup', cg, '--set', `target_port=${port}`, join(ROOT, 'examples/tcpconnect')]);
  const client = `const s=require('net').connect(${port},'127.0.0.1');s.on('close',()=>process.exit(0));s.resume()`;
  const table = await until(
    'a connection event',
    () => runInCgroup(cg, process.execPath, ['-e', client]),
    () => {
      const out = node.ok(['logs', 'tc']);
      return out.includes(String(port)) ? out : undefined;
    },
  );
  assert.match(table, new RegExp(`127\\.0\\.0\\.1\\s+${port}`));
  assert.doesNotMatch(table, /\[127,0,0,1\]/);
  const data = jsonLines(node.ok(['logs', 'tc', '-o', 'json']));
  assert.deepEqual(data[0]!.event.daddr, [127, 0, 0, 1]);
  node.ok(['rm', '--force', 'tc']);
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
