// USDT probes, attached so that they can be pinned. libbpf's bpf_program__attach_usdt() makes
// one composite link without a kernel object of its own, which cannot be pinned; kbpf does what
// it does in pieces it can keep: read the binary's SDT notes (../usdt/notes.ts), write each
// distinct argument spec into the object's __bpf_usdt_specs map (../usdt/specs.ts), and attach
// one uprobe per probe site with the spec's id as the BPF cookie — a perf link each, which the
// kernel pins like any other link. usdt.bpf.h's bpf_usdt_arg() finds the spec by that cookie.

import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { Invalid, NotFound } from '../../errors.js';
import { BpfError } from '../errors.js';
import type { BpfObject } from '../object.js';
import type { Program } from '../program.js';
import { parseUsdtArgs } from '../usdt/args.js';
import { usdtSites } from '../usdt/notes.js';
import { USDT_SPECS_MAP, usdtSpecLayout } from '../usdt/specs.js';
import { resolveBinary } from './binary.js';
import type { Link } from './link.js';
import { attachUprobe } from './tracing.js';

export interface UsdtTarget {
  /** path or bare name ("libc.so.6") of the executable or library */
  binary: string;
  provider: string;
  name: string;
  /** only this process (default: every process) */
  pid?: number;
  /** what the program's bpf_usdt_cookie() returns */
  cookie?: bigint;
}

export interface UsdtLinks {
  /** one per probe site */
  links: Link[];
  /** the binary's path as attached */
  binary: string;
}

/** The next free spec id of each object's spec map (ids are shared by its programs). */
const nextSpecId = new WeakMap<object, number>();

/** Attaches a USDT program to every site of probe PROVIDER:NAME in a binary. */
export function attachUsdt(prog: Program, obj: BpfObject, target: UsdtTarget): UsdtLinks {
  const probe = `${target.provider}:${target.name}`;
  const what = `${prog.description} to USDT ${target.binary}:${probe}`;
  let binary: string;
  let sites: ReturnType<typeof usdtSites>;
  try {
    binary = resolveBinary(target.binary, target.pid);
    sites = usdtSites(readFileSync(binary), binary, target.provider, target.name);
  } catch (e) {
    throw new BpfError('attach', what, NotFound, { hint: (e as Error).message, cause: e });
  }
  const specs = obj.maps.get(USDT_SPECS_MAP);
  const layout = specs ? usdtSpecLayout(specs) : undefined;
  // one spec id per distinct argument string: the sites of an inlined probe often share one
  const ids = new Map<string, number>();
  if (specs && layout) {
    let next = nextSpecId.get(specs) ?? 0;
    const capacity = obj.mapMaxEntries(USDT_SPECS_MAP);
    for (const site of sites) {
      if (ids.has(site.args)) continue;
      if (next >= capacity)
        throw new BpfError('attach', what, Invalid, {
          hint: `the object's ${USDT_SPECS_MAP} holds ${capacity} argument specs and this needs more: give --map-size ${USDT_SPECS_MAP}=N`,
        });
      const where = `USDT ${probe} at 0x${site.address.toString(16)} in ${binary}`;
      const bytes = layout.encode(parseUsdtArgs(site.args, where), target.cookie ?? 0n, where);
      const key = Buffer.alloc(4);
      key.writeUInt32LE(next);
      specs.updateRaw(key, bytes);
      ids.set(site.args, next++);
    }
    nextSpecId.set(specs, next);
  }
  const links: Link[] = [];
  try {
    for (const site of sites)
      links.push(
        attachUprobe(prog, {
          binary,
          offset: site.offset,
          pid: target.pid,
          cookie: BigInt(ids.get(site.args) ?? 0),
          refCtrOffset: site.semaphoreOffset || undefined,
        }),
      );
  } catch (e) {
    for (const l of links) l.close();
    if (e instanceof BpfError && e.errno === constants.errno.EOPNOTSUPP)
      throw new BpfError('attach', what, e.errno, {
        hint: 'this kernel has no BPF cookies for uprobes (Linux 5.15+), which USDT arguments need',
        cause: e,
      });
    throw e;
  }
  return { links, binary };
}
