// The live flow table: one row per flow (its latest report), newest first.
import type { Flow } from '../../../apps/flow-monitor/flow.js';
import {
  dropReason,
  endpointName,
  formatBytes,
  formatRtt,
  formatTime,
  ports,
  protocolName,
  serviceName,
  tcpFlags,
} from './format.js';

function Row(props: { flow: Flow; selected: boolean; onSelect: (id: string) => void }) {
  const f = props.flow;
  const p = ports(f);
  const select = (): void => props.onSelect(f.flow_id);
  return (
    <tr
      class={`verdict-${f.verdict.toLowerCase()}${props.selected ? ' selected' : ''}`}
      data-flow-id={f.flow_id}
      tabIndex={0}
      onClick={select}
      onKeyDown={(e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          select();
        }
      }}
    >
      <td class="time">{formatTime(f.time)}</td>
      <td class="endpoint">
        {endpointName(f.source, f.IP.source)}
        {p.source !== undefined && <span class="port">:{p.source}</span>}
      </td>
      <td class="endpoint">
        {endpointName(f.destination, f.IP.destination)}
        {p.destination !== undefined && <span class="port">:{p.destination}</span>}
      </td>
      <td>{serviceName(f) ?? ''}</td>
      <td>{protocolName(f)}</td>
      <td>
        <span class={`verdict ${f.verdict.toLowerCase()}`} title={dropReason(f)}>
          {f.verdict}
        </span>
      </td>
      <td class="flags">{tcpFlags(f).join(' ')}</td>
      <td class="num">{formatBytes(f.traffic.bytes_sent)}</td>
      <td class="num">{formatBytes(f.traffic.bytes_received)}</td>
      <td class="num">{f.rtt ? formatRtt(f.rtt.srtt_us) : ''}</td>
      <td class="state">{f.tcp_state ?? f.state}</td>
    </tr>
  );
}

export function FlowTable(props: { flows: Flow[]; selected?: string; onSelect: (id: string) => void }) {
  return (
    <div class="table-wrap">
      <table class="flows">
        <thead>
          <tr>
            <th>time</th>
            <th>source</th>
            <th>destination</th>
            <th>service</th>
            <th>proto</th>
            <th>verdict</th>
            <th>tcp flags</th>
            <th class="num">sent</th>
            <th class="num">received</th>
            <th class="num">rtt</th>
            <th>state</th>
          </tr>
        </thead>
        <tbody>
          {props.flows.map((f) => (
            <Row key={f.flow_id} flow={f} selected={f.flow_id === props.selected} onSelect={props.onSelect} />
          ))}
        </tbody>
      </table>
      {props.flows.length === 0 && <p class="empty">No flows match yet. New ones appear here as they come.</p>}
    </div>
  );
}
