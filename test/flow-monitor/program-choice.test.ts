// Which of flow-monitor's programs a kernel runs: datagrams received are counted through the
// receive tracepoints where the kernel has both, else through the cgroup's ingress hook (which
// every TCP segment received would pay for). The package is built; the kernels are made up.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { choosePrograms, type KernelView } from '../../src/agent/program-choice.js';
import { buildPackage } from '../../src/compile/builder.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { VMLINUX_CACHE } from '../../testbed/agent.js';
import { FLOW_APP_DIR } from '../../testbed/flows.js';
import { tempDir } from '../../testbed/kernel.js';

function kernelWithout(tracepoints: string[]): KernelView {
  return {
    hook: () => ({ supported: 'yes', detail: 'ok' }),
    hasFunction: () => true,
    hasTracepoint: (n) => !tracepoints.includes(n),
  };
}

test('flow-monitor: datagrams received through the receive tracepoints, or the ingress hook where the kernel lacks one', async (t) => {
  const store = new LayoutStore(join(tempDir(t, 'kbpf-flows-choice-'), 'store'));
  const { spec } = await buildPackage(FLOW_APP_DIR, { store, cacheDir: VMLINUX_CACHE });
  const states = (k: KernelView) =>
    Object.fromEntries(
      [...choosePrograms(spec, { cgroup: '/sys/fs/cgroup/x' }, k).programs.values()].map((c) => [c.name, c.state]),
    );
  const recent = states(kernelWithout([]));
  assert.equal(recent.flow_ingress, 'disabled');
  assert.equal(recent.flow_dgram_copy, 'run');
  assert.equal(recent.flow_dgram_recv, 'run');
  assert.equal(recent.flow_egress, 'run');
  assert.equal(recent.flow_recvmsg4, 'run');
  // sock_recv_length came with Linux 6.4
  const older = states(kernelWithout(['sock_recv_length']));
  assert.equal(older.flow_ingress, 'run');
  assert.equal(older.flow_dgram_copy, 'disabled');
  assert.equal(older.flow_dgram_recv, 'disabled');
  assert.equal(older.flow_egress, 'run');
});
