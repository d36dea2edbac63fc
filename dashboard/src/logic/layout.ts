// Where the topology's nodes and edges go, without the DOM: layered (dagre:
// callers left of callees) for small graphs, force-directed (d3-force) for
// large ones. The view draws the result as SVG. Both layouts are
// deterministic: the same graph is drawn the same way after a reload.
import dagre from "@dagrejs/dagre";
import { forceCenter, forceCollide, forceLink, forceManyBody, forceSimulation, type SimulationNodeDatum } from "d3-force";
import type { GraphEdge, GraphNode, LayoutName } from "./graph.ts";

export interface PlacedNode {
  id: string;
  /** Centre. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge {
  id: string;
  /** SVG path data, from the source's border to the target's. */
  path: string;
  /** Where the count is written. */
  labelX: number;
  labelY: number;
}

export interface Placed {
  nodes: Map<string, PlacedNode>;
  edges: PlacedEdge[];
  /** Bounds of everything drawn. */
  minX: number;
  minY: number;
  width: number;
  height: number;
}

export const nodeHeight = 28;
/** Labels are 12 px text: about 7 px per character, with 10 px of padding each side. */
export const nodeWidth = (label: string) => Math.max(40, Math.round(label.length * 7 + 20));
const forceTicks = 300;

/** Where the segment from the centre of `a` towards (tx, ty) leaves `a`'s box. */
function border(a: PlacedNode, tx: number, ty: number): [number, number] {
  const dx = tx - a.x;
  const dy = ty - a.y;
  if (dx === 0 && dy === 0) return [a.x, a.y];
  const sx = Math.abs(dx) > 0 ? a.width / 2 / Math.abs(dx) : Infinity;
  const sy = Math.abs(dy) > 0 ? a.height / 2 / Math.abs(dy) : Infinity;
  const s = Math.min(sx, sy, 1);
  return [a.x + dx * s, a.y + dy * s];
}

const r1 = (v: number) => Math.round(v * 10) / 10;

/**
 * A straight edge, or a curved one when the opposite edge exists too (both
 * directions between two nodes would otherwise lie on top of each other).
 */
function edgeGeometry(id: string, s: PlacedNode, t: PlacedNode, curved: boolean): PlacedEdge {
  if (!curved) {
    const [x1, y1] = border(s, t.x, t.y);
    const [x2, y2] = border(t, s.x, s.y);
    return { id, path: `M${r1(x1)},${r1(y1)} L${r1(x2)},${r1(y2)}`, labelX: r1((x1 + x2) / 2), labelY: r1((y1 + y2) / 2) };
  }
  // Bend to the right of the direction of travel: the two directions bend apart.
  const mx = (s.x + t.x) / 2;
  const my = (s.y + t.y) / 2;
  const len = Math.hypot(t.x - s.x, t.y - s.y) || 1;
  const off = Math.min(40, len / 4);
  const cx = mx + (-(t.y - s.y) / len) * off;
  const cy = my + ((t.x - s.x) / len) * off;
  const [x1, y1] = border(s, cx, cy);
  const [x2, y2] = border(t, cx, cy);
  // The curve's midpoint (t = ½ of the quadratic Bézier).
  return { id, path: `M${r1(x1)},${r1(y1)} Q${r1(cx)},${r1(cy)} ${r1(x2)},${r1(y2)}`, labelX: r1((x1 + 2 * cx + x2) / 4), labelY: r1((y1 + 2 * cy + y2) / 4) };
}

function layered(nodes: readonly GraphNode[], edges: readonly GraphEdge[]): Map<string, PlacedNode> {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 30, ranksep: 90, marginx: 0, marginy: 0 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.data.id, { width: nodeWidth(n.data.label), height: nodeHeight });
  for (const e of edges) if (e.data.source !== e.data.target) g.setEdge(e.data.source, e.data.target);
  dagre.layout(g);
  const placed = new Map<string, PlacedNode>();
  for (const n of nodes) {
    const p = g.node(n.data.id);
    placed.set(n.data.id, { id: n.data.id, x: p.x, y: p.y, width: p.width, height: p.height });
  }
  return placed;
}

function force(nodes: readonly GraphNode[], edges: readonly GraphEdge[]): Map<string, PlacedNode> {
  type SimNode = SimulationNodeDatum & { id: string; width: number };
  const sim: SimNode[] = nodes.map((n) => ({ id: n.data.id, width: nodeWidth(n.data.label) }));
  const links = edges.filter((e) => e.data.source !== e.data.target).map((e) => ({ source: e.data.source, target: e.data.target }));
  // d3 places nodes on a phyllotaxis spiral when they have no position: deterministic.
  forceSimulation(sim)
    .force("link", forceLink<SimNode, { source: string; target: string }>(links).id((n) => n.id).distance(110).strength(0.3))
    .force("charge", forceManyBody().strength(-600))
    .force("collide", forceCollide<SimNode>((n) => n.width / 2 + 12))
    .force("center", forceCenter(0, 0))
    .stop()
    .tick(forceTicks);
  return new Map(sim.map((n) => [n.id, { id: n.id, x: n.x ?? 0, y: n.y ?? 0, width: n.width, height: nodeHeight }]));
}

export function layoutGraph(nodes: readonly GraphNode[], edges: readonly GraphEdge[], name: LayoutName): Placed {
  const placed = name === "layered" ? layered(nodes, edges) : force(nodes, edges);
  const ids = new Set(edges.map((e) => `${e.data.source}\u0000${e.data.target}`));
  const placedEdges: PlacedEdge[] = [];
  for (const e of edges) {
    const s = placed.get(e.data.source);
    const t = placed.get(e.data.target);
    if (!s || !t) continue;
    if (s === t) {
      // A component calling itself: a loop over its top.
      const top = s.y - s.height / 2;
      const q = s.width / 4;
      placedEdges.push({ id: e.data.id, path: `M${r1(s.x + q)},${r1(top)} C${r1(s.x + q)},${r1(top - 34)} ${r1(s.x - q)},${r1(top - 34)} ${r1(s.x - q)},${r1(top)}`, labelX: r1(s.x), labelY: r1(top - 30) });
      continue;
    }
    placedEdges.push(edgeGeometry(e.data.id, s, t, ids.has(`${e.data.target}\u0000${e.data.source}`)));
  }
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const n of placed.values()) {
    minX = Math.min(minX, n.x - n.width / 2);
    maxX = Math.max(maxX, n.x + n.width / 2);
    minY = Math.min(minY, n.y - n.height / 2);
    maxY = Math.max(maxY, n.y + n.height / 2);
  }
  for (const e of placedEdges) {
    minX = Math.min(minX, e.labelX - 10);
    maxX = Math.max(maxX, e.labelX + 10);
    minY = Math.min(minY, e.labelY - 8);
    maxY = Math.max(maxY, e.labelY + 8);
  }
  if (!Number.isFinite(minX)) return { nodes: placed, edges: placedEdges, minX: 0, minY: 0, width: 0, height: 0 };
  return { nodes: placed, edges: placedEdges, minX, minY, width: maxX - minX, height: maxY - minY };
}
