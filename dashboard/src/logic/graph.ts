// The topology as a graph: one node per component, one per external
// dependency (an address no component listens on), one edge per observed
// connection with its count. ./layout.ts places it and the Topology view draws it as SVG.

export interface TopologyInput {
  services: { name: string; status: string; health: string }[];
  edges: { fromService: string; toService: string; protocol: string; external: boolean; connectionCount: bigint | number }[];
}

export interface GraphNode {
  data: { id: string; label: string; kind: "component" | "external"; status: string; health: string };
}

export interface GraphEdge {
  data: { id: string; source: string; target: string; label: string; count: number; protocol: string };
}

const nodeId = (kind: "component" | "external", name: string) => `${kind === "component" ? "c" : "x"}:${name}`;

export function buildGraph(input: TopologyInput): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const nodes = new Map<string, GraphNode>();
  // A component may have several agents: one node, the worst state wins.
  const rank = (s: string) => ["online", "healthy"].includes(s) ? 0 : ["degraded", "registering", "unknown"].includes(s) ? 1 : 2;
  for (const s of input.services) {
    const id = nodeId("component", s.name);
    const existing = nodes.get(id);
    if (existing && rank(existing.data.status) >= rank(s.status)) continue;
    nodes.set(id, { data: { id, label: s.name, kind: "component", status: s.status, health: s.health } });
  }
  const edges = new Map<string, GraphEdge>();
  for (const e of input.edges) {
    const source = nodeId("component", e.fromService);
    if (!nodes.has(source)) nodes.set(source, { data: { id: source, label: e.fromService, kind: "component", status: "unknown", health: "unknown" } });
    const targetKind = e.external || !nodes.has(nodeId("component", e.toService)) ? "external" : "component";
    const target = nodeId(targetKind, e.toService);
    if (!nodes.has(target)) nodes.set(target, { data: { id: target, label: e.toService, kind: targetKind, status: "", health: "" } });
    const id = `${source}->${target}`;
    const count = Number(e.connectionCount);
    const existing = edges.get(id);
    if (existing) {
      existing.data.count += count;
      existing.data.label = String(existing.data.count);
      if (!existing.data.protocol.split(",").includes(e.protocol)) existing.data.protocol += `,${e.protocol}`;
    } else edges.set(id, { data: { id, source, target, label: String(count), count, protocol: e.protocol } });
  }
  const byId = (a: { data: { id: string } }, b: { data: { id: string } }) => a.data.id.localeCompare(b.data.id);
  return { nodes: [...nodes.values()].sort(byId), edges: [...edges.values()].sort(byId) };
}

export type LayoutName = "layered" | "force";

/**
 * Above this size the layered layout (dagre: network simplex ranking and
 * crossing minimisation) takes seconds on a busy machine; a force-directed
 * layout (d3-force) a small fraction of that. Measured in bench/dashboard.
 */
export const layeredLimit = { nodes: 30, edges: 60 };

/** The layout to draw with: the one asked for (a shareable `?layout=`), else layered for small graphs and force above layeredLimit. */
export function chooseLayout(asked: string | null | undefined, nodes: number, edges: number): LayoutName {
  if (asked === "layered" || asked === "force") return asked;
  return nodes <= layeredLimit.nodes && edges <= layeredLimit.edges ? "layered" : "force";
}
