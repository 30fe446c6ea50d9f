// What the node's kernel supports (kbpf doctor).
import type { KernelFeatures } from 'kbpf/bpf';
import { data, isData, type ListFormat, table } from './output.js';
import { cell } from './values.js';

function yn(b: boolean): string {
  return b ? 'yes' : 'no';
}

/** "none", or the names of what is missing ("x (?)" when the probe could not tell). */
function missing(support: Record<string, string>): string {
  const no = Object.entries(support)
    .filter(([, v]) => v !== 'yes')
    .map(([k, v]) => (v === 'no' ? cell(k) : `${cell(k)} (?)`));
  return no.length ? no.join(', ') : 'none';
}

function count(support: Record<string, string>): string {
  return `${Object.values(support).filter((v) => v === 'yes').length} of ${Object.keys(support).length}`;
}

export function renderDoctor(format: ListFormat, f: KernelFeatures): string {
  if (isData(format)) return data(format, f);
  const wide = format === 'wide';
  return [
    `kernel: ${cell(f.kernel)}\nlibbpf: ${cell(f.libbpf)}\n`,
    `BTF: ${yn(f.btf)}   JIT: ${yn(f.jit)}   unprivileged BPF: ${yn(f.unprivilegedBpf)}\n\n`,
    table(
      ['HOOK', 'SUPPORTED', 'DETAIL'],
      Object.entries(f.hooks).map(([h, s]) => [cell(h), cell(s.supported), cell(s.detail)]),
    ),
    `\nprogram types: ${count(f.programTypes)}; missing: ${missing(f.programTypes)}\n`,
    `map types: ${count(f.mapTypes)}; missing: ${missing(f.mapTypes)}\n`,
    ...(wide
      ? [
          `\n${table(
            ['PROGRAM TYPE', 'SUPPORTED'],
            Object.entries(f.programTypes).map(([k, v]) => [cell(k), cell(v)]),
          )}`,
          `\n${table(
            ['MAP TYPE', 'SUPPORTED'],
            Object.entries(f.mapTypes).map(([k, v]) => [cell(k), cell(v)]),
          )}`,
        ]
      : []),
  ].join('');
}
