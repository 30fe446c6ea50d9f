// A flow's detail: every field of its latest report, grouped, and the record as JSON.
import type { ComponentChildren } from 'preact';
import type { Endpoint, Flow } from '../../../apps/flow-monitor/flow.js';
import { dropReason, formatBytes, formatDuration, formatRtt, ports, protocolName, tcpFlags } from './format.js';

type Rows = [string, ComponentChildren | undefined][];

function Section(props: { title: string; rows: Rows; class?: string }) {
  const rows = props.rows.filter(([, v]) => v !== undefined && v !== '');
  if (rows.length === 0) return null;
  return (
    <section class={props.class}>
      <h3>{props.title}</h3>
      <dl>
        {rows.map(([k, v]) => (
          <div key={k} class="kv">
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

function endpointRows(ep: Endpoint, ip: string, port: number | undefined): Rows {
  return [
    ['address', port === undefined ? ip : `${ip}:${port}`],
    ['namespace', ep.namespace],
    ['pod', ep.pod_name],
    ['workload', ep.workload],
    ['labels', ep.labels?.length ? ep.labels.join(', ') : undefined],
  ];
}

export function FlowDetail(props: { flow: Flow; onClose: () => void }) {
  const f = props.flow;
  const p = ports(f);
  const s = f.service;
  const icmp = f.l4.ICMPv4 ?? f.l4.ICMPv6;
  const t = f.traffic;
  return (
    <aside class="detail" aria-label="flow detail">
      <header>
        <h2>
          <span class={`verdict ${f.verdict.toLowerCase()}`}>{f.verdict}</span> {protocolName(f)} flow
        </h2>
        <button type="button" class="close" onClick={props.onClose} aria-label="close">
          ×
        </button>
      </header>
      {f.verdict === 'DROPPED' && (
        <p class="drop-reason">
          <strong>Dropped:</strong> {dropReason(f) ?? 'no reason recorded'}
        </p>
      )}
      <Section
        title="Flow"
        rows={[
          ['flow id', f.flow_id],
          ['time', f.time],
          ['node', f.node_name],
          ['direction', f.traffic_direction],
          ['state', f.state],
          ['tcp state', f.tcp_state],
          ['duration', formatDuration(f.duration_ms)],
        ]}
      />
      <Section
        title="Verdict"
        rows={[
          ['verdict', f.verdict],
          ['drop reason', f.drop_reason_desc],
          ['policy', f.policy_name],
          ['proxy port', f.proxy_port?.toString()],
        ]}
      />
      <Section title="Source" rows={endpointRows(f.source, f.IP.source, p.source)} />
      <Section title="Destination" rows={endpointRows(f.destination, f.IP.destination, p.destination)} />
      <Section
        title="Layer 4"
        rows={[
          ['protocol', `${protocolName(f)} (${f.IP.ipVersion})`],
          ['tcp flags', f.l4.TCP ? tcpFlags(f).join(' ') || 'none' : undefined],
          ['icmp type/code', icmp ? `${icmp.type}/${icmp.code}` : undefined],
        ]}
      />
      <Section
        title="Service"
        rows={[
          [
            'destination service',
            f.destination_service &&
              (f.destination_service.namespace
                ? `${f.destination_service.namespace}/${f.destination_service.name}`
                : f.destination_service.name),
          ],
          ['service', s?.name],
          ['translated', s && `${s.vip}:${s.vip_port} → ${s.backend}:${s.backend_port}`],
          ['lb policy', s?.lb_policy],
          ['locality level', s?.lb_level?.toString()],
          ['affinity hit', s?.affinity_hit === undefined ? undefined : s.affinity_hit ? 'yes' : 'no'],
        ]}
      />
      <Section
        title="Traffic"
        rows={[
          ['bytes sent', `${formatBytes(t.bytes_sent)} (${t.bytes_sent})`],
          ['bytes received', `${formatBytes(t.bytes_received)} (${t.bytes_received})`],
          ['packets sent', String(t.packets_sent)],
          ['packets received', String(t.packets_received)],
          ['retransmits', String(f.retransmits)],
          ['smoothed rtt', f.rtt && formatRtt(f.rtt.srtt_us)],
          ['minimum rtt', f.rtt && formatRtt(f.rtt.min_rtt_us)],
        ]}
      />
      <details>
        <summary>JSON</summary>
        <pre>{JSON.stringify(f, null, 2)}</pre>
      </details>
    </aside>
  );
}
