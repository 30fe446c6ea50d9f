// Which programs run, decided from what a kernel has (a made-up kernel here: the choice is a
// pure function of the probes' answers).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KernelHook } from 'kbpf/bpf';
import { choosePrograms, type KernelView } from '../../src/agent/program-choice.js';
import { Invalid, isKind, Unsupported } from '../../src/errors.js';
import type { AttachSpec, PackageSpec, ProgramSpec } from '../../src/package/package-spec.js';

function kernel(has: KernelHook[], missing: string[] = []): KernelView {
  return {
    hook: (h) =>
      has.includes(h)
        ? { supported: 'yes', detail: 'ok' }
        : {
            supported: 'no',
            detail: h === 'kprobe' ? 'this kernel has no kprobe support' : `${h} is refused by this kernel`,
          },
    hasFunction: (n) => !missing.includes(n),
    hasTracepoint: (n) => !missing.includes(n),
  };
}

function pkg(...programs: [string, AttachSpec, Partial<ProgramSpec>?][]): PackageSpec {
  return {
    name: 'p',
    version: '1',
    objects: ['a.bpf.o'],
    programs: programs.map(([name, attach, extra]) => ({
      name,
      object: 'a.bpf.o',
      section: 's',
      type: 't',
      attach,
      ...extra,
    })),
    maps: [],
    config: [],
    events: [],
    builder: 'test',
  };
}

const states = (r: ReturnType<typeof choosePrograms>) =>
  Object.fromEntries([...r.programs.values()].map((c) => [c.name, c.state]));

test('fentry/kprobe variants: fentry where the kernel has it, kprobe where only that, refused naming both where neither', () => {
  const spec = pkg(
    ['fe', { hook: 'fentry', target: 'do_unlinkat' }],
    ['kp', { hook: 'kprobe', target: 'do_unlinkat' }],
    ['fx', { hook: 'fexit', target: 'do_unlinkat' }],
    ['kr', { hook: 'kretprobe', target: 'do_unlinkat' }],
  );
  assert.deepEqual(states(choosePrograms(spec, {}, kernel(['fentry', 'kprobe']))), {
    fe: 'run',
    kp: 'disabled',
    fx: 'run',
    kr: 'disabled',
  });
  const k = choosePrograms(spec, {}, kernel(['kprobe']));
  assert.deepEqual(states(k), { fe: 'disabled', kp: 'run', fx: 'disabled', kr: 'run' });
  assert.match(k.programs.get('kp')!.reason!, /fe \(fentry do_unlinkat\): fentry is refused by this kernel/);
  assert.throws(
    () => choosePrograms(spec, {}, kernel([])),
    (e: Error) =>
      isKind(e, Unsupported) &&
      /fentry is refused by this kernel/.test(e.message) &&
      /no kprobe support/.test(e.message),
  );
});

test('ksyscall and fentry on the syscall function are variants; tp_btf > raw_tp > tracepoint', () => {
  const spec = pkg(
    ['a', { hook: 'fentry', target: '__x64_sys_openat' }],
    ['b', { hook: 'ksyscall', target: 'openat' }],
    ['c', { hook: 'tracepoint', target: 'sched/sched_switch' }],
    ['d', { hook: 'raw_tracepoint', target: 'sched_switch' }],
    ['e', { hook: 'tp_btf', target: 'sched_switch' }],
  );
  assert.deepEqual(states(choosePrograms(spec, {}, kernel(['kprobe', 'tracepoint', 'raw_tracepoint']))), {
    a: 'disabled',
    b: 'run',
    c: 'disabled',
    d: 'run',
    e: 'disabled',
  });
});

test('declared groups, optional programs, and functions or tracepoints this kernel lacks', () => {
  const grouped = pkg(
    ['x', { hook: 'lsm', target: 'file_open' }, { group: 'guard' }],
    ['y', { hook: 'tracepoint', target: 'syscalls/sys_enter_openat' }, { group: 'guard' }],
  );
  assert.deepEqual(states(choosePrograms(grouped, {}, kernel(['tracepoint']))), { x: 'disabled', y: 'run' });

  const optional = pkg(
    ['main', { hook: 'tracepoint', target: 'a/b' }],
    ['extra', { hook: 'kprobe', target: 'f' }, { optional: true }],
  );
  const o = choosePrograms(optional, {}, kernel(['tracepoint']));
  assert.deepEqual(states(o), { main: 'run', extra: 'skipped' });
  assert.match(o.warnings[0]!, /skipped optional program extra \(kprobe f\): this kernel has no kprobe support/);

  const lacking = pkg(
    ['here', { hook: 'tracepoint', target: 'a/b' }],
    ['gone', { hook: 'tracepoint', target: 'arch/only_on_arm' }],
  );
  const l = choosePrograms(lacking, {}, kernel(['tracepoint'], ['arch/only_on_arm']));
  assert.deepEqual(states(l), { here: 'run', gone: 'skipped' });
  assert.match(l.warnings[0]!, /no tracepoint arch\/only_on_arm/);
  assert.throws(
    () => choosePrograms(pkg(['gone', { hook: 'tracepoint', target: 'x/y' }]), {}, kernel(['tracepoint'], ['x/y'])),
    /no program of p can run on this kernel: gone \(tracepoint x\/y\): this kernel has no tracepoint x\/y/,
  );
});

test('a program whose section names no target needs one at run, in the form shown', () => {
  const spec = pkg(['probe', { hook: 'usdt' }]);
  assert.throws(
    () => choosePrograms(spec, {}, kernel(['uprobe'])),
    (e: Error) => isKind(e, Invalid) && /--attach probe=usdt:BINARY:PROVIDER:NAME/.test(e.message),
  );
  const perf = pkg(['sample', { hook: 'perf_event' }]);
  assert.deepEqual(states(choosePrograms(perf, {}, kernel(['perf_event']))), { sample: 'run' });
});

test('a BTF-typed program cannot be pointed elsewhere at run: its target is in the object', () => {
  const spec = pkg(['fe', { hook: 'fentry', target: 'do_unlinkat' }]);
  assert.throws(
    () => choosePrograms(spec, { programs: { fe: 'vfs_read' } }, kernel(['fentry'])),
    (e: Error) => isKind(e, Invalid) && /target of a fentry program is fixed when it is built/.test(e.message),
  );
});

test('run --optional makes programs optional for one instance; a refusal says how to run the others without them', () => {
  const spec = pkg(
    ['main', { hook: 'tracepoint', target: 'a/b' }],
    ['probe', { hook: 'kprobe', target: 'f' }],
    ['trampoline', { hook: 'fentry', target: 'g' }],
  );
  assert.throws(
    () => choosePrograms(spec, {}, kernel(['tracepoint'])),
    (e: Error) => {
      assert.ok(isKind(e, Unsupported), e.message);
      assert.match(
        e.message,
        /program probe \(section "s"\) cannot run on this kernel: this kernel has no kprobe support/,
      );
      assert.match(e.message, /to run the other programs without it: --optional probe \(or --optional all/);
      return true;
    },
  );
  const one = choosePrograms(spec, { optional: ['probe', 'trampoline'] }, kernel(['tracepoint']));
  assert.deepEqual(states(one), { main: 'run', probe: 'skipped', trampoline: 'skipped' });
  assert.equal(one.warnings.length, 2);
  assert.deepEqual(states(choosePrograms(spec, { optional: ['*'] }, kernel(['tracepoint']))), states(one));
  // where the kernel runs it, an optional program runs
  assert.deepEqual(states(choosePrograms(spec, { optional: ['*'] }, kernel(['tracepoint', 'kprobe', 'fentry']))), {
    main: 'run',
    probe: 'run',
    trampoline: 'run',
  });
  assert.throws(
    () => choosePrograms(spec, { optional: ['nope'] }, kernel(['tracepoint'])),
    (e: Error) => isKind(e, Invalid) && /--optional nope: the package has no program "nope"/.test(e.message),
  );
  // nothing else would run: no hint
  assert.throws(
    () => choosePrograms(pkg(['probe', { hook: 'kprobe', target: 'f' }]), {}, kernel([])),
    (e: Error) => !/--optional/.test(e.message),
  );
});
