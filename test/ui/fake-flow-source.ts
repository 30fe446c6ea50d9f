// A FlowSource the web view's tests fill by hand: what `add` gets is in `recent` and goes to every
// follower at once.
import type { Flow, FlowSource } from '../../apps/flow-monitor/flow.js';
import { workloadOf } from '../../apps/shared/pods.js';

export class FakeFlowSource implements FlowSource {
  readonly flows: Flow[] = [];
  readonly #followers = new Set<(f: Flow) => void>();

  add(...flows: Flow[]): void {
    for (const f of flows) {
      this.flows.push(f);
      for (const w of this.#followers) w(f);
    }
  }

  /** followers now (a stream that ended must have left) */
  get followers(): number {
    return this.#followers.size;
  }

  recent(last: number): Flow[] {
    return last <= 0 ? [] : this.flows.slice(-last);
  }

  async *follow(signal: AbortSignal): AsyncIterable<Flow> {
    const queue: Flow[] = [];
    let wake: (() => void) | undefined;
    const push = (f: Flow): void => {
      queue.push(f);
      wake?.();
    };
    this.#followers.add(push);
    try {
      while (!signal.aborted) {
        const f = queue.shift();
        if (f) {
          yield f;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        wake = undefined;
      }
    } finally {
      this.#followers.delete(push);
    }
  }
}

let seq = 0;

export interface FlowSpec {
  from: { ns?: string; pod?: string; ip: string; port?: number };
  to: { ns?: string; pod?: string; ip: string; port: number };
  verdict?: Flow['verdict'];
  protocol?: 'tcp' | 'udp';
  bytes?: [sent: number, received: number];
  srtt_us?: number;
  time?: Date;
  flow_id?: string;
  extra?: Partial<Flow>;
}

const podEndpoint = (ns: string | undefined, pod: string | undefined): Flow['source'] =>
  pod ? { namespace: ns ?? 'default', pod_name: pod, workload: workloadOf({ name: pod }) } : {};

/** A flow report as flow-monitor would make it. */
export function makeFlow(s: FlowSpec): Flow {
  seq++;
  const sport = s.from.port ?? 40000 + seq;
  const ports = { source_port: sport, destination_port: s.to.port };
  const [sent, received] = s.bytes ?? [100, 200];
  return {
    time: (s.time ?? new Date()).toISOString(),
    flow_id: s.flow_id ?? `flow-${seq}`,
    node_name: 'node-1',
    verdict: s.verdict ?? 'FORWARDED',
    IP: { source: s.from.ip, destination: s.to.ip, ipVersion: 'IPv4' },
    l4: s.protocol === 'udp' ? { UDP: ports } : { TCP: { ...ports, flags: { SYN: true, ACK: true } } },
    source: podEndpoint(s.from.ns, s.from.pod),
    destination: podEndpoint(s.to.ns, s.to.pod),
    traffic_direction: 'EGRESS',
    state: 'OPEN',
    tcp_state: s.protocol === 'udp' ? undefined : 'ESTABLISHED',
    traffic: { bytes_sent: sent, bytes_received: received, packets_sent: 3, packets_received: 4 },
    rtt: s.srtt_us === undefined ? undefined : { srtt_us: s.srtt_us, min_rtt_us: Math.round(s.srtt_us / 2) },
    retransmits: 0,
    duration_ms: 12,
    ...s.extra,
  };
}
