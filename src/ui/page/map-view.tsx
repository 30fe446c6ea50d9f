// The service map, drawn as SVG from the server's map (GET /api/map) with layoutMap's places:
// workloads as boxes, connections as arrows labelled with their rate, bytes, drops and p50 RTT.
import type { MapEdge, MapNode, ServiceMap } from '../service-map.js';
import { formatBytes, formatRate, formatRtt } from './format.js';
import { LABEL_H, LABEL_W, layoutMap, NODE_H, NODE_W } from './map-layout.js';

export const WINDOWS_S = [10, 60, 300, 900];

/** what the edge carries: `TCP 8080 · shop/cart` */
function edgeSubtitle(e: MapEdge): string {
  const ports = e.ports.length > 3 ? `${e.ports.slice(0, 3).join(', ')}…` : e.ports.join(', ');
  const text = [`${e.protocols.join('/')} ${ports}`.trim(), ...e.services].join(' · ');
  return text.length > 28 ? `${text.slice(0, 27)}…` : text;
}

/** What makes an SVG group a button: a click, or Enter / Space when it has the focus. */
function pressable(press: () => void) {
  return {
    role: 'button' as const,
    tabIndex: 0,
    onClick: press,
    onKeyDown: (e: KeyboardEvent) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        press();
      }
    },
  };
}

function windowName(s: number): string {
  return s < 60 ? `${s} s` : `${s / 60} min`;
}

export function MapView(props: {
  map?: ServiceMap;
  error?: string;
  windowS: number;
  onWindow: (s: number) => void;
  /** a click on a node (edge absent: its flows) or an edge (the flows between its two nodes) */
  onPick: (from: MapNode, to?: MapNode) => void;
}) {
  const m = props.map;
  const layout = m && layoutMap(m.nodes, m.edges);
  const node = new Map(m?.nodes.map((n) => [n.id, n]));
  const pickEdge = (e: MapEdge): void => props.onPick(node.get(e.source)!, node.get(e.destination)!);
  return (
    <section class="map" aria-label="service map">
      <header>
        <h2>Service map</h2>
        <label class="window">
          last{' '}
          <select
            name="window"
            value={String(props.windowS)}
            onChange={(e) => props.onWindow(Number((e.target as HTMLSelectElement).value))}
          >
            {WINDOWS_S.map((s) => (
              <option key={s} value={String(s)}>
                {windowName(s)}
              </option>
            ))}
          </select>
        </label>
        {props.error && <span class="map-error">{props.error}</span>}
      </header>
      {layout && layout.nodes.length > 0 ? (
        <div class="map-scroll">
          <svg
            width={layout.width}
            height={layout.height}
            viewBox={`0 0 ${layout.width} ${layout.height}`}
            role="img"
            aria-label="workloads and the flows between them"
          >
            <defs>
              <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
                <path d="M0,0 L10,5 L0,10 z" class="arrow" />
              </marker>
              <marker
                id="arrow-drop"
                viewBox="0 0 10 10"
                refX="9"
                refY="5"
                markerWidth="7"
                markerHeight="7"
                orient="auto"
              >
                <path d="M0,0 L10,5 L0,10 z" class="arrow drop" />
              </marker>
            </defs>
            {layout.edges.map(({ edge: e, path }) => {
              const cls = e.drops === 0 ? 'edge' : e.drops === e.flows ? 'edge dropped' : 'edge some-dropped';
              const width = Math.min(6, 1.5 + Math.log10(1 + e.flow_rate * 10));
              return (
                <g key={e.id} class={cls} data-edge-line={e.id}>
                  <path
                    d={path}
                    stroke-width={width}
                    marker-end={e.drops === e.flows ? 'url(#arrow-drop)' : 'url(#arrow)'}
                  />
                </g>
              );
            })}
            {layout.edges.map(({ edge: e, labelX: x, labelY: y, anchorX, anchorY }) => (
              <g
                key={e.id}
                class={e.drops ? 'edge-label has-drops' : 'edge-label'}
                data-edge-id={e.id}
                {...pressable(() => pickEdge(e))}
              >
                <title>
                  {`${e.source} → ${e.destination}\nports ${e.ports.join(', ') || '-'} (${e.protocols.join(', ')})${e.services.length ? `\nservices ${e.services.join(', ')}` : ''}${e.drop_reasons.length ? `\ndropped: ${e.drop_reasons.join('; ')}` : ''}`}
                </title>
                {Math.abs(y - anchorY) > 2 && (
                  <>
                    <line x1={x} y1={y} x2={anchorX} y2={anchorY} class="leader" />
                    <circle cx={anchorX} cy={anchorY} r="2.5" class="anchor" />
                  </>
                )}
                <rect class="box" x={x - LABEL_W / 2} y={y - LABEL_H / 2} width={LABEL_W} height={LABEL_H} rx="5" />
                <text x={x} y={y - 9}>
                  <tspan class="rate">{formatRate(e.flow_rate)} flows/s</tspan>
                  <tspan class="bytes"> · {formatBytes(e.bytes)}</tspan>
                </text>
                <text x={x} y={y + 5}>
                  <tspan class={e.drops ? 'drops some' : 'drops'}>
                    {e.drops} {e.drops === 1 ? 'drop' : 'drops'}
                  </tspan>
                  <tspan class="rtt"> · p50 {e.p50_rtt_us === undefined ? '–' : formatRtt(e.p50_rtt_us)}</tspan>
                </text>
                <text x={x} y={y + 18} class="edge-sub">
                  {edgeSubtitle(e)}
                </text>
              </g>
            ))}
            {layout.nodes.map(({ node: n, x, y }) => (
              <g
                key={n.id}
                class={`node ${n.kind}`}
                data-node-id={n.id}
                transform={`translate(${x},${y})`}
                {...pressable(() => props.onPick(n))}
              >
                <title>{n.id}</title>
                <rect width={NODE_W} height={NODE_H} rx="8" />
                <text x={NODE_W / 2} y={n.namespace ? 20 : 28} class="node-name">
                  {n.label.length > 24 ? `${n.label.slice(0, 23)}…` : n.label}
                </text>
                {n.namespace && (
                  <text x={NODE_W / 2} y={36} class="node-ns">
                    {n.namespace}
                  </text>
                )}
              </g>
            ))}
          </svg>
        </div>
      ) : (
        <p class="empty">No flows in the last {windowName(props.windowS)}.</p>
      )}
    </section>
  );
}
