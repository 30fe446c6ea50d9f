// `kbpf run GUEST.wasm`: the run options of a Wasm guest, and storing a bare .wasm as a package
// (its Wasm layer first, the BPF objects it embeds after it) so that it runs as any instance.
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { LayoutStore } from '../package/layout-store.js';
import type { GuestLimits } from '../package/package-spec.js';
import { guestPackage } from '../wasm/guest-package.js';
import { CliError } from './errors.js';
import { positiveInt } from './options.js';

export interface GuestRunOptions {
  allowType?: string[];
  allowAttach?: string[];
  allowMap?: string[];
  memory?: number;
  cpuBudget?: number;
  cpuWindow?: number;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function addGuestOptions(cmd: Command): Command {
  return cmd
    .option('--allow-type <type>', 'Wasm guest: a program type it may load besides its own (repeatable)', collect)
    .option(
      '--allow-attach <target>',
      "Wasm guest: an attach target it may use besides its programs' sections: SECTION or SECTION:TARGET, e.g. xdp:lo, sockops:/sys/fs/cgroup; a trailing * matches any rest (repeatable)",
      collect,
    )
    .option('--allow-map <name>', 'Wasm guest: a map it may use besides its own (repeatable)', collect)
    .option('--memory <MiB>', 'Wasm guest: its linear memory limit (default 128)', positiveInt('--memory'))
    .option(
      '--cpu-budget <ms>',
      'Wasm guest: CPU time it may use per window (default 1000)',
      positiveInt('--cpu-budget'),
    )
    .option(
      '--cpu-window <ms>',
      'Wasm guest: the window of its CPU budget (default 2000)',
      positiveInt('--cpu-window'),
    );
}

/** Whether `image` names a Wasm guest file rather than a package. */
export function isGuestFile(image: string): boolean {
  return image.endsWith('.wasm') && existsSync(image);
}

/** Stores the guest file as a package in the local store; returns its reference. */
export async function storeGuest(
  storeDir: string,
  file: string,
  args: string[],
  opts: GuestRunOptions,
): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const limits: GuestLimits = {};
  if (opts.memory) limits.memoryMb = opts.memory;
  if (opts.cpuBudget) limits.cpuMs = opts.cpuBudget;
  if (opts.cpuWindow) limits.windowMs = opts.cpuWindow;
  const pkg = guestPackage(file, bytes, {
    args,
    allow: { programTypes: opts.allowType, attachTargets: opts.allowAttach, maps: opts.allowMap },
    limits: Object.keys(limits).length ? limits : undefined,
  });
  const store = new LayoutStore(storeDir);
  await store.init();
  const stored = await store.putPackage({
    manifest: pkg.spec as unknown as Record<string, unknown>,
    layers: pkg.layers,
  });
  return stored.reference;
}
