// Globals the agent sets in a package's objects from where the instance attaches, for programs
// that see more than their hook does (a tracepoint sees every socket of the node) and keep to the
// instance's cgroup on their own. An object opts in by declaring them (rodata):
//   const volatile __u64 kbpf_cgroup_id;    the cgroup its cgroup programs attach to (its id:
//                                           bpf_get_current_cgroup_id's numbering)
//   const volatile __u32 kbpf_cgroup_level; that cgroup's depth below the cgroup2 root (0: the
//                                           root), the index of its entry in a descendant's
//                                           struct cgroup ancestors[]
import { type BigIntStats, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { BpfObject } from 'kbpf/bpf';
import { InvalidError } from '../errors.js';
import { AGENT_GLOBAL_PREFIX } from '../package/package-spec.js';

export const CGROUP_ID_GLOBAL = `${AGENT_GLOBAL_PREFIX}cgroup_id`;
export const CGROUP_LEVEL_GLOBAL = `${AGENT_GLOBAL_PREFIX}cgroup_level`;

export interface CgroupScope {
  id: bigint;
  level: number;
}

/** A cgroup2 directory's id (its inode number) and depth (directories up to its mount's root). */
export function cgroupScope(path: string): CgroupScope {
  let st: BigIntStats;
  try {
    st = statSync(path, { bigint: true });
  } catch (e) {
    throw new InvalidError(`cgroup ${path}: ${(e as Error).message}`, { cause: e });
  }
  let level = 0;
  for (let dir = path.replace(/\/+$/, ''); ; level++) {
    const up = dirname(dir);
    if (up === dir || statSync(up, { bigint: true }).dev !== st.dev) break;
    dir = up;
  }
  return { id: st.ino, level };
}

/** Sets the scope globals in each object that declares them (without a cgroup they keep their
 * default, 0: everything). */
export function setAttachGlobals(objects: Iterable<BpfObject>, cgroup: string | undefined): void {
  if (!cgroup) return;
  let scope: CgroupScope | undefined;
  for (const o of objects) {
    const names = new Set(o.globals().map((g) => g.name));
    if (!names.has(CGROUP_ID_GLOBAL) && !names.has(CGROUP_LEVEL_GLOBAL)) continue;
    scope ??= cgroupScope(cgroup);
    if (names.has(CGROUP_ID_GLOBAL)) o.setGlobal(CGROUP_ID_GLOBAL, scope.id);
    if (names.has(CGROUP_LEVEL_GLOBAL)) o.setGlobal(CGROUP_LEVEL_GLOBAL, scope.level);
  }
}
