// The runtime's tables of kernel UAPI enums (src/bpf/constants.ts) agree with the running kernel's
// own BTF: every value both know has the same name. A newer kernel only appends values; an older
// one knows fewer — neither fails here, a renumbered or misspelt entry does.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Btf } from '../../src/bpf/btf/index.js';
import { ATTACH_TYPES, HELPER_NAMES, LINK_TYPES, MAP_TYPES, PROG_TYPES } from '../../src/bpf/constants.js';

const VMLINUX = '/sys/kernel/btf/vmlinux';

const TABLES: [enumName: string, prefix: string, table: readonly string[]][] = [
  ['bpf_prog_type', 'BPF_PROG_TYPE_', PROG_TYPES],
  ['bpf_map_type', 'BPF_MAP_TYPE_', MAP_TYPES],
  ['bpf_attach_type', 'BPF_', ATTACH_TYPES],
  ['bpf_link_type', 'BPF_LINK_TYPE_', LINK_TYPES],
  ['bpf_func_id', 'BPF_FUNC_', HELPER_NAMES],
];

test('the UAPI enum tables match the running kernel BTF', { skip: !existsSync(VMLINUX) && 'no kernel BTF' }, () => {
  const btf = Btf.parse(new Uint8Array(readFileSync(VMLINUX)));
  for (const [enumName, prefix, table] of TABLES) {
    const found = btf.findByName(enumName, 'ENUM');
    assert.ok(found && found.type.kind === 'ENUM', `the kernel's BTF has enum ${enumName}`);
    let compared = 0;
    for (const v of found.type.values) {
      if (v.value >= table.length || v.name.startsWith('__MAX')) continue;
      // the kernel renames retired values (BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED); bpftool keeps the old name
      const name = v.name
        .slice(prefix.length)
        .toLowerCase()
        .replace(/_deprecated$/, '');
      assert.equal(table[v.value], name, `${enumName} ${v.value} is ${v.name}`);
      compared++;
    }
    assert.ok(compared > 10, `${enumName}: compared ${compared} values`);
  }
});
