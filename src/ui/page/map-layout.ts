// Where the service map draws its nodes and edges: a layered layout, left to right. A node's
// column is the length of the longest path of edges into it (clients left, servers right; a cycle
// is cut where it closes), its row its place among its column's nodes by name. Edges are curves
// from the right side of one box to the left side of the other; an edge backwards or within a
// column arcs over the boxes. Deterministic: the same map always looks the same.
import type { MapEdge, MapNode } from '../service-map.js';

export const NODE_W = 180;
export const NODE_H = 46;
const COL_GAP = 170;
const ROW_GAP = 44;
const MARGIN = 30;
/** above the first row: where arcs of backward edges go, with their labels above them */
const ARC_ROOM = 70;
/** the labels' two lines above an edge's middle */
const LABEL_ROOM = 34;

export interface PlacedNode {
  node: MapNode;
  x: number;
  y: number;
}

export interface PlacedEdge {
  edge: MapEdge;
  path: string;
  labelX: number;
  labelY: number;
}

export interface MapLayout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

function columns(nodes: MapNode[], edges: MapEdge[]): Map<string, number> {
  const col = new Map(nodes.map((n) => [n.id, 0]));
  // longest path by relaxation; at most |nodes| rounds, so a cycle stops growing
  for (let round = 0; round < nodes.length; round++) {
    let changed = false;
    for (const e of edges) {
      if (e.source === e.destination) continue;
      const c = (col.get(e.source) ?? 0) + 1;
      if (c > (col.get(e.destination) ?? 0) && c < nodes.length) {
        col.set(e.destination, c);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return col;
}

export function layoutMap(nodes: MapNode[], edges: MapEdge[]): MapLayout {
  const col = columns(nodes, edges);
  const byCol = new Map<number, MapNode[]>();
  for (const n of [...nodes].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const c = col.get(n.id) ?? 0;
    byCol.set(c, [...(byCol.get(c) ?? []), n]);
  }
  const rows = Math.max(1, ...[...byCol.values()].map((l) => l.length));
  const cols = Math.max(1, byCol.size === 0 ? 1 : Math.max(...byCol.keys()) + 1);
  const height = MARGIN * 2 + rows * NODE_H + (rows - 1) * ROW_GAP + ARC_ROOM;
  const width = MARGIN * 2 + cols * NODE_W + (cols - 1) * COL_GAP;
  const placed = new Map<string, PlacedNode>();
  for (const [c, list] of byCol) {
    const colH = list.length * NODE_H + (list.length - 1) * ROW_GAP;
    const top = ARC_ROOM + (height - ARC_ROOM - colH) / 2;
    list.forEach((n, i) => {
      placed.set(n.id, { node: n, x: MARGIN + c * (NODE_W + COL_GAP), y: top + i * (NODE_H + ROW_GAP) });
    });
  }
  const out: PlacedEdge[] = [];
  for (const e of edges) {
    const a = placed.get(e.source);
    const b = placed.get(e.destination);
    if (!a || !b) continue;
    if (b.x > a.x) {
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x;
      const y2 = b.y + NODE_H / 2;
      const dx = (x2 - x1) / 2;
      out.push({
        edge: e,
        path: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`,
        labelX: (x1 + x2) / 2,
        labelY: (y1 + y2) / 2,
      });
    } else {
      // backwards, same column or to itself: an arc over the top of both boxes
      const x1 = a.x + NODE_W / 2 + 20;
      const x2 = b.x + NODE_W / 2 - 20;
      const y1 = a.y;
      const y2 = b.y;
      const y = Math.min(y1, y2);
      // the curve's peak is a quarter of the way from its ends' height to its control points'
      const peak = Math.max(LABEL_ROOM, y - 40 - Math.abs(x1 - x2) / 12);
      const ctrl = y - (y - peak) / 0.75;
      out.push({
        edge: e,
        path: `M${x1},${y1} C${x1},${ctrl} ${x2},${ctrl} ${x2},${y2}`,
        labelX: (x1 + x2) / 2,
        labelY: peak,
      });
    }
  }
  return { width, height, nodes: [...placed.values()], edges: out };
}
