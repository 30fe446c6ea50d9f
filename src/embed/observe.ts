// Observe-only runs (`kbpf run --engine userspace`): a package's xdp, tc and socket filter
// programs see a copy of an interface's packets (an AF_PACKET socket) in the user-space engine,
// for nodes where BPF is not allowed. Nothing is loaded into the kernel and no verdict is
// enforced: the packets go on as they would; what the programs decided is counted, and their
// maps and events are reported.
import { PACKET_OUTGOING, PacketSocket } from 'kbpf/bpf';
import { showReturn } from '../pkgtest/values.js';
import { PACKET_PROGRAM_TYPES } from '../vm/ctx.js';
import { loadUserspacePrograms, type UserspaceOptions, type UserspaceProgram } from './index.js';

export interface ObservedProgram {
  name: string;
  type: string;
  /** verdict (as the type names it) → packets */
  verdicts: Record<string, number>;
  /** runs stopped by a fault (a bad access, the budget) */
  faults: number;
  lastFault?: string;
}

export interface ObserveReport {
  iface: string;
  packets: number;
  programs: ObservedProgram[];
  maps: { name: string; entries: [unknown, unknown][] }[];
}

export class Observer {
  readonly #socket: PacketSocket;
  readonly #programs: UserspaceProgram[];
  readonly #stats: ObservedProgram[];
  #packets = 0;

  constructor(socket: PacketSocket, programs: UserspaceProgram[], onEvent: (map: string, record: unknown) => void) {
    this.#socket = socket;
    this.#programs = programs;
    this.#stats = programs.map((p) => ({ name: p.name, type: p.type, verdicts: {}, faults: 0 }));
    const eventMaps = programs[0]!.maps.filter((m) => m.type === 'ringbuf' || m.type === 'perf_event_array');
    socket.onPackets((pkt) => {
      if (pkt.pktType === PACKET_OUTGOING) return; // ingress only: loopback shows each packet twice
      this.#packets++;
      programs.forEach((p, i) => {
        const s = this.#stats[i]!;
        try {
          const v = showReturn(p.run(pkt.data).r0, p.type);
          s.verdicts[v] = (s.verdicts[v] ?? 0) + 1;
        } catch (e) {
          s.faults++;
          s.lastFault = (e as Error).message;
        }
      });
      for (const m of eventMaps) for (const r of programs[0]!.events(m.name)) onEvent(m.name, r);
    });
  }

  report(): ObserveReport {
    const first = this.#programs[0]!;
    return {
      iface: this.#socket.iface,
      packets: this.#packets,
      programs: this.#stats.map((s) => ({ ...s, verdicts: { ...s.verdicts } })),
      maps: first.maps
        .filter((m) => !['ringbuf', 'perf_event_array', 'prog_array'].includes(m.type) && !m.name.startsWith('.rodata'))
        .flatMap((m) => {
          try {
            return [{ name: m.name, entries: first.map(m.name).entries() }];
          } catch {
            return [];
          }
        }),
    };
  }

  close(): void {
    this.#socket.close();
  }
}

/** Starts observing `iface` with the packet programs of `image` (all of them, or those named). */
export async function observeInterface(
  image: string,
  iface: string,
  opts: UserspaceOptions & { programs?: string[] } = {},
  onEvent: (map: string, record: unknown) => void = () => {},
): Promise<Observer> {
  const programs = await loadUserspacePrograms(
    image,
    (p) => PACKET_PROGRAM_TYPES.includes(p.type) && (!opts.programs || opts.programs.includes(p.name)),
    opts,
  );
  return new Observer(PacketSocket.open(iface), programs, onEvent);
}
