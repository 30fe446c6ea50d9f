// Global variables of a package's programs (libbpf's internal maps .bss, .data, .rodata), as
// bcc's libbpf-tools keep their counters and histograms: pinned with the instance's maps, shown
// by `kbpf maps` by variable name (after an agent restart too), gone with the instance.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BpfMap, infoOfId } from 'kbpf/bpf';
import { Agent } from '../../src/agent/agent.js';
import type { MapDump } from '../../src/agent/queries.js';
import { renderMaps } from '../../src/cli/render/maps.js';
import { isKind, NotFound } from '../../src/errors.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds, leftSince } from '../../testbed/kernel.js';

const PKG = fileURLToPath(new URL('../../../test/agent/packages/globals_hist/', import.meta.url));

/** Calls getgid(2) n times (what the package counts). */
function getgids(n: number): void {
  for (let i = 0; i < n; i++) process.getgid!();
}

function variable(dump: MapDump[], section: string, name: string): unknown {
  const sec = dump.find((m) => m.section === section);
  assert.ok(sec, `a ${section} section in ${JSON.stringify(dump.map((m) => m.name))}`);
  const v = sec.variables!.find((x) => x.name === name);
  assert.ok(v, `variable ${name} in ${section}: ${JSON.stringify(sec.variables)}`);
  return v.value;
}

/** What the program counted: counts[1] and calls - 7 (its initial value) both count the calls. */
function counted(dump: MapDump[]): { calls: number; counts: number[]; slots: number[] } {
  const counts = variable(dump, '.bss', 'counts') as number[];
  const hists = variable(dump, '.bss', 'hists') as { slots: number[] }[];
  return { calls: (variable(dump, '.data', 'calls') as number) - 7, counts, slots: hists[2]!.slots };
}

test('global variables are pinned with the instance, shown by name after an agent restart, and gone with it', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(PKG);
  await ta.agent.run({ image: ref, name: 'globals', config: { target_tgid: String(process.pid) } });

  const idle = ta.agent.maps('globals');
  assert.deepEqual(
    idle.filter((m) => m.section).map((m) => [m.section, m.type, m.variables!.map((v) => `${v.type} ${v.name}`)]),
    [
      ['.bss', 'array', ['struct hist[4] hists', '__u64[4] counts', '__u8[131072] scratch']],
      ['.data', 'array', ['__u64 calls']],
      ['.rodata', 'array', ['const volatile __u32 target_tgid']],
    ],
  );
  assert.equal(variable(idle, '.rodata', 'target_tgid'), process.pid, 'the config as the programs see it');
  assert.equal(variable(idle, '.data', 'calls'), 7, 'the initial value of .data');
  assert.equal(variable(idle, '.bss', 'scratch'), '(131072 bytes, not shown)');
  const start = counted(idle);

  const N = 200;
  getgids(N);
  const after = counted(ta.agent.maps('globals'));
  const n = after.counts[1]! - start.counts[1]!;
  assert.ok(n >= N, `counted ${n} getgid calls of ${N}`);
  assert.equal(after.calls, after.counts[1], '.data calls counts as counts[1] does');
  assert.deepEqual([after.counts[0], after.counts[2], after.counts[3]], [0, 0, 0]);
  // the histogram holds log2 of 1, 2, …, counts[1]: slot i has 2^i of them (the last: the rest)
  const total = after.counts[1]!;
  assert.equal(
    after.slots.reduce((a, b) => a + b, 0),
    total,
  );
  assert.deepEqual(after.slots.slice(0, 6), [1, 2, 4, 8, 16, 32]);

  // the human output: the histogram of hists[2] drawn, the counters as values, the config
  const text = renderMaps('table', ta.agent.maps('globals'));
  assert.match(text, /^\.bss \(global variables\)$/m);
  assert.match(text, /^ {2}hists \(struct hist\[4\]\)\n {4}hists\[2\]\n {6}\s+value\s+: count\s+distribution\n/m);
  assert.match(text, /^\s+4 -> 7\s+: 4\s+\|\*+\s*\|$/m);
  assert.match(text, new RegExp(`^ {4}1 {7}${total}$`, 'm'), text);
  assert.match(text, /\(3 more are 0\)/);
  assert.match(
    text,
    new RegExp(`^\\.rodata \\(config\\)\\n {2}target_tgid \\(const volatile __u32\\) = ${process.pid}$`, 'm'),
  );

  // a variable by name, a section by name; anything else is not found, naming what there is
  const only = ta.agent.maps('globals', 'counts');
  assert.deepEqual(
    only.map((m) => [m.section, m.variables!.map((v) => v.name)]),
    [['.bss', ['counts']]],
  );
  assert.deepEqual(
    ta.agent.maps('globals', '.data').map((m) => m.variables!.map((v) => v.name)),
    [['calls']],
  );
  assert.throws(
    () => ta.agent.maps('globals', 'nope'),
    (e: Error) => isKind(e, NotFound) && /variables: hists, counts, scratch, calls, target_tgid/.test(e.message),
  );

  // pinned under the instance (bpffs allows no dots in names): the agent's restart reads them
  const rev = join(ta.paths.bpffsDir, 'globals', 'rev-1', 'globals');
  assert.deepEqual(readdirSync(rev).sort(), ['globals_hist@bss', 'globals_hist@data', 'globals_hist@rodata']);
  const ids = readdirSync(rev).map((p) => {
    const m = BpfMap.fromPin(join(rev, p));
    try {
      return m.id;
    } finally {
      m.close();
    }
  });
  await ta.agent.close();
  ta.agent = new Agent(ta.paths, { log: () => {} });
  await ta.agent.start();
  getgids(N);
  const again = counted(ta.agent.maps('globals'));
  assert.ok(again.counts[1]! >= after.counts[1]! + N, 'the same counters go on counting');
  assert.equal(again.calls, again.counts[1]);

  // stop and start again: the same revision keeps its counters, as it keeps its maps
  await ta.agent.stop('globals');
  const stopped = counted(ta.agent.maps('globals'));
  assert.ok(stopped.counts[1]! >= again.counts[1]!, 'shown while stopped');
  await ta.agent.startInstance('globals');
  getgids(N);
  const restarted = counted(ta.agent.maps('globals'));
  assert.ok(restarted.counts[1]! >= stopped.counts[1]! + N, 'kept over stop and start, and counting on');
  assert.equal(restarted.calls, restarted.counts[1]);

  await ta.agent.remove('globals', { force: true });
  assert.ok(!existsSync(join(ta.paths.bpffsDir, 'globals')), 'no pins left');
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
  for (const id of ids) assert.equal(infoOfId('map', id), undefined, `map ${id} is gone`);
});
