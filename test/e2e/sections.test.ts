// Through the real CLI and agent: an iterator package run with --rm prints its output once and
// leaves nothing; inspect and ps -o wide say which variant runs and why; a run the kernel
// cannot serve fails with the feature named.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hookSupport } from 'kbpf/bpf';
import { Node } from './cli.js';

const PKG = (name: string) => fileURLToPath(new URL(`../../../test/agent/packages/${name}/`, import.meta.url));

test('kbpf run --rm of an iterator prints its output once; inspect and ps -o wide show the chosen variant', async (t) => {
  const node = new Node(t);
  await node.startAgent();
  if (hookSupport('iter').supported === 'yes') {
    node.ok(['build', PKG('task_lines')]);
    const out = node.ok(['run', '--rm', '--name', 'tasks', 'task_lines:0.0.0']);
    const lines = out.split('\n');
    assert.equal(lines[0], 'PID COMM');
    assert.ok(lines.includes('2 kthreadd'), out.slice(0, 300));
    assert.equal(node.ok(['ps', '-a', '-q']), '', 'run --rm removed the instance');
  }
  if (hookSupport('tp_btf').supported === 'yes') {
    node.ok(['build', PKG('exec_variants')]);
    node.ok(['run', '--name', 'execs', 'exec_variants:0.0.0']);
    const text = node.ok(['inspect', 'execs', '-o', 'yaml']);
    assert.match(text, /state: disabled/);
    const wide = node.ok(['ps', '-o', 'wide']);
    assert.match(wide, /exec_raw:disabled,exec_tp:disabled,nowhere:skipped/);
    assert.match(wide, /skipped optional program nowhere/);
  }
  node.ok(['build', PKG('bare_uprobe')]);
  const r = node.kbpf(['run', '--name', 'calls', 'bare_uprobe:0.0.0']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /names no target: give one with --attach on_call=uprobe:BINARY:SYMBOL/);
});
