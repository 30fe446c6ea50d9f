// sk_msg and sk_skb programs attached to a sockmap or sockhash, as BPF links (kernel 6.10+),
// falling back to a plain prog_attach on older kernels (then the returned handle detaches by
// BPF_PROG_DETACH and cannot be pinned).
import { attachType } from '../constants.js';
import { BpfError } from '../errors.js';
import { libbpf } from '../ffi/libbpf.js';
import type { BpfMap } from '../map.js';
import type { Program } from '../program.js';
import { Link } from './link.js';

const DEFAULT_FOR_TYPE: Record<string, string> = {
  sk_msg: 'sk_msg_verdict',
  sk_skb: 'sk_skb_stream_verdict',
};

/** Attaches a verdict/parser program to a sockmap/sockhash. */
export function attachSockmap(
  prog: Program,
  map: BpfMap,
  type?: 'sk_msg_verdict' | 'sk_skb_stream_verdict' | 'sk_skb_stream_parser' | 'sk_skb_verdict',
): Link {
  const expected = prog.expectedAttachType;
  const name =
    type ?? (expected !== 'cgroup_inet_ingress' && expected !== 'unspec' ? expected : DEFAULT_FOR_TYPE[prog.type]);
  if (!name)
    throw new BpfError('attach', `${prog.description} to ${map.description}`, 22, {
      hint: `a ${prog.type} program cannot attach to a socket map`,
    });
  if (map.type !== 'sockmap' && map.type !== 'sockhash') {
    throw new BpfError('attach', `${prog.description} to ${map.description}`, 22, {
      hint: `the map is a ${map.type}, not a sockmap or sockhash`,
    });
  }
  const what = `${prog.description} to ${map.description} (${name})`;
  const fd = libbpf.linkCreate(prog.fd, map.fd, attachType.value(name), null);
  if (fd < 0) throw new BpfError('attach', what, -fd);
  return new Link(fd, `link of ${what}`);
}
