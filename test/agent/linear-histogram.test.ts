// Linear histograms (slot i counts the value i, as bcc's runqlen keeps them) are told from log2
// ones at build — a source that fills `slots` without taking a log2 — and drawn with their
// values, not log2 ranges; kbpf.yaml's `histograms:` says it where the source does not show it.
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { renderHistogram } from '../../src/cli/render/histogram.js';
import { renderMaps } from '../../src/cli/render/maps.js';
import { linearHistograms } from '../../src/compile/builder.js';
import { testAgent } from '../../testbed/agent.js';
import { kernelIds, leftSince, tempDir } from '../../testbed/kernel.js';

const PKG = fileURLToPath(new URL('../../../test/agent/packages/linear_hist/', import.meta.url));

test('a source is told to count linearly when it fills slots without a log2, in it or in a header helper', () => {
  const hist = 'struct hist { __u32 slots[26]; };';
  assert.equal(linearHistograms('h->slots[len]++;', [hist]), true);
  assert.equal(linearHistograms('h->slots[log2l(delta)]++;', [hist]), false);
  // a header helper that fills the slots by log2 (the source only calls it)
  assert.equal(
    linearHistograms('hist_add(h, d);', ['static void hist_add(struct hist *h, u64 d) { h->slots[log2(d)]++; }']),
    false,
  );
  // a header defining log2 helpers but no slots does not make it log2
  assert.equal(linearHistograms('h->slots[n]++;', ['static u64 log2l(u64 v) { return log2(v >> 32); }', hist]), true);
  // commented-out log2 calls do not count; no slots at all: nothing to draw
  assert.equal(linearHistograms('/* log2(x) */ h->slots[n]++;', [hist]), true);
  assert.equal(linearHistograms('counts[n]++;', []), false);
  assert.match(
    renderHistogram([0, 2, 0, 4], true),
    /^ {5}value {9}: count {4}distribution\n {9}1 {4}: 2 {8}\|\*{20} {20}\|\n {9}2 {4}: 0 /,
  );
  assert.match(renderHistogram([0, 2, 0, 4], false), /2 -> 3 {10}: 2 /);
});

test('kbpf maps draws a global linear histogram by value; histograms: log2 in kbpf.yaml draws it by log2 ranges; rm leaves nothing', async (t) => {
  const before = kernelIds();
  const ta = await testAgent(t);
  const ref = await ta.build(PKG);
  assert.deepEqual((await ta.agent.inspectPackage(ref)).spec.linearHistograms, ['linear_hist.bpf.o']);
  await ta.agent.run({ image: ref, name: 'lin', config: { target_tgid: String(process.pid) } });
  for (let i = 0; i < 8; i++) process.getgid!();
  const dump = ta.agent.maps('lin', 'lens');
  assert.equal(dump[0]!.linear, true);
  const text = renderMaps('table', dump);
  for (const v of [0, 1, 2, 3]) assert.match(text, new RegExp(`\\n +${v} {4}: 2 +\\|\\*{40}\\|`), text);
  assert.doesNotMatch(text, /->/);
  await ta.agent.remove('lin', { force: true });

  const dir = tempDir(t, 'kbpf-lin-');
  cpSync(PKG, dir, { recursive: true });
  writeFileSync(join(dir, 'kbpf.yaml'), 'name: linear_hist_log2\nhistograms: log2\n');
  const log2 = await ta.build(dir);
  assert.equal((await ta.agent.inspectPackage(log2)).spec.linearHistograms, undefined);
  await ta.agent.run({ image: log2, name: 'lin2', config: { target_tgid: String(process.pid) } });
  for (let i = 0; i < 8; i++) process.getgid!();
  assert.match(renderMaps('table', ta.agent.maps('lin2', 'lens')), /0 -> 1 +: 2 /);
  await ta.agent.remove('lin2', { force: true });
  assert.deepEqual(await leftSince(before), { prog: [], map: [], link: [] });
});
