// Whether a name — a type, a member, an enum value — is in the running kernel's BTF string table
// (`/sys/kernel/btf/vmlinux`): a cheap test for a kernel feature that came with a type or an
// attach type (struct bpf_struct_ops_link, BPF_TRACE_FSESSION). Answers are kept per name; the
// file (several MB) is read only when a name is first asked about, and not kept.
import { readFileSync } from 'node:fs';

const answers = new Map<string, boolean>();

export function kernelBtfHasName(name: string): boolean {
  let has = answers.get(name);
  if (has === undefined) {
    try {
      has = readFileSync('/sys/kernel/btf/vmlinux').includes(`\0${name}\0`);
    } catch {
      has = false;
    }
    answers.set(name, has);
  }
  return has;
}
