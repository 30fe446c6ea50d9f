// The guest skeleton: event structs written for wasm32 with the BPF side's layout (pointers,
// u64 alignment, padding, nested structs, arrays), checked by compiling them for wasm32 with the
// offsets and sizes BTF records as static assertions; names of programs and maps.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KBPF_INCLUDE_DIR } from '../../src/compile/build-env.js';
import { compileBpf } from '../../src/compile/clang.js';
import { deriveFromObject } from '../../src/compile/derive.js';
import { guestSkeleton } from '../../src/compile/guest-skeleton.js';
import { ensureVmlinuxHeader } from '../../src/compile/vmlinux.js';

const VMLINUX_CACHE = fileURLToPath(new URL('../../../build/', import.meta.url));

test('the skeleton lays event structs out for wasm32 as the BPF side does, and names programs and maps', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-skel-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'odd.bpf.c'),
    `#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <kbpf.h>
struct inner { __u8 tag; __u64 when; };
struct odd_event {
	__u8 kind;
	__u64 ts;
	void *where;
	__u16 port;
	struct inner in[2];
	char comm[5];
	long delta;
};
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } odd_events SEC(".maps");
KBPF_EVENT(odd_events, struct odd_event);
SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
`,
  );
  const header = ensureVmlinuxHeader(VMLINUX_CACHE);
  await compileBpf(join(dir, 'odd.bpf.c'), join(dir, 'odd.bpf.o'), {
    includeDirs: [join(header, '..'), KBPF_INCLUDE_DIR],
  });
  const d = deriveFromObject('odd.bpf.o', (await import('node:fs')).readFileSync(join(dir, 'odd.bpf.o')));
  const skel = guestSkeleton(
    'odd',
    d.btf,
    d.programs.map((p) => p.name),
    d.maps.map((m) => m.name),
    d.events.flatMap((e) => (e.type ? [e.type] : [])),
  );
  assert.match(skel, /#define odd_prog_on_getppid "on_getppid"/);
  assert.match(skel, /#define odd_map_odd_events "odd_events"/);
  assert.match(skel, /uint64_t where;/, 'a BPF pointer is 8 bytes on wasm32 too');
  assert.match(skel, /struct inner in\[2\];/);
  assert.match(skel, /_Static_assert\(sizeof\(struct odd_event\) == \d+/);
  writeFileSync(join(dir, 'odd.skel.h'), skel);
  writeFileSync(join(dir, 'odd.bpf.o.h'), 'static const unsigned char odd_bpf_o[] = { 0 };\n');
  writeFileSync(
    join(dir, 'use.c'),
    '#include "odd.skel.h"\nint size_of_event(void) { return sizeof(struct odd_event) + odd_object_size; }\n',
  );
  // the static assertions (every field's offset, every struct's size) hold on wasm32
  execFileSync('clang', [
    '--target=wasm32-wasi',
    '--sysroot=/usr',
    '-c',
    '-Wall',
    '-Werror',
    '-I',
    dir,
    join(dir, 'use.c'),
    '-o',
    join(dir, 'use.o'),
  ]);
});
