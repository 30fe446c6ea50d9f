// kbpf flows: flow records in the manner of `hubble observe` — read from the logs of the running
// flow-monitor instances (and of any other package whose events are flows, apps/flow-monitor/
// inputs.ts) through the agent's API, turned into flows here (apps/flow-monitor/collector.ts),
// filtered, printed; optionally counted into Prometheus metrics served on --metrics-listen.
import { unwatchFile, watchFile } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { type Command, Option } from 'commander';
import { Collector } from '../../../apps/flow-monitor/collector.js';
import { checkFilter, matchFlow } from '../../../apps/flow-monitor/filter.js';
import type { Flow, FlowFilter, TcpFlag, Verdict } from '../../../apps/flow-monitor/flow.js';
import { Identities } from '../../../apps/flow-monitor/identities.js';
import { flowInputsOf } from '../../../apps/flow-monitor/inputs.js';
import { FlowMetrics, LABEL_CONTEXTS, type LabelContext } from '../../../apps/flow-monitor/metrics.js';
import { AgentFlowSource, type FlowInput } from '../../../apps/flow-monitor/source.js';
import { flowStatsOf } from '../../../apps/flow-monitor/stats.js';
import { readPodIdentities } from '../../../apps/shared/pods.js';
import type { ApiClient } from '../../agent/api-client.js';
import { InvalidError, NotFoundError } from '../../errors.js';
import type { CliContext } from '../context.js';
import { nonNegativeInt, outputOption } from '../options.js';
import { FLOW_FORMATS, type FlowFormat, FlowPrinter, renderFlows } from '../render/flows.js';

const BATCH_MS = 20;
const BATCH_MAX = 512;
const VERDICTS: Verdict[] = ['FORWARDED', 'DROPPED', 'REDIRECTED'];
const PROTOCOLS = ['tcp', 'udp', 'icmp'] as const;
const TCP_FLAGS: TcpFlag[] = ['SYN', 'ACK', 'FIN', 'RST', 'PSH', 'URG', 'ECE', 'CWR'];

export interface FlowFilterOptions {
  pod?: string[];
  namespace?: string[];
  fromIp?: string[];
  toIp?: string[];
  fromPod?: string[];
  toPod?: string[];
  port?: number[];
  service?: string[];
  verdict?: Verdict[];
  protocol?: Array<'tcp' | 'udp' | 'icmp'>;
  tcpFlags?: TcpFlag[];
  not?: boolean;
}

interface FlowsOptions extends FlowFilterOptions {
  instance?: string[];
  pods?: string;
  node?: string;
  follow?: boolean;
  last?: number;
  output: FlowFormat;
  metricsListen?: string;
  metricsContext: LabelContext;
}

const many = (v: string, prev: string[] = []): string[] => [...prev, v];

function portArg(v: string, prev: number[] = []): number[] {
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new InvalidError(`--port: "${v}" is not a port`);
  return [...prev, Number(v)];
}

function choiceList<T extends string>(what: string, choices: readonly T[], upper: boolean) {
  return (v: string, prev: T[] = []): T[] => {
    const out = [...prev];
    for (const part of v.split(',')) {
      const x = (upper ? part.trim().toUpperCase() : part.trim().toLowerCase()) as T;
      if (!choices.includes(x)) throw new InvalidError(`${what}: "${part}" is not one of ${choices.join(', ')}`);
      out.push(x);
    }
    return out;
  };
}

export function filterOf(o: FlowFilterOptions): FlowFilter {
  return checkFilter({
    pod: o.pod,
    namespace: o.namespace,
    from_ip: o.fromIp,
    to_ip: o.toIp,
    from_pod: o.fromPod,
    to_pod: o.toPod,
    port: o.port,
    service: o.service,
    verdict: o.verdict,
    protocol: o.protocol,
    tcp_flags: o.tcpFlags,
    not: o.not,
  });
}

function byTime(a: Flow, b: Flow): number {
  return a.time < b.time ? -1 : a.time > b.time ? 1 : 0;
}

/** The Prometheus endpoint: the metrics, plus each instance's own counters (flows evicted, …). */
function serveMetrics(
  listen: string,
  metrics: FlowMetrics,
  api: ApiClient,
  inputs: FlowInput[],
  source: AgentFlowSource,
): Promise<Server> {
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new InvalidError(`--metrics-listen: "${listen}" is not HOST:PORT`);
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    void (async () => {
      const lines = [
        '# HELP kbpf_flows_instance_total flow-monitor counters of each instance (the kernel side)',
        '# TYPE kbpf_flows_instance_total counter',
      ];
      for (const i of inputs) {
        try {
          const s = flowStatsOf(await api.maps(i.instance, 'flow_stats'));
          for (const [k, v] of Object.entries(s))
            lines.push(`kbpf_flows_instance_total{instance="${i.instance}",counter="${k}"} ${v}`);
        } catch {
          /* not a flow-monitor instance (no flow_stats) */
        }
      }
      lines.push(
        '# HELP kbpf_flows_reader_lost_total flow reports this reader fell too far behind to keep',
        '# TYPE kbpf_flows_reader_lost_total counter',
        `kbpf_flows_reader_lost_total ${source.lost}`,
      );
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(`${metrics.render()}${lines.join('\n')}\n`);
    })();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), m[1]!.replace(/^\[|\]$/g, '') || '127.0.0.1', () => resolve(server));
  });
}

/** The filter options of `kbpf flows` and `kubectl bpf flows` (hubble observe's). */
export function addFlowFilterOptions(cmd: Command): Command {
  return cmd
    .option('--pod <[namespace/]name>', 'flows from or to this pod (name prefix; repeatable)', many)
    .option('--namespace <ns>', 'flows from or to this namespace (repeatable)', many)
    .option('--from-ip <ip|cidr>', 'flows from this address (repeatable)', many)
    .option('--to-ip <ip|cidr>', 'flows to this address (repeatable)', many)
    .option('--from-pod <[namespace/]name>', 'flows from this pod (repeatable)', many)
    .option('--to-pod <[namespace/]name>', 'flows to this pod (repeatable)', many)
    .option('--port <port>', 'flows with this source or destination port (repeatable)', portArg)
    .option('--service <[namespace/]name|vip[:port]>', 'flows to this service (repeatable)', many)
    .option('--verdict <verdict>', `${VERDICTS.join(', ')} (repeatable)`, choiceList('--verdict', VERDICTS, true))
    .option('--protocol <proto>', `${PROTOCOLS.join(', ')} (repeatable)`, choiceList('--protocol', PROTOCOLS, false))
    .option(
      '--tcp-flags <flags>',
      `flows with any of these flags: ${TCP_FLAGS.join(',')} (comma-separated, repeatable)`,
      choiceList('--tcp-flags', TCP_FLAGS, true),
    )
    .option('--not', 'negate the filter: flows that do not match it');
}

export function addFlowVerbs(program: Command, ctx: CliContext): void {
  addFlowFilterOptions(program.command('flows'))
    .description(
      'show flow records (connections with identities, verdicts, bytes, RTT) in the manner of hubble observe',
    )
    .option('--instance <name>', 'read this instance (repeatable; default: every running flow-monitor instance)', many)
    .option(
      '--pods <file>',
      'pod identities (namespace, name, labels, ip, cgroup), as apps/shared/pods.ts reads them; re-read when it changes',
    )
    .option('--node <name>', 'the node name flows carry (default: the host name)')
    .option('-f, --follow', 'keep printing new flows')
    .option('--last <n>', 'the last N flows (default 20; with -f 0)', nonNegativeInt('--last'))
    .addOption(outputOption(FLOW_FORMATS))
    .option(
      '--metrics-listen <host:port>',
      'serve Prometheus metrics of the flows on http://HOST:PORT/metrics (with -f)',
    )
    .addOption(
      new Option('--metrics-context <context>', 'what the source and destination labels of the metrics name')
        .choices(LABEL_CONTEXTS)
        .default('workload'),
    )
    .addHelpText(
      'after',
      '\nA flow is one connection (TCP) or one conversation (UDP, ICMP), reported while open and when it closes.\nFilters are ANDed; repeated values of one filter are ORed; --not negates the whole filter.\nExamples:\n  kbpf flows --last 50 --to-pod shop/web\n  kbpf flows -f --verdict DROPPED -o compact\n  kbpf flows -f -o none --metrics-listen 127.0.0.1:9965 --metrics-context workload',
    )
    .action(async (opts: FlowsOptions, c: Command) => {
      const { io } = ctx;
      const api = ctx.client(c);
      const filter = filterOf(opts);
      const identities = new Identities(opts.pods ? readPodIdentities(opts.pods) : []);
      const collector = new Collector({ node: opts.node ?? hostname(), identities });
      const inputs = flowInputsOf(await api.list(), opts.instance, collector);
      if (inputs.length === 0)
        throw new NotFoundError(
          'no flow-monitor instance is running (start one: kbpf run --cgroup PATH flow-monitor:0.3.1)',
        );

      const last = opts.last ?? (opts.follow ? 0 : 20);
      if (last > 0 || !opts.follow) {
        const history: Flow[] = [];
        for (const i of inputs)
          for await (const rec of api.logs(i.instance, {})) {
            const f = i.convert(rec);
            if (f && matchFlow(filter, f)) history.push(f);
          }
        history.sort(byTime);
        ctx.out(renderFlows(opts.output, history.slice(Math.max(0, history.length - last))));
      }
      if (!opts.follow) return;

      const ac = new AbortController();
      const stop = (): void => ac.abort();
      io.signal?.addEventListener('abort', stop, { once: true });
      if (!io.signal) {
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }
      const source = new AgentFlowSource(api, inputs, { history: 0, capacity: 1 }).start();
      void source.ended().then(stop); // every instance's stream ended (removed, or the agent stopped)
      const metrics = opts.metricsListen ? new FlowMetrics({ context: opts.metricsContext }) : null;
      if (metrics)
        identities.onRemove((pod) =>
          metrics.forgetPod(pod, (v) =>
            identities
              .list()
              .some(
                (p) =>
                  metrics.endpointLabel(
                    { namespace: p.namespace, pod_name: p.name, workload: p.workload ?? undefined },
                    p.ip ?? '',
                  ) === v,
              ),
          ),
        );
      const server =
        metrics && opts.metricsListen ? await serveMetrics(opts.metricsListen, metrics, api, inputs, source) : null;
      if (opts.pods) {
        const file = opts.pods;
        watchFile(file, { interval: 1000 }, () => {
          try {
            identities.replaceAll(readPodIdentities(file));
          } catch (e) {
            ctx.note(`kbpf flows: ${file}: ${(e as Error).message}`);
          }
        });
      }
      const printer = new FlowPrinter(opts.output, (s) => ctx.out(s));
      let batch: Flow[] = [];
      let timer: NodeJS.Timeout | undefined;
      const flush = (): void => {
        clearTimeout(timer);
        timer = undefined;
        printer.print(batch);
        batch = [];
      };
      try {
        for await (const flows of source.followBatches(ac.signal)) {
          for (const f of flows) {
            metrics?.observe(f);
            if (!matchFlow(filter, f)) continue;
            batch.push(f);
            if (batch.length >= BATCH_MAX) flush();
          }
          if (batch.length > 0) timer ??= setTimeout(flush, BATCH_MS);
        }
      } finally {
        flush();
        await source.close();
        server?.close();
        if (opts.pods) unwatchFile(opts.pods);
        io.signal?.removeEventListener('abort', stop);
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        api.close();
      }
      if (source.error) throw source.error;
    });
}
