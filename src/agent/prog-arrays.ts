// Program arrays a package's loader would fill (tail calls: bcc-style `prog_array` maps whose
// entries user space sets to program fds): the agent fills them from the package spec
// (`maps.NAME.programs` in kbpf.yaml: index → program) after load, before anything is attached,
// and can put back what the entries held before (an upgrade undone on a carried-over map).
import { type BpfObject, Program } from 'kbpf/bpf';
import type { PackageSpec } from '../package/package-spec.js';

const u32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};

/**
 * Sets each declared entry of the package's program arrays to its program (only programs that
 * run here: a disabled variant's entry is left empty, and the names are returned). Returns the
 * undo: every entry back to the program it held (by id), or empty.
 */
export function fillProgArrays(
  spec: PackageSpec,
  objects: ReadonlyMap<string, BpfObject>,
  runs: ReadonlySet<string>,
): { undo: () => void; skipped: string[] } {
  const before: { map: string; object: string; index: number; id: number | undefined }[] = [];
  const skipped: string[] = [];
  const undo = () => {
    for (const b of before.reverse()) {
      const map = objects.get(b.object)!.map(b.map);
      if (b.id === undefined) {
        map.delete(b.index);
        continue;
      }
      try {
        const prog = Program.fromId(b.id);
        try {
          map.updateRaw(u32(b.index), u32(prog.fd));
        } finally {
          prog.close();
        }
      } catch {
        map.delete(b.index); // the program it held is gone
      }
    }
  };
  try {
    for (const m of spec.maps) {
      if (!m.programs) continue;
      const map = objects.get(m.object)!.map(m.name);
      for (const [i, name] of Object.entries(m.programs)) {
        if (!runs.has(name)) {
          skipped.push(`${m.name}[${i}] (${name} does not run here)`);
          continue;
        }
        const index = Number(i);
        const held = map.lookupRaw(u32(index));
        before.push({
          map: m.name,
          object: m.object,
          index,
          id: held ? new DataView(held.buffer, held.byteOffset).getUint32(0, true) : undefined,
        });
        map.updateRaw(u32(index), u32(objects.get(m.object)!.program(name).fd));
      }
    }
  } catch (e) {
    undo();
    throw e;
  }
  return { undo, skipped };
}
