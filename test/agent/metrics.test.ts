// Prometheus text from the agent's metrics snapshot; checked with promtool when it is installed
// (Debian package `prometheus`).

import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { escapeLabel, formatMetrics } from '../../src/agent/metrics.js';

const snapshot = {
  instances: [
    {
      name: 'snoop',
      phase: 'running',
      eventsReceived: 1200,
      eventsLost: 3,
      programs: [
        { name: 'handle_openat', progId: 10, runCount: 98765n, runTimeNs: 1_500_000_001n },
        { name: 'no_stats', progId: 11 },
      ],
    },
    { name: 'we"ird\\name\n', phase: 'stopped', eventsReceived: 0, eventsLost: 0, programs: [] },
    { name: 'broken', phase: 'failed', eventsReceived: 0, eventsLost: 0, programs: [{ name: 'p' }] },
  ],
};

function promtool(): string | undefined {
  const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? 'promtool' : undefined;
}

test('instances by phase, zeros included; counters per instance and program', () => {
  const text = formatMetrics(snapshot, { version: '0.1.0' });
  const lines = text.split('\n');
  assert.ok(lines.includes('kbpf_instances{phase="running"} 1'));
  assert.ok(lines.includes('kbpf_instances{phase="stopped"} 1'));
  assert.ok(lines.includes('kbpf_instances{phase="failed"} 1'));
  assert.ok(lines.includes('kbpf_instances{phase="pending"} 0'));
  assert.ok(lines.includes('# TYPE kbpf_instances gauge'));
  assert.ok(lines.includes('# TYPE kbpf_events_received_total counter'));
  assert.ok(lines.includes('kbpf_events_received_total{instance="snoop"} 1200'));
  assert.ok(lines.includes('kbpf_events_lost_total{instance="snoop"} 3'));
  assert.ok(lines.includes('kbpf_program_run_count_total{instance="snoop",program="handle_openat"} 98765'));
  assert.ok(
    lines.includes('kbpf_program_run_time_seconds_total{instance="snoop",program="handle_openat"} 1.500000001'),
  );
  assert.ok(!text.includes('program="no_stats"'), 'programs without kernel stats are left out');
  assert.ok(lines.includes('kbpf_info{version="0.1.0"} 1'));
  assert.ok(text.includes('kbpf_events_received_total{instance="we\\"ird\\\\name\\n"} 0'));
  assert.ok(text.endsWith('\n'));
  // every family has HELP then TYPE before its samples
  for (const fam of [
    'kbpf_instances',
    'kbpf_events_received_total',
    'kbpf_events_lost_total',
    'kbpf_program_run_count_total',
    'kbpf_program_run_time_seconds_total',
  ]) {
    const h = lines.indexOf(lines.find((l) => l.startsWith(`# HELP ${fam} `))!);
    assert.ok(h >= 0, `HELP of ${fam}`);
    assert.equal(lines[h + 1], `# TYPE ${fam} ${fam === 'kbpf_instances' ? 'gauge' : 'counter'}`);
  }
});

test('no instances, no stats: run-count families are left out, phases still listed', () => {
  const text = formatMetrics({ instances: [] });
  assert.match(text, /kbpf_instances\{phase="running"\} 0/);
  assert.doesNotMatch(text, /run_count/);
  assert.match(text, /# TYPE kbpf_events_received_total counter/);
});

test('label escaping', () => {
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

test('promtool check metrics accepts the output', (t) => {
  const tool = promtool();
  if (!tool) {
    t.skip('promtool not installed (Debian package prometheus)');
    return;
  }
  for (const snap of [snapshot, { instances: [] }]) {
    const r: SpawnSyncReturns<string> = spawnSync(tool, ['check', 'metrics'], {
      input: formatMetrics(snap, { version: '0.1.0' }),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
    assert.equal((r.stdout + r.stderr).trim(), '', `promtool lint findings: ${r.stdout}${r.stderr}`);
  }
});
