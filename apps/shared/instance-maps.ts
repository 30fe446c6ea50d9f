// The maps an application works on, opened together by name from one place: a loaded object
// (tests, benchmarks: the object keeps owning them), the agent in this process, or an instance's
// pins (the agent may be another process). What was opened here is closed by close(); a map that
// cannot be opened closes the ones opened before it.
import { BpfMap } from 'kbpf/bpf';
import { instanceMapPin } from '../../src/agent/pins.js';
import { NotFoundError } from '../../src/errors.js';

/** Opens one map by name. */
export type MapOpener = (name: string) => BpfMap;

export class MapSet<Name extends string = string> {
  readonly #maps = new Map<string, BpfMap>();
  readonly #owned: BpfMap[] = [];

  /** `owned`: the maps are this set's to close (not an object's). */
  constructor(names: readonly Name[], open: MapOpener, owned: boolean) {
    try {
      for (const n of names) {
        const m = open(n);
        this.#maps.set(n, m);
        if (owned) this.#owned.push(m);
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  get(name: Name): BpfMap {
    return this.#maps.get(name)!;
  }

  close(): void {
    for (const m of this.#owned) m.close();
    this.#owned.length = 0;
  }
}

/** Maps of a loaded object, which keeps owning them. */
export const objectMaps =
  (obj: { map(name: string): BpfMap }): MapOpener =>
  (n) =>
    obj.map(n);

/** Maps of a running instance of the agent in this process. */
export const agentMaps =
  (agent: { instanceMap(instance: string, map: string): BpfMap }, instance: string): MapOpener =>
  (n) =>
    agent.instanceMap(instance, n);

/** Maps pinned by an instance of the agent that owns `bpffsDir`; `app` names them in the error. */
export const pinnedMaps =
  (bpffsDir: string, instance: string, app: string): MapOpener =>
  (n) => {
    const path = instanceMapPin(bpffsDir, instance, n);
    if (!path) throw new NotFoundError(`no pinned ${app} map ${n} of instance ${instance} (is the instance running?)`);
    return BpfMap.fromPin(path);
  };
