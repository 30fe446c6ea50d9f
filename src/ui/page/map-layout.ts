// Where the service map draws its nodes and edges: a layered layout, left to right. A node's
// column is the length of the longest path of edges into it (clients left, servers right; a cycle
// is cut at the edge that closes it, walking from the clients), its row its place among its
// column's nodes by name. Edges are curves
// from the right side of one box to the left side of the other; an edge backwards or within a
// column arcs over the boxes. Deterministic: the same map always looks the same.
import type { MapEdge, MapNode } from '../service-map.js';

export const NODE_W = 180;
export const NODE_H = 46;
const COL_GAP = 230;
const ROW_GAP = 50;
const MARGIN = 30;
/** above the first row: where arcs of backward edges go, with their labels above them */
const ARC_ROOM = 70;
/** a label's box: three lines */
export const LABEL_W = 164;
export const LABEL_H = 48;
/** the least height of a label's centre (half a label and a little) */
const LABEL_ROOM = 30;

export interface PlacedNode {
  node: MapNode;
  x: number;
  y: number;
}

export interface PlacedEdge {
  edge: MapEdge;
  path: string;
  /** the centre of the edge's label */
  labelX: number;
  labelY: number;
  /** the point of the curve the label belongs to (the label moves off it only to make room) */
  anchorX: number;
  anchorY: number;
}

export interface MapLayout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  edges: PlacedEdge[];
}

/**
 * The edges less those that close a cycle: a depth-first walk from the nodes that send more than
 * they receive (by connections: clients first), dropping each edge back to a node still on the walk.
 */
function withoutCycles(nodes: MapNode[], edges: MapEdge[]): MapEdge[] {
  const out = new Map<string, MapEdge[]>();
  const balance = new Map<string, number>(nodes.map((n) => [n.id, 0]));
  for (const e of edges) {
    if (e.source === e.destination) continue;
    out.set(e.source, [...(out.get(e.source) ?? []), e]);
    balance.set(e.source, (balance.get(e.source) ?? 0) - e.flows);
    balance.set(e.destination, (balance.get(e.destination) ?? 0) + e.flows);
  }
  const order = [...nodes].sort((a, b) => balance.get(a.id)! - balance.get(b.id)! || (a.id < b.id ? -1 : 1));
  const state = new Map<string, 'on-walk' | 'done'>();
  const kept: MapEdge[] = [];
  const walk = (id: string): void => {
    state.set(id, 'on-walk');
    for (const e of out.get(id) ?? []) {
      const s = state.get(e.destination);
      if (s === 'on-walk') continue;
      kept.push(e);
      if (s === undefined) walk(e.destination);
    }
    state.set(id, 'done');
  };
  for (const n of order) if (!state.has(n.id)) walk(n.id);
  return kept;
}

/** Each node's column: the longest path of edges into it, once the cycles are cut. */
function columns(nodes: MapNode[], dag: MapEdge[]): Map<string, number> {
  const col = new Map(nodes.map((n) => [n.id, 0]));
  const indegree = new Map(nodes.map((n) => [n.id, 0]));
  for (const e of dag) indegree.set(e.destination, indegree.get(e.destination)! + 1);
  const ready = nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
  while (ready.length > 0) {
    const id = ready.pop()!;
    for (const e of dag) {
      if (e.source !== id) continue;
      col.set(e.destination, Math.max(col.get(e.destination)!, col.get(id)! + 1));
      indegree.set(e.destination, indegree.get(e.destination)! - 1);
      if (indegree.get(e.destination) === 0) ready.push(e.destination);
    }
  }
  return col;
}

/** Orders each column by where its nodes' clients are (one barycentre sweep), to uncross edges. */
function orderColumns(byCol: Map<number, MapNode[]>, dag: MapEdge[]): void {
  const row = new Map<string, number>();
  for (const c of [...byCol.keys()].sort((a, b) => a - b)) {
    const list = byCol.get(c)!;
    const centre = (n: MapNode, i: number): number => {
      const from = dag.filter((e) => e.destination === n.id && row.has(e.source)).map((e) => row.get(e.source)!);
      return from.length ? from.reduce((x, y) => x + y, 0) / from.length : i;
    };
    const keyed = list.map((n, i) => ({ n, k: centre(n, i) }));
    keyed.sort((a, b) => a.k - b.k || (a.n.id < b.n.id ? -1 : 1));
    byCol.set(
      c,
      keyed.map((x) => x.n),
    );
    keyed.forEach((x, i) => void row.set(x.n.id, i));
  }
}

/** A point of a cubic Bézier curve. */
function bezier(p: number[], t: number): [number, number] {
  const u = 1 - t;
  const a = u * u * u;
  const b = 3 * u * u * t;
  const c = 3 * u * t * t;
  const d = t * t * t;
  return [a * p[0]! + b * p[2]! + c * p[4]! + d * p[6]!, a * p[1]! + b * p[3]! + c * p[5]! + d * p[7]!];
}

/** Where the curve crosses x (it runs left to right). */
function yAt(p: number[], x: number): number {
  let best = bezier(p, 0);
  for (let t = 0; t <= 1; t += 0.02) {
    const q = bezier(p, t);
    if (Math.abs(q[0] - x) < Math.abs(best[0] - x)) best = q;
  }
  return best[1];
}

export function layoutMap(nodes: MapNode[], edges: MapEdge[]): MapLayout {
  const dag = withoutCycles(nodes, edges);
  const col = columns(nodes, dag);
  const byCol = new Map<number, MapNode[]>();
  for (const n of [...nodes].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const c = col.get(n.id) ?? 0;
    byCol.set(c, [...(byCol.get(c) ?? []), n]);
  }
  orderColumns(byCol, dag);
  const rows = Math.max(1, ...[...byCol.values()].map((l) => l.length));
  const cols = Math.max(1, byCol.size === 0 ? 1 : Math.max(...byCol.keys()) + 1);
  // room above the rows only for the arcs of edges that go back (or stay in their column)
  const arcs = edges.some((e) => (col.get(e.destination) ?? 0) <= (col.get(e.source) ?? 0));
  const arcRoom = arcs ? ARC_ROOM : 0;
  let height = MARGIN * 2 + rows * NODE_H + (rows - 1) * ROW_GAP + arcRoom;
  const width = MARGIN * 2 + cols * NODE_W + (cols - 1) * COL_GAP;
  const placed = new Map<string, PlacedNode>();
  for (const [c, list] of byCol) {
    const colH = list.length * NODE_H + (list.length - 1) * ROW_GAP;
    const top = arcRoom + (height - arcRoom - colH) / 2;
    list.forEach((n, i) => {
      placed.set(n.id, { node: n, x: MARGIN + c * (NODE_W + COL_GAP), y: top + i * (NODE_H + ROW_GAP) });
    });
  }

  // forward edges leave a box's right side and enter the next one's left side at points spread
  // over its height, in the order of the boxes at their other ends
  const forward = edges.filter((e) => {
    const a = placed.get(e.source);
    const b = placed.get(e.destination);
    return a && b && b.x > a.x;
  });
  const attach = new Map<string, number>();
  const spread = (side: 'out' | 'in'): void => {
    const byNode = new Map<string, MapEdge[]>();
    for (const e of forward) {
      const id = side === 'out' ? e.source : e.destination;
      byNode.set(id, [...(byNode.get(id) ?? []), e]);
    }
    for (const [id, list] of byNode) {
      const other = (e: MapEdge): number => placed.get(side === 'out' ? e.destination : e.source)!.y;
      list.sort((a, b) => other(a) - other(b));
      const n = placed.get(id)!;
      list.forEach((e, i) => void attach.set(`${side} ${e.id}`, n.y + (NODE_H * (i + 1)) / (list.length + 1)));
    }
  };
  spread('out');
  spread('in');

  const out: PlacedEdge[] = [];
  const gaps = new Map<number, PlacedEdge[]>();
  for (const e of edges) {
    const a = placed.get(e.source);
    const b = placed.get(e.destination);
    if (!a || !b) continue;
    if (b.x > a.x) {
      const x1 = a.x + NODE_W;
      const y1 = attach.get(`out ${e.id}`)!;
      const x2 = b.x;
      const y2 = attach.get(`in ${e.id}`)!;
      const dx = Math.min(COL_GAP, (x2 - x1) / 2);
      const p = [x1, y1, x1 + dx, y1, x2 - dx, y2, x2, y2];
      // the label sits in the first gap after the source, where no box is
      const lx = x1 + COL_GAP / 2;
      const ly = yAt(p, lx);
      const placedEdge = {
        edge: e,
        path: `M${x1},${y1} C${p[2]},${p[3]} ${p[4]},${p[5]} ${x2},${y2}`,
        labelX: lx,
        labelY: ly,
        anchorX: lx,
        anchorY: ly,
      };
      out.push(placedEdge);
      const g = col.get(e.source) ?? 0;
      gaps.set(g, [...(gaps.get(g) ?? []), placedEdge]);
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
        anchorX: (x1 + x2) / 2,
        anchorY: peak,
      });
    }
  }
  // labels in one gap must not overlap: each at least LABEL_H below the one above it
  for (const list of gaps.values()) {
    list.sort((a, b) => a.anchorY - b.anchorY);
    let below = Number.NEGATIVE_INFINITY;
    for (const l of list) {
      l.labelY = Math.max(l.anchorY, below + LABEL_H);
      below = l.labelY;
    }
    height = Math.max(height, below + LABEL_H / 2 + MARGIN);
  }
  return { width, height, nodes: [...placed.values()], edges: out };
}
