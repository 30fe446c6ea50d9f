// Tail calls through a program array the package's loader would fill: kbpf.yaml's
// maps.NAME.programs (index → program) is filled by the agent after load, before attach; the
// jumped-to program (a `tp/unused` section: attached to nothing) runs; rm leaves nothing.
import assert from 'node:assert/strict';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { MapDump } from '../../src/agent/queries.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds, leftSince, tempDir } from '../../testbed/kernel.js';

const PKG = fileURLToPath(new URL('../../../test/agent/packages/tail_calls/', import.meta.url));

const hits = (dump: MapDump[]): number[] =>
  dump.find((m) => m.section === '.bss')!.variables!.find((v) => v.name === 'hits')!.value as number[];

test('a program array declared in kbpf.yaml is filled after load: tail calls reach the program; without it they fall through', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(PKG);
  const spec = (await ta.agent.inspectPackage(ref)).spec;
  assert.deepEqual(spec.programs.find((p) => p.name === 'on_jump')!.attach, { hook: 'none' });
  assert.deepEqual(spec.maps.find((m) => m.name === 'jumps')!.programs, { 2: 'on_jump' });
  await ta.agent.run({ image: ref, name: 'jumps', config: { target_tgid: String(process.pid) } });
  for (let i = 0; i < 5; i++) process.getgid!();
  assert.deepEqual(hits(ta.agent.maps('jumps', 'hits')), [5, 5]);
  await ta.agent.remove('jumps', { force: true });

  // the same source without the declaration: the jump finds no program and falls through
  const dir = tempDir(t, 'kbpf-tail-');
  cpSync(PKG, dir, { recursive: true });
  rmSync(join(dir, 'kbpf.yaml'));
  const bare = await ta.build(dir, 'tail_calls_bare:0.0.1');
  await ta.agent.run({ image: bare, name: 'nojumps', config: { target_tgid: String(process.pid) } });
  for (let i = 0; i < 5; i++) process.getgid!();
  assert.deepEqual(hits(ta.agent.maps('nojumps', 'hits')), [5, 0]);
  await ta.agent.remove('nojumps', { force: true });

  // a declaration naming a program the package lacks is refused at build
  writeFileSync(join(dir, 'kbpf.yaml'), 'maps:\n  jumps:\n    programs: { 1: nowhere }\n');
  await assert.rejects(ta.build(dir, 'tail_calls_bad:0.0.1'), /maps\.jumps\.programs\.1: no program "nowhere"/);
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
