// Which running instances produce flows, by their package's name, and how their log records become
// flows. `kbpf flows` follows every running instance of these packages (or those named with
// --instance). Another package whose events are flows adds itself here.
//
// netpol's drops are flows of their own (DROPPED, POLICY_DENIED, the policy's name: the event
// carries it) and verdicts on flow-monitor's record of the same connection: the inputs made for
// one reader share a PolicyVerdicts, and a flow-monitor report whose connection netpol dropped
// while it lived says DROPPED with the policy's reason and name too.
import type { LogRecord } from '../../src/agent/log-store.js';
import { InvalidError, NotFoundError } from '../../src/errors.js';
import { type DropEvent, flowOfDrop, POLICY_DENIED } from '../netpol/drops.js';
import type { Collector } from './collector.js';
import { type Flow, VERDICT_FROM_OTHER_INPUT } from './flow.js';
import { type FlowInput, flowMonitorInput } from './source.js';

export interface FlowInputEnv {
  collector: Collector;
  /** the policy drops seen by this reader's inputs, by connection */
  verdicts: PolicyVerdicts;
}

export type FlowInputMaker = (instance: string, env: FlowInputEnv) => FlowInput;

// In the order their histories are read: verdicts (netpol) before the flows they annotate.
export const FLOW_INPUTS: Record<string, FlowInputMaker> = {
  netpol: (instance, env) => netpolInput(instance, env),
  'flow-monitor': (instance, { collector, verdicts }) => verdicts.annotating(flowMonitorInput(instance, collector)),
};

/** An instance as the agent lists it (GET /v1/instances): its name and its package's name. */
export interface InstanceRef {
  name: string;
  package: { name: string };
}

/**
 * The inputs to read: the instances named, else every running instance of a package whose events
 * are flows. `kbpf flows` and the web view call it with the agent's instance list.
 */
export function flowInputsOf(
  instances: readonly InstanceRef[],
  names: readonly string[] | undefined,
  collector: Collector,
): FlowInput[] {
  const chosen = names?.length
    ? names.map((n) => instances.find((s) => s.name === n) ?? n)
    : instances.filter((s) => s.package.name in FLOW_INPUTS);
  const order = Object.keys(FLOW_INPUTS);
  const rank = (s: InstanceRef | string) => (typeof s === 'string' ? -1 : order.indexOf(s.package.name));
  const env: FlowInputEnv = { collector, verdicts: new PolicyVerdicts() };
  return [...chosen]
    .sort((a, b) => rank(a) - rank(b))
    .map((s) => {
      if (typeof s === 'string') throw new NotFoundError(`no instance "${s}"`);
      const make = FLOW_INPUTS[s.package.name];
      if (!make)
        throw new InvalidError(
          `instance "${s.name}" runs ${s.package.name}, whose events are no flows (${Object.keys(FLOW_INPUTS).join(', ')} are)`,
        );
      return make(s.name, env);
    });
}

/** netpol's drop events (the `drops` ring buffer) as DROPPED flows, noted in the reader's verdicts. */
export function netpolInput(instance: string, { collector, verdicts }: FlowInputEnv): FlowInput {
  return {
    instance,
    convert: (rec: LogRecord) => {
      if (rec.source !== 'drops') return null;
      const f = flowOfDrop(rec.event as DropEvent, {
        node: collector.opts.node,
        identities: collector.opts.identities,
        time: rec.ts,
      });
      verdicts.note(f);
      return f;
    },
  };
}

/** The connection of a flow, whichever end it is seen from. */
function connectionKey(f: Flow): string {
  const l4 = f.l4.TCP ?? f.l4.UDP;
  const proto = f.l4.TCP ? 'tcp' : f.l4.UDP ? 'udp' : f.l4.ICMPv4 ? 'icmp' : f.l4.ICMPv6 ? 'icmp6' : 'ip';
  const a = `${f.IP.source}/${l4?.source_port ?? 0}`;
  const b = `${f.IP.destination}/${l4?.destination_port ?? 0}`;
  return a < b ? `${proto} ${a} ${b}` : `${proto} ${b} ${a}`;
}

/** How much earlier than a flow's first packet a drop may be noted and still be its (clocks, batching). */
const SLACK_MS = 1000;

/** Policy drops by connection, bounded: the newest `limit` connections are kept. */
export class PolicyVerdicts {
  readonly #drops = new Map<string, { ms: number; policy?: string }>();

  constructor(readonly limit = 65_536) {}

  /** A policy drop (a netpol flow). */
  note(f: Flow): void {
    const key = connectionKey(f);
    this.#drops.delete(key);
    this.#drops.set(key, { ms: Date.parse(f.time), ...(f.policy_name ? { policy: f.policy_name } : {}) });
    if (this.#drops.size > this.limit) this.#drops.delete(this.#drops.keys().next().value!);
  }

  /** The drop of this flow's connection while it lived, if one was noted. */
  dropOf(f: Flow): { policy?: string } | undefined {
    if (this.#drops.size === 0) return undefined; // no drop noted: no key to make
    const d = this.#drops.get(connectionKey(f));
    if (!d) return undefined;
    const end = Date.parse(f.time);
    return d.ms >= end - f.duration_ms - SLACK_MS && d.ms <= end + SLACK_MS ? d : undefined;
  }

  /** The input's flows with the policy's verdict where a policy dropped their connection. */
  annotating(input: FlowInput): FlowInput {
    return {
      instance: input.instance,
      convert: (rec) => {
        const f = input.convert(rec);
        const d = f && this.dropOf(f);
        if (!f || !d) return f;
        f.verdict = 'DROPPED';
        f.drop_reason_desc = POLICY_DENIED;
        f[VERDICT_FROM_OTHER_INPUT] = true;
        if (d.policy) f.policy_name = d.policy;
        return f;
      },
    };
  }
}

/**
 * Flows of any input's log records, for a reader that does not know which package wrote them
 * (`kubectl bpf flows` reads a deployment's logs node by node): the first input that makes a flow.
 */
export function anyInputFlows(collector: Collector): (rec: LogRecord) => Flow | null {
  const env: FlowInputEnv = { collector, verdicts: new PolicyVerdicts() };
  const inputs = Object.values(FLOW_INPUTS).map((make) => make('', env));
  return (rec) => {
    for (const input of inputs) {
      const f = input.convert(rec);
      if (f) return f;
    }
    return null;
  };
}
