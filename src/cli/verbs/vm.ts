// `kbpf vm export IMAGE PROGRAM -o prog.wasm`: a package's program (or an object file's) compiled
// to a standalone WebAssembly module for other Wasm hosts, its import/export ABI in the module's
// `kbpf.abi` custom section (docs/vm.md, "Exported modules"). Works on the local store directly.
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { LayoutStore } from '../../package/layout-store.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { json } from '../render/output.js';
import { cell, size } from '../render/values.js';

export function addVmVerbs(program: Command, ctx: CliContext): void {
  const vm = program.command('vm').description('the user-space eBPF engine');
  vm.command('export')
    .description('write a program compiled to a standalone WebAssembly module (imports: memory, maps, helpers)')
    .argument('<image>', 'a package in the local store, or a BPF object file (.o)')
    .argument('<program>', 'the program (function name)')
    .requiredOption('-o, --out <file>', 'where to write the module (.wasm)')
    .option('--abi', "print the module's ABI (its kbpf.abi section) as JSON")
    .addHelpText(
      'after',
      '\nExample:\n  kbpf vm export packetfilter:1.0.0 xdp_filter -o filter.wasm\n\nThe ABI: docs/vm.md, "Exported modules".',
    )
    .action(async (image: string, name: string, opts: { out: string; abi?: boolean }, c: Command) => {
      const { exportWasmModule } = await import('../../vm/export.js');
      let objects: { file: string; bytes: Uint8Array }[];
      if (image.endsWith('.o') && existsSync(image)) objects = [{ file: image, bytes: readFileSync(image) }];
      else {
        const { readPackageObjects } = await import('../../package/package-objects.js');
        objects = (await readPackageObjects(new LayoutStore(ctx.paths(c).storeDir), image)).objects;
      }
      const { readVmObject } = await import('../../vm/elf.js');
      const object = objects.find((o) => readVmObject(o.bytes).programs.some((p) => p.name === name));
      if (!object) throw new CliError(`${image} has no program ${name}`);
      const { module, abi } = exportWasmModule(object.bytes, name);
      await writeFile(opts.out, module);
      if (opts.abi) return ctx.out(json(abi));
      const imports = [
        'memory',
        'fault',
        'stop',
        ...abi.helpers.map((h) => h.import),
        ...(abi.lookupI32 ? ['map_lookup_elem_i32'] : []),
      ];
      ctx.out(
        `wrote ${cell(opts.out)} (${size(module.length)}): ${cell(name)} (${cell(abi.type)}), ${abi.maps.length} map(s)\nimports: env.${imports.join(', env.')}\n`,
      );
    });
}
