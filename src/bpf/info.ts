// BPF_OBJ_GET_INFO_BY_FD for programs, maps and links, and walking the kernel's id spaces:
// what bpftool shows, as plain objects.

import { attachType, linkType, mapType, progType } from './constants.js';
import { check } from './errors.js';
import { addressOf, koffi } from './ffi/koffi.js';
import { libbpf } from './ffi/libbpf.js';
import { libc } from './ffi/libc.js';

function getInfo(fd: number, size: number, what: string): Buffer {
  const info = Buffer.alloc(size);
  check(libbpf.objGetInfoByFd(fd, info, [size]), `get info of ${what}`, `fd ${fd}`);
  return info;
}

function cString(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return s.subarray(0, z < 0 ? len : z).toString('utf8');
}

export interface ProgInfo {
  id: number;
  type: string;
  name: string;
  tag: string;
  mapIds: number[];
  btfId: number;
  runTimeNs: bigint;
  runCount: bigint;
  verifiedInsns: number;
  loadTime: bigint;
  uid: number;
}

export function progInfo(fd: number): ProgInfo {
  let info = getInfo(fd, 256, 'program');
  const nrMaps = info.readUInt32LE(52);
  let mapIds: number[] = [];
  if (nrMaps > 0) {
    // second call with a buffer for the map ids
    const native = koffi.alloc('uint32_t', nrMaps);
    try {
      const req = Buffer.alloc(256);
      req.writeUInt32LE(nrMaps, 52);
      req.writeBigUInt64LE(addressOf(native), 56);
      check(libbpf.objGetInfoByFd(fd, req, [256]), 'get info of program', `fd ${fd}`);
      info = req;
      const ids = new Uint32Array(koffi.view(native, nrMaps * 4).slice(0));
      mapIds = Array.from(ids);
    } finally {
      koffi.free(native);
    }
  }
  return {
    type: progType.name(info.readUInt32LE(0)),
    id: info.readUInt32LE(4),
    tag: info.subarray(8, 16).toString('hex'),
    loadTime: info.readBigUInt64LE(40),
    uid: info.readUInt32LE(48),
    mapIds,
    name: cString(info, 64, 16),
    btfId: info.readUInt32LE(128),
    runTimeNs: info.readBigUInt64LE(192),
    runCount: info.readBigUInt64LE(200),
    verifiedInsns: info.readUInt32LE(216),
  };
}

export interface MapInfo {
  id: number;
  type: string;
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

export function mapInfo(fd: number): MapInfo {
  const info = getInfo(fd, 96, 'map');
  return {
    type: mapType.name(info.readUInt32LE(0)),
    id: info.readUInt32LE(4),
    keySize: info.readUInt32LE(8),
    valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16),
    flags: info.readUInt32LE(20),
    name: cString(info, 24, 16),
    btfId: info.readUInt32LE(64),
    btfKeyTypeId: info.readUInt32LE(68),
    btfValueTypeId: info.readUInt32LE(72),
  };
}

export interface LinkInfo {
  id: number;
  type: string;
  progId: number;
  /** cgroup links: the cgroup's id; */
  cgroupId?: bigint;
  /** cgroup, tcx, netkit links */
  attachType?: string;
  /** xdp, tcx, netkit links */
  ifindex?: number;
  /** sockmap links; struct_ops links: the map they register */
  mapId?: number;
}

export function linkInfo(fd: number): LinkInfo {
  const info = getInfo(fd, 128, 'link');
  const type = linkType.name(info.readUInt32LE(0));
  const out: LinkInfo = { type, id: info.readUInt32LE(4), progId: info.readUInt32LE(8) };
  if (type === 'cgroup') {
    out.cgroupId = info.readBigUInt64LE(16);
    out.attachType = attachType.name(info.readUInt32LE(24));
  } else if (type === 'xdp') {
    out.ifindex = info.readUInt32LE(16);
  } else if (type === 'tcx' || type === 'netkit') {
    out.ifindex = info.readUInt32LE(16);
    out.attachType = attachType.name(info.readUInt32LE(20));
  } else if (type === 'sockmap') {
    out.mapId = info.readUInt32LE(16);
    out.attachType = attachType.name(info.readUInt32LE(20));
  } else if (type === 'struct_ops') {
    out.mapId = info.readUInt32LE(16);
  }
  return out;
}

type Kind = 'prog' | 'map' | 'link';
const nextId = { prog: libbpf.progGetNextId, map: libbpf.mapGetNextId, link: libbpf.linkGetNextId };
const fdById = { prog: libbpf.progGetFdById, map: libbpf.mapGetFdById, link: libbpf.linkGetFdById };

/** All ids of one kind of kernel object, as `bpftool KIND show` would list them. */
export function listIds(kind: Kind): number[] {
  const ids: number[] = [];
  const next = [0];
  let id = 0;
  while (nextId[kind](id, next) === 0) {
    id = next[0]!;
    ids.push(id);
  }
  return ids;
}

/** Opens a kernel object by id; the caller closes the fd. */
export function fdOfId(kind: Kind, id: number): number {
  return check(fdById[kind](id), `open ${kind} by id`, String(id));
}

/** Info of the object with this id, or undefined if it went away meanwhile. */
export function infoOfId(kind: 'prog', id: number): ProgInfo | undefined;
export function infoOfId(kind: 'map', id: number): MapInfo | undefined;
export function infoOfId(kind: 'link', id: number): LinkInfo | undefined;
export function infoOfId(kind: Kind, id: number): ProgInfo | MapInfo | LinkInfo | undefined {
  const fd = fdById[kind](id);
  if (fd < 0) return undefined;
  try {
    return kind === 'prog' ? progInfo(fd) : kind === 'map' ? mapInfo(fd) : linkInfo(fd);
  } finally {
    libc.close(fd);
  }
}
