// Feature probing reports this kernel as it is: kprobes as the kernel has them (where it has
// none, attaching one is refused with an Unsupported error that names the feature; where it has
// them, the attach works), tracepoints and uprobes yes, the program and map types kbpf's
// applications need, fentry as the kernel answers a real load + attach attempt, and helpers per
// program type.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { test } from 'node:test';
import {
  attachAuto,
  attachKprobe,
  BpfObject,
  probeFeatures,
  probeHelpers,
  probeHooks,
  probeProgramTypes,
  UnsupportedError,
} from '../../src/bpf/index.js';
import { isKind, Refused, Unsupported } from '../../src/errors.js';
import { kernelIds, objectPath } from '../../testbed/kernel.js';
import { leftOfOurs, NOTHING, oursOf } from './leak-check.js';

/** The kernel has kprobes when it has the kprobe PMU (what libbpf attaches through). */
const KPROBES = existsSync('/sys/bus/event_source/devices/kprobe');

test('probeFeatures describes this kernel', async () => {
  const before = kernelIds();
  const f = await probeFeatures();
  assert.equal(f.kernel, release());
  assert.equal(f.btf, true);
  assert.match(f.libbpf, /^1\.\d+$/);

  // hooks
  if (KPROBES) {
    assert.equal(f.hooks.kprobe!.supported, 'yes', f.hooks.kprobe!.detail);
  } else {
    assert.equal(f.hooks.kprobe!.supported, 'no');
    assert.match(f.hooks.kprobe!.detail, /kprobe/i);
    assert.match(f.hooks.kprobe!.detail, /tracepoint/);
  }
  assert.equal(f.hooks.tracepoint!.supported, 'yes');
  assert.equal(f.hooks.uprobe!.supported, 'yes');
  assert.equal(f.hooks.cgroup_v2!.supported, 'yes');
  assert.equal(f.hooks.tcx!.supported, 'yes');
  assert.equal(f.hooks.sockmap_link!.supported, 'yes');

  // fentry: the probe loads and attaches a real fentry program. On this kernel the load is
  // refused (EPERM, with an empty verifier log) although the target symbol exists; whatever the
  // kernel says, the report must agree with it and say why.
  const fentry = f.hooks.fentry!;
  assert.notEqual(fentry.supported, 'unknown', `the fentry probe ran: ${fentry.detail}`);
  if (fentry.supported === 'no') {
    assert.match(fentry.detail, /fentry/);
    assert.match(fentry.detail, /\(E[A-Z]+\)/, 'names the errno');
    // libbpf's own type probe for tracing programs tries an fentry load too: the two agree
    assert.equal(f.programTypes.tracing, 'no');
  } else {
    assert.equal(fentry.detail, 'fentry program loaded and attached');
  }

  // program types the applications use
  for (const t of [
    'cgroup_sock_addr',
    'sock_ops',
    'sk_msg',
    'sk_skb',
    'xdp',
    'sched_cls',
    'tracepoint',
    'raw_tracepoint',
    'socket_filter',
    'cgroup_sockopt',
    'cgroup_skb',
  ]) {
    assert.equal(f.programTypes[t], 'yes', `program type ${t}`);
  }
  // the kprobe *program type* exists (uprobes use it); only the kprobe hook is missing
  assert.equal(f.programTypes.kprobe, 'yes');
  assert.equal(f.programTypes.unspec, undefined);
  for (const t of [
    'ringbuf',
    'sockhash',
    'sockmap',
    'hash',
    'array',
    'percpu_array',
    'lru_hash',
    'perf_event_array',
    'queue',
    'lpm_trie',
  ]) {
    assert.equal(f.mapTypes[t], 'yes', `map type ${t}`);
  }
  assert.deepEqual(probeProgramTypes(), f.programTypes, 'probing is repeatable');

  // the fentry probe left nothing behind
  assert.deepEqual(await leftOfOurs(before, { progs: ['probe_fentry'], objects: ['kbpf_probe_fentry'] }), NOTHING);
});

test('probeHelpers lists the helpers a program type may call', () => {
  const xdp = probeHelpers('xdp');
  for (const h of [
    'redirect',
    'map_lookup_elem',
    'map_update_elem',
    'xdp_adjust_head',
    'redirect_map',
    'ktime_get_ns',
  ]) {
    assert.ok(xdp.includes(h), `xdp may call ${h}`);
  }
  assert.ok(!xdp.includes('sk_redirect_hash'), 'sk_msg-only helpers are not listed for xdp');
  const skMsg = probeHelpers('sk_msg');
  assert.ok(skMsg.includes('msg_redirect_hash'));
  assert.ok(!skMsg.includes('xdp_adjust_head'));
  assert.ok(probeHelpers('tracepoint').includes('probe_read_user_str'));
});

test('attaching a kprobe: refused with an Unsupported error before touching a kernel without kprobes, attached where it has them', async () => {
  const before = kernelIds();
  const hooks = await probeHooks();
  assert.equal(hooks.kprobe!.supported, KPROBES ? 'yes' : 'no');
  const obj = BpfObject.open(objectPath(import.meta.url, 'tracing.bpf.o'));
  try {
    for (const p of obj.programs.values()) if (p.name !== 'on_unlinkat') p.setAutoload(false);
    obj.load(); // the program type loads; only attaching needs kprobes
    const prog = obj.program('on_unlinkat');
    assert.equal(prog.type, 'kprobe');
    if (KPROBES) {
      for (const link of [attachKprobe(prog, 'do_unlinkat'), attachAuto(prog)]) {
        assert.ok(link.info().id > 0);
        link.detach();
      }
    } else {
      const isUnsupported = (e: unknown) => {
        assert.ok(e instanceof UnsupportedError, String(e));
        assert.ok(isKind(e, Unsupported), 'its kind is Unsupported');
        assert.ok(!isKind(e, Refused), 'refused by kbpf, not by the kernel');
        assert.equal(e.feature, 'kprobes');
        assert.match(e.message, /on_unlinkat/);
        assert.match(e.message, /no kprobes/);
        assert.match(e.message, /use a tracepoint/);
        return true;
      };
      assert.throws(() => attachKprobe(prog, 'do_unlinkat'), isUnsupported);
      assert.throws(
        () => attachKprobe(prog, 'do_unlinkat', { retprobe: true }),
        (e: unknown) => isUnsupported(e) && /kretprobe do_unlinkat/.test((e as Error).message),
      );
      // attaching by section goes through the same check
      assert.throws(() => attachAuto(prog), isUnsupported);
    }
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});
