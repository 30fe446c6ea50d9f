// XDP on an interface, in generic (skb) or native (driver) mode, as a BPF link.
import { attachType } from '../constants.js';
import { BpfError } from '../errors.js';
import { libbpf } from '../ffi/libbpf.js';
import type { Program } from '../program.js';
import { Link } from './link.js';
import { ifindexOf } from './netdev.js';
import { linkCreateOpts } from './opts.js';

export type XdpMode = 'generic' | 'native' | 'offload' | 'auto';
const XDP_FLAGS: Record<XdpMode, number> = { auto: 0, generic: 1 << 1, native: 1 << 2, offload: 1 << 3 };

export function attachXdp(prog: Program, iface: string | number, mode: XdpMode = 'auto'): Link {
  const ifindex = ifindexOf(iface);
  const what = `${prog.description} to XDP of ${iface} (${mode})`;
  const fd = libbpf.linkCreate(prog.fd, ifindex, attachType.value('xdp'), linkCreateOpts(XDP_FLAGS[mode]));
  if (fd < 0) {
    const hint =
      -fd === 16
        ? 'another XDP program is attached to this interface'
        : -fd === 95 && mode === 'native'
          ? 'the driver has no native XDP: use generic mode'
          : undefined;
    throw new BpfError('attach', what, -fd, { hint });
  }
  return new Link(fd, `link of ${what}`);
}
