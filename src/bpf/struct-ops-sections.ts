// `.struct_ops.link` maps for a libbpf that predates them. libbpf 1.2 added the section: the
// map is created with BPF_F_LINK and registered through a link. Debian's libbpf 1.1 knows only
// `.struct_ops` and skips the other as an unknown data section, so its programs lose their
// struct_ops type. kbpf registers every struct_ops map through a link itself (link/struct-ops.ts),
// so the two sections mean the same to it: an object's `.struct_ops.link` section (and its
// relocations, and its BTF DATASEC) is renamed `.struct_ops` before libbpf 1.1 opens it.

// Sleepable struct_ops programs (`struct_ops.s/NAME`, libbpf 1.3) are likewise unknown to 1.1,
// which then cannot tie them to their map at open: their sections are renamed
// `struct_ops/s/NAME` (same length, so done in place — in the section name table and in the BTF
// strings .BTF.ext names sections by), opened as struct_ops programs, and made sleepable.

import { Unsupported } from '../errors.js';
import { readElfSectionHeaders, truncateElfSectionNames } from './btf/elf.js';
import { BpfError } from './errors.js';
import { kernelBtfHasName } from './kernel-btf-names.js';

/** map flag: a struct_ops map registered through a link */
export const BPF_F_LINK = 1 << 13;

const LINK_SECTION = '.struct_ops.link';
const PLAIN_SECTION = '.struct_ops';
const RENAMES = new Map([
  [LINK_SECTION, PLAIN_SECTION],
  [`.rel${LINK_SECTION}`, `.rel${PLAIN_SECTION}`],
]);

/** Whether this libbpf reads `.struct_ops.link` sections itself (1.2 and later). */
export function libbpfKnowsStructOpsLink(major: number, minor: number): boolean {
  return major > 1 || (major === 1 && minor >= 2);
}

/** The object's bytes as libbpf 1.1 can open them (`buf` itself when nothing needs renaming). */
export function withPlainStructOps(buf: Uint8Array, object: string): Uint8Array {
  const sections = readElfSectionHeaders(buf);
  if (!sections.some((s) => s.name === LINK_SECTION)) return buf;
  if (sections.some((s) => s.name === PLAIN_SECTION))
    throw new BpfError('open object', `"${object}"`, Unsupported, {
      hint: `it has both ${PLAIN_SECTION} and ${LINK_SECTION} maps, which this libbpf (older than 1.2) cannot open together`,
    });
  const out = truncateElfSectionNames(buf, RENAMES)!;
  // the DATASEC of the maps' variables carries the section's name: cut it the same way
  const btf = sections.find((s) => s.name === '.BTF');
  if (btf && btf.size >= 24) {
    const dv = new DataView(out.buffer, out.byteOffset + btf.offset, btf.size);
    const le = dv.getUint16(0, true) === 0xeb9f;
    const strStart = btf.offset + dv.getUint32(4, le) + dv.getUint32(16, le);
    const strEnd = Math.min(strStart + dv.getUint32(20, le), btf.offset + btf.size);
    // strings are NUL-separated and the first is empty: each whole name is "\0NAME\0"
    const needle = Buffer.from(`\0${LINK_SECTION}\0`);
    const strings = Buffer.from(out.buffer, out.byteOffset, out.byteLength).subarray(strStart, strEnd);
    for (let at = strings.indexOf(needle); at >= 0; at = strings.indexOf(needle, at + 1))
      out[strStart + at + 1 + PLAIN_SECTION.length] = 0;
  }
  return out;
}

const SLEEPABLE = Buffer.from('struct_ops.s/');
/** A sleepable struct_ops section as withPlainSleepableStructOps renamed it. */
export const RENAMED_SLEEPABLE = /^struct_ops\/s\//;

/** The section name a program had before withPlainSleepableStructOps renamed it. */
export function originalSection(section: string): string {
  return section.replace(RENAMED_SLEEPABLE, 'struct_ops.s/');
}

/**
 * The object's bytes with `struct_ops.s/NAME` sections renamed `struct_ops/s/NAME` (`buf` itself
 * when it has none), and whether any was.
 */
export function withPlainSleepableStructOps(buf: Uint8Array): { bytes: Uint8Array; renamed: boolean } {
  const sections = readElfSectionHeaders(buf);
  if (!sections.some((s) => s.name.startsWith('struct_ops.s/'))) return { bytes: buf, renamed: false };
  const out = Uint8Array.from(buf);
  const view = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  // the names are in the section name table and in .BTF's strings; no C name has "." or "/"
  for (const s of sections) {
    if (s.type !== 3 /* STRTAB */ && s.name !== '.BTF') continue;
    const region = view.subarray(s.offset, s.offset + s.size);
    for (let at = region.indexOf(SLEEPABLE); at >= 0; at = region.indexOf(SLEEPABLE, at + 1))
      region[at + 'struct_ops'.length] = 0x2f; // '.' → '/'
  }
  return { bytes: out, renamed: true };
}

/**
 * Whether this kernel registers struct_ops maps through links (BPF_F_LINK, Linux 6.4+): its BTF
 * has struct bpf_struct_ops_link.
 */
export function kernelHasStructOpsLinks(): boolean {
  return kernelBtfHasName('bpf_struct_ops_link');
}
