// BPF netfilter programs (kernel 6.4+): attached to one netfilter hook of one protocol family
// with a priority, through BPF_LINK_CREATE (Debian's libbpf 1.1 has no wrapper for it).

import { Invalid } from '../../errors.js';
import { archInfo } from '../arch.js';
import { attachType } from '../constants.js';
import { BpfError } from '../errors.js';
import { lastErrno } from '../ffi/koffi.js';
import { libc } from '../ffi/libc.js';
import type { Program } from '../program.js';
import { Link } from './link.js';

const BPF_LINK_CREATE = 28;
const ATTR_SIZE = 64;
export const NF_FAMILIES: Record<string, number> = { inet: 1, ipv4: 2, arp: 3, bridge: 7, ipv6: 10 };
export const NF_HOOKS: Record<string, number> = {
  prerouting: 0,
  local_in: 1,
  forward: 2,
  local_out: 3,
  postrouting: 4,
};

export interface NetfilterTarget {
  family: string;
  hook: string;
  priority?: number;
}

/** Attaches to netfilter hook `hook` of `family` ("ipv4", "local_in", priority 0 by default). */
export function attachNetfilter(prog: Program, target: NetfilterTarget): Link {
  const what = `${prog.description} to netfilter ${target.family} ${target.hook}`;
  const pf = NF_FAMILIES[target.family];
  const hooknum = NF_HOOKS[target.hook];
  if (pf === undefined || hooknum === undefined)
    throw new BpfError('attach', what, Invalid, {
      hint: `families: ${Object.keys(NF_FAMILIES).join(', ')}; hooks: ${Object.keys(NF_HOOKS).join(', ')}`,
    });
  const attr = Buffer.alloc(ATTR_SIZE);
  attr.writeUInt32LE(prog.fd, 0);
  attr.writeUInt32LE(attachType.value('netfilter'), 8);
  attr.writeUInt32LE(pf, 16);
  attr.writeUInt32LE(hooknum, 20);
  attr.writeInt32LE(target.priority ?? 0, 24);
  const fd = Number(libc.bpf(archInfo().sysBpf, BPF_LINK_CREATE, attr, ATTR_SIZE));
  if (fd < 0) throw new BpfError('attach', what, lastErrno());
  return new Link(fd, `link of ${what}`);
}
