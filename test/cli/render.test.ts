// The render modules shared by kbpf and kubectl bpf: each format of a sample instance list, and
// terminal control characters escaped in human output, kept as they are in data output.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import YAML from 'yaml';
import type { InstanceStatus } from '../../src/agent/types.js';
import { escapeControl, escapeLines } from '../../src/cli/render/escape.js';
import { describeInstance, renderInstance, renderInstances } from '../../src/cli/render/instances.js';
import { LogTable, renderNodeRecord } from '../../src/cli/render/logs.js';
import { table } from '../../src/cli/render/output.js';
import type { BpfDeployment, BpfNodeInstance } from '../../src/k8s/api.js';
import { renderDeployments } from '../../src/k8s/kubectl/render/deployments.js';

function instance(name: string, over: Partial<InstanceStatus> = {}): InstanceStatus {
  return {
    name,
    image: `opensnoop@sha256:${'a'.repeat(64)}`,
    digest: `sha256:${'a'.repeat(64)}`,
    package: { name: 'opensnoop', version: '1.0.0' },
    revision: 2,
    desired: 'running',
    phase: 'running',
    createdAt: new Date(Date.now() - 5 * 60_000).toISOString(),
    programs: [{ name: 'handle_openat', type: 'tracepoint', attach: 'syscalls/sys_enter_openat', progId: 42 }],
    maps: [],
    config: { target_pid: 7 },
    events: { received: 10, lost: 1 },
    ...over,
  };
}

const EVIL = 'snoop\x1b[2J\x1b]0;pwned\x07';
const LIST = [instance('first'), instance(EVIL, { phase: 'failed', message: 'bad\x1b[31mred' })];

test('table: the columns of kbpf ps, aligned, digests shortened', () => {
  const lines = renderInstances('table', [instance('first'), instance('a-longer-name')])
    .trimEnd()
    .split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /^NAME {12}IMAGE {27}REV {3}STATUS {4}PROGRAMS {3}EVENTS {8}CREATED$/);
  assert.equal(
    lines[1],
    `first${' '.repeat(11)}opensnoop@sha256:aaaaaaaaaaaa   2     running   1          10 (1 lost)   5 minutes ago`,
  );
  assert.doesNotMatch(lines.join('\n'), /DIGEST|MESSAGE/);
});

test('wide: the same columns and more', () => {
  const lines = renderInstances('wide', LIST).trimEnd().split('\n');
  assert.match(
    lines[0]!,
    /^NAME\s+IMAGE\s+REV\s+STATUS\s+PROGRAMS\s+EVENTS\s+CREATED\s+DIGEST\s+PROG IDS\s+VARIANTS\s+MESSAGE$/,
  );
  assert.match(lines[1]!, /sha256:aaaaaaaaaaaa {3}handle_openat#42$/);
  assert.match(lines[2]!, /failed \(want running\).*handle_openat#42\s+bad\\x1b\[31mred$/);
  const variants = renderInstances('wide', [
    {
      ...LIST[0]!,
      programs: [
        { name: 'a', type: 'tracing', attach: 'tp_btf x', state: 'running', progId: 1 },
        { name: 'b', type: 'raw_tracepoint', attach: 'raw_tracepoint x', state: 'disabled', reason: 'variant of a' },
      ],
      warnings: ['skipped optional program c'],
    },
  ]);
  assert.match(variants, /a#1\s+b:disabled\s+skipped optional program c$/m);
  const text = renderInstance('text', {
    ...LIST[0]!,
    programs: [
      { name: 'b', type: 'raw_tracepoint', attach: 'raw_tracepoint x', state: 'disabled', reason: 'variant of a' },
    ],
    warnings: ['skipped optional program c'],
  });
  assert.match(text, /^ {2}warning: skipped optional program c$/m);
  assert.match(text, /^ {2}b\s+raw_tracepoint\s+raw_tracepoint x\s+disabled/m);
  assert.match(text, /^ {2}b: variant of a$/m);
});

test('json and yaml: the instances as they are', () => {
  assert.deepEqual(JSON.parse(renderInstances('json', LIST)), LIST);
  assert.deepEqual(YAML.parse(renderInstances('yaml', LIST)), LIST);
  assert.deepEqual(JSON.parse(renderInstances('json', [])), []);
});

test('control characters: escaped in tables and text, unchanged in json and yaml', () => {
  const t = renderInstances('table', LIST);
  assert.ok(![...t].some((c) => c !== '\n' && (c < ' ' || c === '\x7f')), 'no control character but newlines');
  assert.match(t, /^snoop\\x1b\[2J\\x1b\]0;pwned\\x07 {3}opensnoop/m);
  // the column after the escaped name still lines up
  const [head, , row] = t.split('\n');
  assert.equal(row!.indexOf('opensnoop'), head!.indexOf('IMAGE'));
  const text = describeInstance(LIST[1]!);
  assert.ok(!text.includes('\x1b'));
  assert.match(text, /^snoop\\x1b\[2J.*: failed \(want running\)/);
  assert.match(text, /^ {2}bad\\x1b\[31mred$/m);

  const j = renderInstances('json', LIST);
  assert.equal((JSON.parse(j) as InstanceStatus[])[1]!.name, EVIL);
  assert.ok(!j.includes('\x1b') && j.includes('\\u001b'), 'JSON has its own escapes');
  assert.equal((YAML.parse(renderInstances('yaml', LIST)) as InstanceStatus[])[1]!.name, EVIL);
});

test('escapes: C0, DEL, C1 and bidi controls; newlines kept only by escapeLines; idempotent', () => {
  assert.equal(escapeControl('a\tb\nc\rd\x00e\x7f\x9b'), 'a\\tb\\nc\\rd\\x00e\\x7f\\x9b');
  assert.equal(escapeControl('abc\u202eevil\u2066'), 'abc\\u202eevil\\u2066');
  assert.equal(escapeControl('plain ünïcödé 名前 ✓'), 'plain ünïcödé 名前 ✓');
  assert.equal(escapeLines('one\x1b[1m\ntwo'), 'one\\x1b[1m\ntwo');
  assert.equal(escapeControl(escapeControl(EVIL)), escapeControl(EVIL));
  assert.equal(table(['A', 'B'], [['x\x1b', 'y']]), 'A       B\nx\\x1b   y\n');
});

test('log records: the table of kbpf logs and the lines of kubectl bpf logs escape what an event carries', () => {
  let out = '';
  new LogTable((s) => {
    out += s;
  }).add([{ ts: '2024-05-01T10:00:00.000Z', seq: 1, source: 'events', event: { comm: 'x\x1b[2Jy', pid: 1 } }]);
  assert.match(out, /^TIME\s+COMM\s+PID\n\S+ {3}x\\x1b\[2Jy {3}1\n$/);
  const r = { ts: '2024-05-01T10:00:00.000Z', seq: 1, source: 'ev\x9bents', event: { comm: 'a\u202eb' } };
  const line = renderNodeRecord('text', 'node-a', r);
  assert.equal(line, 'node-a  2024-05-01T10:00:00.000Z  ev\\x9bents {"comm":"a\\u202eb"}\n');
  assert.deepEqual(JSON.parse(renderNodeRecord('json', 'node-a', r)), { node: 'node-a', ...r });
  assert.deepEqual(YAML.parse(renderNodeRecord('yaml', 'node-a', r).replace(/^---\n/, '')), { node: 'node-a', ...r });
});

test('kubectl bpf ps: one row per node instance in every format', () => {
  const ni = (node: string, revision: number): BpfNodeInstance => ({
    apiVersion: 'kbpf.io/v1alpha1',
    kind: 'BpfNodeInstance',
    metadata: { name: `conn.${node}` },
    spec: {
      deployment: 'conn',
      nodeName: node,
      revision: 2,
      image: 'r/x@sha256:b',
      digest: `sha256:${'b'.repeat(64)}`,
    },
    status: { phase: 'Running', revision, programs: [{ name: 'trace_connect4', progId: 9 }], message: 'ok\nfine' },
  });
  const deployments = [{ metadata: { name: 'conn' } } as BpfDeployment];
  const instances = [ni('node-b', 2), ni('node-a', 1)];
  const t = renderDeployments('table', deployments, instances).split('\n');
  assert.match(t[0]!, /^DEPLOYMENT\s+NODE\s+REVISION\s+PHASE\s+PROGRAMS\s+MESSAGE$/);
  assert.match(t[1]!, /^conn\s+node-a\s+1→2\s+Running\s+trace_connect4#9\s+ok fine$/);
  assert.match(t[2]!, /^conn\s+node-b\s+2\s+Running/);
  assert.match(renderDeployments('wide', deployments, instances), /^DEPLOYMENT.*DIGEST\s+UPDATED\s+IMAGE\s+MESSAGE$/m);
  assert.deepEqual(JSON.parse(renderDeployments('json', deployments, instances)), { deployments, instances });
  assert.deepEqual(YAML.parse(renderDeployments('yaml', deployments, instances)), { deployments, instances });
});
