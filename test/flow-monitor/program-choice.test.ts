// Which of flow-monitor's programs a kernel runs: datagrams sent and received are counted through
// the send and receive tracepoints where the kernel has them, else through the cgroup's egress and
// ingress hooks (which every TCP segment would pay for). The package is built; the kernels are made up.
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

test('flow-monitor: datagrams sent and received through the send and receive tracepoints, or the egress and ingress hooks where the kernel lacks them', async (t) => {
  const store = new LayoutStore(join(tempDir(t, 'kbpf-flows-choice-'), 'store'));
  const { spec } = await buildPackage(FLOW_APP_DIR, { store, cacheDir: VMLINUX_CACHE });
  const states = (k: KernelView) =>
    Object.fromEntries(
      [...choosePrograms(spec, { cgroup: '/sys/fs/cgroup/x' }, k).programs.values()].map((c) => [c.name, c.state]),
    );
  const recent = states(kernelWithout([]));
  assert.equal(recent.flow_ingress, 'disabled');
  assert.equal(recent.flow_egress, 'disabled', 'no packet hook: TCP pays for none');
  assert.equal(recent.flow_dgram_copy, 'run');
  assert.equal(recent.flow_dgram_recv, 'run');
  assert.equal(recent.flow_sock_send, 'run');
  assert.equal(recent.flow_recvmsg4, 'run');
  assert.equal(recent.flow_sendmsg4, 'run');
  assert.equal(recent.flow_tcp_state, 'run');
  // sock_recv_length and sock_send_length came with Linux 6.4
  const older = states(kernelWithout(['sock_recv_length', 'sock_send_length']));
  assert.equal(older.flow_ingress, 'run');
  assert.equal(older.flow_egress, 'run');
  assert.equal(older.flow_dgram_copy, 'disabled');
  assert.equal(older.flow_dgram_recv, 'disabled');
  assert.equal(older.flow_sock_send, 'disabled');
  assert.equal(older.flow_tcp_state, 'run');
  // each direction chooses on its own
  const noSend = states(kernelWithout(['sock_send_length']));
  assert.equal(noSend.flow_egress, 'run');
  assert.equal(noSend.flow_sock_send, 'disabled');
  assert.equal(noSend.flow_dgram_recv, 'run');
  assert.equal(noSend.flow_ingress, 'disabled');
});
