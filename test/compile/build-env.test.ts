// The build environment: include paths, the compatibility headers, kfunc declarations, kbpf.yaml
// build settings, record structs kept in BTF, and what run takes for sources.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Btf } from 'kbpf/bpf';
import { runTarget } from '../../src/cli/verbs/run-source.js';
import { parseSearchList, systemIncludeDirs } from '../../src/compile/build-env.js';
import { buildPackage } from '../../src/compile/builder.js';
import { declaresKsym, kfuncHeader, kfuncsOf } from '../../src/compile/kfuncs.js';
import { parseSourceManifest } from '../../src/compile/source-manifest.js';
import {
  callsPrintk,
  definedStructs,
  includedText,
  keepTypesUnit,
  typedefStructs,
} from '../../src/compile/source-scan.js';
import { LayoutStore } from '../../src/package/layout-store.js';
import { VMLINUX_CACHE } from '../../testbed/agent.js';
import { tempDir } from '../../testbed/kernel.js';

const KERNEL_BTF = existsSync('/sys/kernel/btf/vmlinux');

test('the compiler search list is read from clang -v', () => {
  const out = [
    'clang version 14',
    '#include "..." search starts here:',
    '#include <...> search starts here:',
    ' /usr/lib/llvm-14/lib/clang/14.0.6/include',
    ' /usr/include/x86_64-linux-gnu',
    ' /usr/include',
    'End of search list.',
  ].join('\n');
  assert.deepEqual(parseSearchList(out), [
    '/usr/lib/llvm-14/lib/clang/14.0.6/include',
    '/usr/include/x86_64-linux-gnu',
    '/usr/include',
  ]);
  assert.deepEqual(parseSearchList('no list here'), []);
  assert.ok(systemIncludeDirs().includes('/usr/include'));
});

test('source scanning finds the structs a package defines and its bpf_printk calls, not in comments', () => {
  const text =
    '/* struct nope { */\nstruct event { int a; };\nstruct event *e;\nstruct hist {\n};\n// bpf_printk("x")\n';
  assert.deepEqual(definedStructs(text), ['event', 'hist']);
  assert.equal(callsPrintk(text), false);
  assert.equal(callsPrintk('bpf_printk("%d", 1);'), true);
  assert.equal(callsPrintk('bpf_trace_printk(fmt, sizeof(fmt));'), false);
  assert.match(
    keepTypesUnit('/src/a.bpf.c', ['event']),
    /^#include "\/src\/a\.bpf\.c"\nstruct event \*__kbpf_type_event .*\.kbpf\.types/,
  );
});

test("typedef'd structs are found (tagged or not, nested braces, not in comments) and kept by their names", () => {
  const text = [
    '/* typedef struct { int x; } nope_t; */',
    'typedef struct { __u32 pid; struct { int a; } inner; char comm[16]; } event_t;',
    'typedef struct hist { __u32 slots[26]; } hist_t;',
    'typedef int not_a_struct;',
    'typedef struct { int y; } __attribute__((packed)) packed_t;',
  ].join('\n');
  assert.deepEqual(typedefStructs(text), ['event_t', 'hist_t', 'packed_t']);
  const unit = keepTypesUnit('/src/a.bpf.c', ['hist'], ['event_t']);
  assert.match(unit, /^event_t \*__kbpf_type_event_t .*\.kbpf\.types/m);
  assert.match(unit, /^struct hist \*__kbpf_type_hist /m);
});

test('the text a source includes: its own headers, transitively, each once; others not', () => {
  const files: Record<string, string> = {
    'a.h': '#include "b.h"\ntypedef struct { int a; } a_t;',
    'b.h': '#include "a.h"\ntypedef struct { int b; } b_t;',
    'other.h': 'typedef struct { int o; } other_t;',
  };
  const text = includedText('#include "vmlinux.h"\n#include "a.h"\nint x;', (n) => files[n]);
  assert.deepEqual(typedefStructs(text), ['a_t', 'b_t']);
});

test('kfuncs are declared from the kernel BTF only where the source names them and does not declare them', {
  skip: !KERNEL_BTF && 'no kernel BTF',
}, () => {
  const k = Btf.kernel();
  const all = kfuncsOf(k);
  assert.ok(all.has('bpf_rcu_read_lock'), 'this kernel tags its kfuncs in BTF');
  const h = kfuncHeader(k, 'void f(void) { bpf_rcu_read_lock(); bpf_rcu_read_unlock(); }', all);
  assert.match(h, /extern void bpf_rcu_read_lock\(void\) __attribute__\(\(section\("\.ksyms"\), weak\)\);/);
  const own = 'extern void bpf_rcu_read_lock(void) __ksym;\nvoid f(void) { bpf_rcu_read_lock(); }';
  assert.equal(declaresKsym(own, 'bpf_rcu_read_lock'), true);
  assert.equal(kfuncHeader(k, own, all), '');
  assert.equal(kfuncHeader(k, 'int main(void) { return 0; }', all), '');
  if (all.has('bpf_task_from_pid')) {
    // typedefs spelled as plain C types and struct tags forward-declared, so UAPI sources take them
    const t = kfuncHeader(k, 'bpf_task_from_pid(1)', all);
    assert.match(t, /^struct task_struct;$/m);
    assert.match(t, /extern struct task_struct \*bpf_task_from_pid\(int pid\)/);
  }
});

test('kbpf.yaml build: defines, include dirs, sources and flags, with clear refusals', () => {
  const m = parseSourceManifest(
    'build:\n  defines: { MAX: 64, DEBUG: true, NAME: "\\"x\\"" }\n  include: [common]\n  sources: [extra/probe.c]\n  flags: [-Wno-unused-variable, -mcpu=v3]\n',
  );
  assert.deepEqual({ ...m.build.defines }, { MAX: '64', DEBUG: '', NAME: '"x"' });
  assert.deepEqual(m.build.include, ['common']);
  assert.deepEqual(m.build.sources, ['extra/probe.c']);
  assert.deepEqual(m.build.flags, ['-Wno-unused-variable', '-mcpu=v3']);
  assert.deepEqual({ ...parseSourceManifest('build:\n  defines: [A=1, B]\n').build.defines }, { A: '1', B: '' });
  const refused: [string, RegExp][] = [
    ['build:\n  defines: { "1X": 1 }\n', /build\.defines\.1X: "1X" is not a macro name/],
    [
      'build:\n  include: [../elsewhere]\n',
      /build\.include\[0\]: "\.\.\/elsewhere" must be a path inside the source directory/,
    ],
    ['build:\n  sources: [notes.txt]\n', /build\.sources\[0\]: "notes\.txt" is not a \.c file/],
    [
      'build:\n  flags: [-o/etc/passwd]\n',
      /build\.flags\[0\]: "-o\/etc\/passwd" is not a flag kbpf passes on \(allowed: -W…/,
    ],
    ['build:\n  cflags: []\n', /build: unknown key "cflags" \(known: defines, include, sources, flags\)/],
    [
      'events:\n  rb:\n    format: { saddr: ip4 }\n',
      /events\.rb\.format\.saddr: unknown format "ip4" \(known: ipv4, ipv6/,
    ],
  ];
  for (const [text, re] of refused) assert.throws(() => parseSourceManifest(text), re);
});

test('a UAPI-style source with kbpf.yaml defines and include dirs builds; its header-only record struct is the event type', {
  skip: !KERNEL_BTF && 'no kernel BTF',
}, async (t) => {
  const dir = tempDir(t, 'kbpf-uapi-');
  mkdirSync(join(dir, 'common'));
  writeFileSync(
    join(dir, 'common/rec.h'),
    'struct rec { __u32 pid; __u32 saddr; __u16 sport; char comm[16]; };\nstruct other { __u64 a, b, c, d, e; };\n',
  );
  writeFileSync(join(dir, 'kbpf.yaml'), 'name: uapi\nbuild:\n  defines: { RING_BYTES: 8192 }\n  include: [common]\n');
  writeFileSync(
    join(dir, 'uapi.bpf.c'),
    `#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <rec.h>
#ifndef BPF_UPROBE
#error no BPF_UPROBE
#endif
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, RING_BYTES); } rb SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	struct rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (!r)
		return 0;
	r->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, 0);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
`,
  );
  const store = new LayoutStore(tempDir(t, 'kbpf-store-'));
  const { spec } = await buildPackage(dir, { store, cacheDir: VMLINUX_CACHE });
  const rb = spec.events.find((e) => e.map === 'rb')!;
  assert.equal(rb.type, 'rec');
  assert.deepEqual(rb.format, { saddr: { kind: 'ipv4' }, sport: { kind: 'port' } });
  assert.equal(spec.maps.find((m) => m.name === 'rb')!.maxEntries, 8192);
  assert.equal(spec.config.length, 0);

  // a define the source needs and kbpf.yaml does not give: clang's error names the file
  writeFileSync(join(dir, 'kbpf.yaml'), 'name: uapi\nbuild:\n  include: [common]\n');
  await assert.rejects(
    buildPackage(dir, { store, cacheDir: VMLINUX_CACHE }),
    /compiling uapi\.bpf\.c failed\n.*RING_BYTES/,
  );
  writeFileSync(join(dir, 'kbpf.yaml'), 'name: uapi\nbuild:\n  include: [nowhere]\n');
  await assert.rejects(
    buildPackage(dir, { store, cacheDir: VMLINUX_CACHE }),
    /build\.include: nowhere: no such directory/,
  );
});

test('a map whose value holds a bpf_timer cannot be unpinned: the build says why', {
  skip: !KERNEL_BTF && 'no kernel BTF',
}, async (t) => {
  const dir = tempDir(t, 'kbpf-timer-');
  writeFileSync(
    join(dir, 'tick.bpf.c'),
    `#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct tick { struct bpf_timer timer; __u64 fired; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, struct tick); } ticks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } plain SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	__u32 zero = 0;
	struct tick *t = bpf_map_lookup_elem(&ticks, &zero);
	if (t)
		bpf_timer_init(&t->timer, &ticks, 1);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
`,
  );
  const store = new LayoutStore(tempDir(t, 'kbpf-store-'));
  writeFileSync(join(dir, 'kbpf.yaml'), 'name: tick\nmaps:\n  ticks: { pin: false }\n');
  await assert.rejects(
    buildPackage(dir, { store, cacheDir: VMLINUX_CACHE }),
    /maps\.ticks\.pin: false, but its value holds a bpf_timer: the kernel refuses bpf_timer_init on a map no file holds/,
  );
  // pinned (the default), or another map unpinned: it builds
  writeFileSync(join(dir, 'kbpf.yaml'), 'name: tick\nmaps:\n  plain: { pin: false }\n');
  const { spec } = await buildPackage(dir, { store, cacheDir: VMLINUX_CACHE });
  assert.equal(spec.maps.find((m) => m.name === 'ticks')!.pin, true);
  assert.equal(spec.maps.find((m) => m.name === 'plain')!.pin, false);
});

test('run takes a package reference, a source directory, or source files with their headers', (t) => {
  const dir = tempDir(t, 'kbpf-runsrc-');
  writeFileSync(join(dir, 'a.bpf.c'), '');
  writeFileSync(join(dir, 'a.h'), '');
  assert.deepEqual(runTarget('opensnoop:1.0.0', []), { kind: 'image', image: 'opensnoop:1.0.0' });
  assert.deepEqual(runTarget(dir, []), { kind: 'source', dir, includeDirs: [] });
  assert.deepEqual(runTarget(join(dir, 'a.bpf.c'), [join(dir, 'a.h')]), {
    kind: 'source',
    dir,
    files: ['a.bpf.c'],
    includeDirs: [],
  });
  assert.throws(() => runTarget('opensnoop:1.0.0', ['x.h']), /only a source file takes further files/);
  assert.throws(() => runTarget(join(dir, 'missing.bpf.c'), []), /missing\.bpf\.c: no such file/);
  assert.throws(() => runTarget(join(dir, 'a.bpf.c'), [join(dir, 'a.bpf.c.txt')]), /no such file/);
});

test('kbpf.yaml logs: sizes with units, bounded, with clear refusals', () => {
  assert.deepEqual(parseSourceManifest('logs: { max_bytes: 32Mi, keep: 2 }\n').logs, {
    maxBytes: 32 * 1024 * 1024,
    keep: 2,
  });
  assert.deepEqual(parseSourceManifest('logs:\n  max_bytes: 1048576\n').logs, { maxBytes: 1048576 });
  assert.equal(parseSourceManifest('name: x\n').logs, undefined);
  const refused: [string, RegExp][] = [
    ['logs: { max_bytes: 32 MB please }\n', /logs\.max_bytes must be a size in bytes, or a number with Ki, Mi or Gi/],
    ['logs: { max_bytes: 1Ki }\n', /logs: max_bytes 1024 is less than the 65536 bytes \(64Ki\)/],
    [
      'logs: { max_bytes: 512Mi, keep: 2 }\n',
      /logs: max_bytes 536870912 × 3 files .* more than the 1073741824 \(1Gi\)/,
    ],
    ['logs: { keep: 100 }\n', /logs: keep 100 is out of range \(0\.\.16/],
    ['logs: { keep: two }\n', /logs\.keep must be a whole number/],
    ['logs: { size: 1Mi }\n', /logs: unknown key "size" \(known: max_bytes, keep\)/],
    ['logs: 32Mi\n', /logs/],
  ];
  for (const [text, re] of refused) assert.throws(() => parseSourceManifest(text), re);
});
