// struct_ops maps (a TCP congestion control, a sched_ext scheduler, …) registered with the
// kernel through a link that can be pinned: the map is created with BPF_F_LINK (the object does
// that at open, where the kernel has it), libbpf fills in its value — the data and the fds of
// its programs — and the kernel keeps it ready, and BPF_LINK_CREATE registers it. Detaching the
// link unregisters it. The programs of one map share its link: each asks for it and gets its own
// fd of the one link. An upgrade switches the link to the new revision's map in place.

import { Invalid } from '../../errors.js';
import { attachType } from '../constants.js';
import { BpfError, check, UnsupportedError } from '../errors.js';
import { lastErrno } from '../ffi/koffi.js';
import { libbpf } from '../ffi/libbpf.js';
import { captureLibbpfLog } from '../ffi/print.js';
import { fdOfId, infoOfId } from '../info.js';
import type { BpfMap } from '../map.js';
import type { BpfObject } from '../object.js';
import { BPF_F_LINK, kernelHasStructOpsLinks } from '../struct-ops-sections.js';
import { Link } from './link.js';

/** The link id of each struct_ops map registered by this process. */
const registered = new WeakMap<BpfMap, number>();

/** The name of the object's only struct_ops map; refused when it has none or several. */
export function onlyStructOpsMap(obj: BpfObject, program: string): string {
  const names = [...obj.maps.values()].filter((m) => m.type === 'struct_ops').map((m) => m.name);
  if (names.length === 1) return names[0]!;
  throw new BpfError('attach', `struct_ops program ${program}`, Invalid, {
    hint: names.length
      ? `its object has several struct_ops maps (${names.join(', ')}): name the one it belongs to with --attach ${program}=struct_ops:MAP`
      : 'its object has no struct_ops map to register',
  });
}

/** Registers struct_ops map `name` of a loaded object (once; later calls get the same link). */
export function attachStructOps(obj: BpfObject, name: string): Link {
  const { map, what } = structOpsMap(obj, name);
  const id = registered.get(map);
  if (id !== undefined && infoOfId('link', id)) return new Link(fdOfId('link', id), `link of ${what}`);
  prepare(map, what);
  const fd = libbpf.linkCreate(map.fd, 0, attachType.value('struct_ops'), null);
  if (fd < 0)
    throw new BpfError('register', what, -fd, {
      hint:
        -fd === 17
          ? 'one of that name is registered already (by another instance, or by the revision being replaced)'
          : undefined,
    });
  const link = new Link(fd, `link of ${what}`);
  registered.set(map, link.id);
  return link;
}

/**
 * Puts struct_ops map `name` of a loaded object in the place of the map `link` registers, in
 * one step (an upgrade: the kernel swaps them; a TCP congestion control keeps its name). Done
 * once per map: the map's other programs find it switched.
 */
export function switchStructOps(link: Link, obj: BpfObject, name: string): void {
  const { map, what } = structOpsMap(obj, name);
  if (registered.get(map) === link.id) return;
  prepare(map, what);
  check(libbpf.linkUpdate(link.fd, map.fd, null), 'switch', `${link.description} to ${what}`, {
    hint: 'the kernel swaps struct_ops maps of the same kind only (a TCP congestion control: of the same name)',
  });
  registered.set(map, link.id);
}

/** Puts a pinned struct_ops map back in the place of the one `link` registers (an undo). */
export function switchStructOpsBack(link: Link, map: BpfMap): void {
  check(libbpf.linkUpdate(link.fd, map.fd, null), 'switch', `${link.description} back to ${map.description}`);
}

function structOpsMap(obj: BpfObject, name: string): { map: BpfMap; what: string } {
  const map = obj.map(name);
  const what = `struct_ops map ${name} of object "${obj.name}"`;
  if (map.type !== 'struct_ops') throw new BpfError('register', what, Invalid, { hint: `it is a ${map.type} map` });
  return { map, what };
}

/** Has libbpf write the map's value (data and program fds): a BPF_F_LINK map is then ready to register. */
function prepare(map: BpfMap, what: string): void {
  if (!kernelHasStructOpsLinks() || (libbpf.mapFlags(map.handle!) & BPF_F_LINK) === 0)
    throw new UnsupportedError(
      'register',
      what,
      'this kernel has no struct_ops links (BPF_F_LINK, Linux 6.4+), without which kbpf cannot keep the registration across its restarts',
      'struct_ops links',
    );
  const { result, log } = captureLibbpfLog(() => libbpf.mapAttachStructOps(map.handle!));
  if (!result) throw new BpfError('register', what, lastErrno() || 22, { libbpfLog: log });
  // its link object would delete the value when destroyed: let go of it without detaching
  libbpf.linkDisconnect(result);
  libbpf.linkDestroy(result);
}
