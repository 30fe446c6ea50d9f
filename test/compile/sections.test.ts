// Every section prefix of libbpf's section table derives an attach spec, and the package spec
// schema takes each one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attachFromSection } from '../../src/compile/derive.js';
import { parseSourceManifest } from '../../src/compile/source-manifest.js';
import type { AttachSpec, MapEntrySpec } from '../../src/package/package-spec.js';
import { parseAttachString, resolveAttach, validatePackageSpec } from '../../src/package/package-spec.js';

const SOCKMAP: MapEntrySpec[] = [
  { name: 'socks', object: 'a.bpf.o', type: 'sockmap', keySize: 4, valueSize: 4, maxEntries: 8, pin: true },
];

// section → the spec it implies (as libbpf's section_defs spell them, sleepable forms included)
const CASES: [string, AttachSpec][] = [
  ['kprobe/do_unlinkat', { hook: 'kprobe', target: 'do_unlinkat' }],
  ['kprobe/tcp_v4_connect+0x10', { hook: 'kprobe', target: 'tcp_v4_connect+0x10' }],
  ['kretprobe/do_unlinkat', { hook: 'kretprobe', target: 'do_unlinkat' }],
  ['ksyscall/tgkill', { hook: 'ksyscall', target: 'tgkill' }],
  ['kretsyscall/kill', { hook: 'kretsyscall', target: 'kill' }],
  ['kprobe.multi/tcp_*', { hook: 'kprobe_multi', target: 'tcp_*' }],
  ['kretprobe.multi/vfs_*', { hook: 'kretprobe_multi', target: 'vfs_*' }],
  ['kprobe.session/tcp_*', { hook: 'kprobe_multi', target: 'tcp_*' }],
  ['uprobe', { hook: 'uprobe' }],
  ['uprobe.session', { hook: 'uprobe' }],
  ['uprobe.session.s//usr/bin/bash:readline', { hook: 'uprobe', target: '/usr/bin/bash:readline' }],
  ['uretprobe', { hook: 'uretprobe' }],
  // the loader's own binary: under kbpf that is the agent, so run asks for the target
  ['uprobe//proc/self/exe:uprobed_sub', { hook: 'uprobe' }],
  ['uretprobe.s/usr/bin/bash:readline', { hook: 'uretprobe', target: 'usr/bin/bash:readline' }],
  ['uprobe.s//usr/bin/bash:readline', { hook: 'uprobe', target: '/usr/bin/bash:readline' }],
  ['usdt', { hook: 'usdt' }],
  ['usdt/libc.so.6:libc:setjmp', { hook: 'usdt', target: 'libc.so.6:libc:setjmp' }],
  ['fentry/do_unlinkat', { hook: 'fentry', target: 'do_unlinkat' }],
  ['fentry.s/do_unlinkat', { hook: 'fentry', target: 'do_unlinkat' }],
  ['fexit/do_unlinkat', { hook: 'fexit', target: 'do_unlinkat' }],
  ['fsession/do_unlinkat', { hook: 'fsession', target: 'do_unlinkat' }],
  ['fsession.s/do_unlinkat', { hook: 'fsession', target: 'do_unlinkat' }],
  ['fentry.multi/vfs_*', { hook: 'fentry_multi', target: 'vfs_*' }],
  ['fexit.multi.s/vfs_*', { hook: 'fexit_multi', target: 'vfs_*' }],
  ['fsession.multi/vfs_*', { hook: 'fsession_multi', target: 'vfs_*' }],
  ['fmod_ret/security_file_open', { hook: 'fmod_ret', target: 'security_file_open' }],
  ['kprobe', { hook: 'kprobe' }],
  ['kretprobe', { hook: 'kretprobe' }],
  ['tp_btf/sched_switch', { hook: 'tp_btf', target: 'sched_switch' }],
  ['raw_tp/sched_switch', { hook: 'raw_tracepoint', target: 'sched_switch' }],
  ['raw_tracepoint.w/sched_switch', { hook: 'raw_tracepoint', target: 'sched_switch' }],
  ['raw_tp/', { hook: 'raw_tracepoint' }],
  ['raw_tracepoint', { hook: 'raw_tracepoint' }],
  ['tp', { hook: 'tracepoint' }],
  ['tp/unused', { hook: 'none' }],
  ['tracepoint.s/', { hook: 'tracepoint' }],
  ['tp/sched/sched_switch', { hook: 'tracepoint', target: 'sched/sched_switch' }],
  ['tracepoint.s/syscalls/sys_enter_openat', { hook: 'tracepoint', target: 'syscalls/sys_enter_openat' }],
  ['lsm/bpf', { hook: 'lsm', target: 'bpf' }],
  ['lsm.s/file_open', { hook: 'lsm', target: 'file_open' }],
  ['iter/task', { hook: 'iter', target: 'task' }],
  ['iter.s/bpf_map_elem', { hook: 'iter', target: 'bpf_map_elem' }],
  ['perf_event', { hook: 'perf_event' }],
  ['socket', { hook: 'none' }],
  ['sk_reuseport', { hook: 'none' }],
  ['sk_reuseport/migrate', { hook: 'none' }],
  ['sk_lookup', { hook: 'sk_lookup' }],
  ['flow_dissector', { hook: 'flow_dissector' }],
  ['netfilter', { hook: 'netfilter' }],
  ['struct_ops/tcp_init', { hook: 'struct_ops' }],
  ['struct_ops.s/init', { hook: 'struct_ops' }],
  ['syscall', { hook: 'none' }],
  ['xdp', { hook: 'xdp' }],
  ['xdp.frags', { hook: 'xdp' }],
  ['xdp/devmap', { hook: 'none' }],
  ['xdp.frags/cpumap', { hook: 'none' }],
  ['tc', { hook: 'tc', direction: 'ingress' }],
  ['classifier', { hook: 'tc', direction: 'ingress' }],
  ['tcx/egress', { hook: 'tc', direction: 'egress' }],
  ['action', { hook: 'none' }],
  ['lwt_xmit', { hook: 'none' }],
  ['cgroup/connect4', { hook: 'cgroup', type: 'connect4' }],
  ['cgroup/connect_unix', { hook: 'cgroup', type: 'connect_unix' }],
  ['cgroup/getsockname_unix', { hook: 'cgroup', type: 'getsockname_unix' }],
  ['cgroup/sysctl', { hook: 'cgroup', type: 'sysctl' }],
  ['cgroup_skb/egress', { hook: 'cgroup', type: 'skb_egress' }],
  ['sockops', { hook: 'cgroup', type: 'sock_ops' }],
  ['sk_msg', { hook: 'sockmap', map: 'socks' }],
  ['sk_skb/stream_verdict', { hook: 'sockmap', map: 'socks' }],
];

test("every section prefix of libbpf's table derives an attach spec the schema accepts", () => {
  for (const [section, want] of CASES) {
    const got = attachFromSection(section, SOCKMAP);
    assert.deepEqual(got, want, section);
    const spec = {
      name: 'p',
      version: '1',
      objects: ['a.bpf.o'],
      programs: [{ name: 'prog', object: 'a.bpf.o', section, type: 'kprobe', attach: got }],
      maps: SOCKMAP,
      config: [],
      events: [],
    };
    assert.doesNotThrow(() => validatePackageSpec(spec), section);
  }
  assert.equal(
    attachFromSection('made_up/section', []),
    undefined,
    'only sections libbpf does not know need kbpf.yaml',
  );
});

test('the schema refuses targets of the wrong shape for the new hooks', () => {
  const specWith = (attach: unknown) => ({
    name: 'p',
    version: '1',
    objects: ['a.bpf.o'],
    programs: [{ name: 'prog', object: 'a.bpf.o', section: 's', type: 'kprobe', attach }],
  });
  for (const [attach, why] of [
    [{ hook: 'fentry' }, /target: is missing/],
    [{ hook: 'kprobe', target: 'a/../b' }, /not a kernel function/],
    [{ hook: 'perf_event', target: 'CYCLES!' }, /perf_event:EVENT\[:FREQUENCY\]/],
    [{ hook: 'netfilter', target: 'ipv4:nowhere' }, /netfilter:FAMILY:HOOK/],
    [{ hook: 'uprobe', target: '/bin/bash' }, /uprobe:BINARY:SYMBOL/],
    [{ hook: 'usdt', target: '../x:a:b' }, /must not contain/],
  ] as const)
    assert.throws(() => validatePackageSpec(specWith(attach)), why, JSON.stringify(attach));
  assert.throws(
    () =>
      validatePackageSpec({
        ...specWith({ hook: 'none' }),
        maps: [
          {
            name: 'm',
            object: 'a.bpf.o',
            type: 'hash',
            keySize: 4,
            valueSize: 4,
            maxEntries: 1,
            pin: true,
            share: 'Bad/Name',
          },
        ],
      }),
    /INSTANCE\[:MAP\]/,
  );
});

test('run-time targets: a bare target for the hook, or a whole HOOK:TARGET, checked like a spec', () => {
  const prog = {
    name: 'p',
    object: 'a.bpf.o',
    section: 'uprobe',
    type: 'kprobe',
    attach: { hook: 'uprobe' } as AttachSpec,
  };
  assert.deepEqual(resolveAttach(prog, { programs: { p: 'uprobe:/usr/bin/bash:readline' } }), {
    hook: 'uprobe',
    target: '/usr/bin/bash:readline',
  });
  assert.deepEqual(resolveAttach(prog, { programs: { p: '/usr/bin/bash:readline' } }), {
    hook: 'uprobe',
    target: '/usr/bin/bash:readline',
  });
  assert.throws(
    () => resolveAttach(prog, { programs: { p: 'uprobe:/usr/bin/bash' } }),
    /--attach p=uprobe:\/usr\/bin\/bash: uprobe needs uprobe:BINARY:SYMBOL/,
  );
  assert.deepEqual(parseAttachString('perf_event:cycles:49'), { hook: 'perf_event', target: 'cycles:49' });
  assert.deepEqual(parseAttachString('fentry:do_unlinkat'), { hook: 'fentry', target: 'do_unlinkat' });
});

test('kbpf.yaml: optional programs, variant groups, map sizes and shared maps', () => {
  const m = parseSourceManifest(
    'programs:\n  a: { optional: true, group: probe }\n  b: { attach: "perf_event:cpu-clock:49" }\nmaps:\n  counts: { maxEntries: 4096, share: collector:counts }\n',
  );
  assert.deepEqual(m.programs.a, { optional: true, group: 'probe' });
  assert.deepEqual(m.programs.b, { attach: { hook: 'perf_event', target: 'cpu-clock:49' } });
  assert.deepEqual(m.maps.counts, { pin: undefined, maxEntries: 4096, share: 'collector:counts' });
  assert.throws(() => parseSourceManifest('maps:\n  counts: { maxEntries: 0 }\n'), /positive integer/);
  assert.throws(() => parseSourceManifest('maps:\n  counts: { share: "a b" }\n'), /INSTANCE\[:MAP\]/);
  assert.throws(() => parseSourceManifest('programs:\n  a: { group: "x y" }\n'), /group must be a name/);
});
