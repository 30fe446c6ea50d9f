// netpol, the user-space half: the maps of a running instance, and applying a policy input to
// them as one new generation — a fresh LPM trie filled with everything compile() made, then put
// into slot 0 of `policy` with one update, so the data path switches from the old generation to
// the new one between two packets. The old trie goes when the last packet using it is done.
import { existsSync } from 'node:fs';
import { BpfMap } from 'kbpf/bpf';
import { InvalidError, NotFoundError } from '../../src/errors.js';
import { cgroupId } from '../mesh-accel/mesh.js';
import { agentMaps, type MapOpener, MapSet, objectMaps, pinnedMaps } from '../shared/instance-maps.js';
import { compile, type Generation, KEY_SIZE, type LocalPod, MAX_ENTRIES, VALUE_SIZE } from './compile.js';
import { type PolicyInput, policyName } from './policy.js';

const BPF_F_NO_PREALLOC = 1;
const MAX_POLICIES = 4096;

export const STATS = ['allowed', 'conn', 'dropped', 'rechecked', 'untracked', 'not_ip', 'socket'] as const;
export type NetpolStats = Record<(typeof STATS)[number], bigint>;

export interface Applied {
  gen: number;
  policies: number;
  pods: number;
  entries: number;
  /** namespace/name of each local pod some policy selects, with those policies per direction */
  selected: Map<string, { ingress: string[]; egress: string[] }>;
}

export interface MapSource {
  map(name: string): BpfMap;
}

const MAPS = ['policy', 'policy_names', 'drop_counts', 'meta', 'stats', 'conns', 'handshakes'] as const;

/** The local pods of an input: those with a cgroup (on this node), with its id. */
export function localPods(input: PolicyInput): LocalPod[] {
  return input.pods
    .filter((p) => p.cgroup !== undefined)
    .map((p) => {
      if (!existsSync(p.cgroup!)) throw new NotFoundError(`pod ${p.namespace}/${p.name}: no cgroup ${p.cgroup}`);
      return { ...p, cgroupId: cgroupId(p.cgroup!) };
    });
}

/** The maps of one running netpol instance (or a loaded object). */
export class NetpolMaps {
  readonly #set: MapSet<(typeof MAPS)[number]>;

  private constructor(open: MapOpener, owned: boolean) {
    this.#set = new MapSet(MAPS, open, owned);
  }

  /** From a loaded object (the object keeps owning its maps). */
  static ofObject(obj: MapSource): NetpolMaps {
    return new NetpolMaps(objectMaps(obj), false);
  }

  /** From a running instance of the agent in this process. */
  static ofAgent(agent: { instanceMap(instance: string, map: string): BpfMap }, instance: string): NetpolMaps {
    return new NetpolMaps(agentMaps(agent, instance), true);
  }

  /** From the pins of an instance of the agent that owns `bpffsDir` (which may be another process). */
  static ofInstance(bpffsDir: string, instance: string): NetpolMaps {
    return new NetpolMaps(pinnedMaps(bpffsDir, instance, 'netpol'), true);
  }

  private m(name: (typeof MAPS)[number]): BpfMap {
    return this.#set.get(name);
  }

  /** policy id -> namespace/name, as the data path reports them */
  policyNames(): Map<number, string> {
    const out = new Map<number, string>();
    for (const [k, v] of this.m('policy_names').lookupBatch()) out.set(Number(k), (v as { name: string }).name);
    return out;
  }

  /** Ids for these policies: the ones they had, new ones for new names (ids are never reused). */
  private policyIds(names: string[]): Map<string, number> {
    const known = new Map([...this.policyNames()].map(([id, n]) => [n, id]));
    let next = Math.max(0, ...known.values()) + 1;
    const ids = new Map<string, number>();
    for (const n of names) {
      let id = known.get(n);
      if (id === undefined) {
        if (known.size >= MAX_POLICIES)
          throw new InvalidError(`netpol: at most ${MAX_POLICIES} policy names over an instance's life`);
        id = next++;
        known.set(n, id);
        this.m('policy_names').update(id, { name: n });
      }
      ids.set(n, id);
    }
    return ids;
  }

  /** The generation applied last (0: none). */
  generation(): { gen: number; policies: number; pods: number; entries: number; appliedNs: bigint } {
    const v = this.m('meta').lookup(0) as
      | { gen: number; policies: number; pods: number; entries: number; applied_ns: bigint }
      | undefined;
    return {
      gen: v?.gen ?? 0,
      policies: v?.policies ?? 0,
      pods: v?.pods ?? 0,
      entries: v?.entries ?? 0,
      appliedNs: BigInt(v?.applied_ns ?? 0),
    };
  }

  /** Compiles `input` for these local pods and switches the data path to it in one map update. */
  apply(input: PolicyInput, pods: LocalPod[] = localPods(input)): Applied {
    const ids = this.policyIds(input.policies.map(policyName));
    const gen = (this.generation().gen + 1) >>> 0 || 1;
    const g: Generation = compile(input, pods, ids, gen);
    if (g.entries.length > MAX_ENTRIES)
      throw new InvalidError(`netpol: the policies compile to ${g.entries.length} entries (at most ${MAX_ENTRIES})`);
    const trie = BpfMap.create({
      type: 'lpm_trie',
      name: 'netpol_gen',
      keySize: KEY_SIZE,
      valueSize: VALUE_SIZE,
      maxEntries: MAX_ENTRIES,
      flags: BPF_F_NO_PREALLOC,
    });
    try {
      for (const [k, v] of g.entries) trie.update(k, v);
      this.m('policy').update(0, trie.fd); // the switch
    } finally {
      trie.close(); // the outer map holds the trie now
    }
    const applied = {
      gen,
      policies: input.policies.length,
      pods: g.selected.size,
      entries: g.entries.length,
      selected: g.selected,
    };
    this.m('meta').update(0, {
      applied_ns: process.hrtime.bigint(),
      gen,
      policies: applied.policies,
      pods: applied.pods,
      entries: applied.entries,
    });
    return applied;
  }

  /** No generation: every packet passes (the connections remembered are forgotten too). */
  clear(): void {
    this.m('policy').delete(0);
    this.m('conns').clear();
    this.m('handshakes').clear();
    const g = this.generation();
    this.m('meta').update(0, { applied_ns: process.hrtime.bigint(), gen: g.gen, policies: 0, pods: 0, entries: 0 });
  }

  /** Counters summed over CPUs. */
  stats(): NetpolStats {
    const per = (this.m('stats').lookup(0) ?? []) as { c: (bigint | number)[] }[];
    const out = {} as NetpolStats;
    STATS.forEach((name, i) => {
      out[name] = per.reduce<bigint>((a, v) => a + BigInt(v.c[i] ?? 0), 0n);
    });
    return out;
  }

  /** Drops per policy (namespace/name), summed over CPUs. */
  drops(): Map<string, bigint> {
    const names = this.policyNames();
    const out = new Map<string, bigint>();
    for (const [k, v] of this.m('drop_counts').lookupBatch()) {
      const n = (v as (bigint | number)[]).reduce<bigint>((a, x) => a + BigInt(x), 0n);
      out.set(names.get(Number(k)) ?? `#${k}`, n);
    }
    return out;
  }

  close(): void {
    this.#set.close();
  }
}
