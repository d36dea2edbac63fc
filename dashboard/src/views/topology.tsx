// Topology: the observed graph (components, external dependencies, edges
// with connection counts), laid out by Cytoscape.js: layered (dagre) for
// small graphs, force-directed (cose) for large ones, or as `?layout=` asks;
// a component opens on click. Live: redrawn when the colony stores new edges,
// recoloured when a component's state changes.
import { useEffect, useRef } from "preact/hooks";
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import { topologyData } from "../topology-data.ts";
import { useLive, useTopics } from "../live.ts";
import { buildGraph, chooseLayout, layeredLimit, type LayoutName } from "../logic/graph.ts";
import { navigate, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";

cytoscape.use(dagre);

const style: cytoscape.StylesheetJson = [
  {
    selector: "node",
    style: {
      label: "data(label)",
      "text-valign": "center",
      "text-halign": "center",
      "font-size": 12,
      color: "#0f172a",
      width: "label",
      height: 28,
      padding: "10px",
      shape: "round-rectangle",
      "background-color": "#e2e8f0",
      "border-width": 2,
      "border-color": "#94a3b8",
    },
  },
  { selector: 'node[kind = "component"][status = "online"]', style: { "background-color": "#dcfce7", "border-color": "#16a34a" } },
  { selector: 'node[kind = "component"][status = "degraded"]', style: { "background-color": "#fef9c3", "border-color": "#ca8a04" } },
  { selector: 'node[kind = "component"][status = "offline"]', style: { "background-color": "#fee2e2", "border-color": "#dc2626" } },
  { selector: 'node[kind = "external"]', style: { shape: "rectangle", "border-style": "dashed", "background-color": "#f8fafc" } },
  {
    selector: "edge",
    style: {
      label: "data(label)",
      "font-size": 10,
      "curve-style": "bezier",
      "target-arrow-shape": "triangle",
      width: 1.5,
      "line-color": "#64748b",
      "target-arrow-color": "#64748b",
      "text-background-color": "#ffffff",
      "text-background-opacity": 1,
      "text-background-padding": "2px",
      // Counts too small to read are not drawn (a large graph fitted to the box): the first draw of 200 edges costs a third less.
      "min-zoomed-font-size": 7,
    },
  },
];

const layouts: Record<LayoutName, cytoscape.LayoutOptions> = {
  layered: { name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 90 } as cytoscape.LayoutOptions,
  force: { name: "cose", animate: false, randomize: false, nodeRepulsion: () => 400_000, idealEdgeLength: () => 90, padding: 20 } as cytoscape.LayoutOptions,
};

export function Topology() {
  const topology = useAsync(topologyData, []);
  const { query } = useLocation();
  const asked = query.get("layout");
  useTopics(["topology"], topology.reload);
  const { status } = useLive();
  const box = useRef<HTMLDivElement>(null);
  const cy = useRef<cytoscape.Core | undefined>(undefined);

  useEffect(() => {
    if (!box.current || !topology.data) return;
    // Marks for bench/dashboard: data in, graph laid out.
    performance.mark("coral:topology-data");
    const { nodes, edges } = buildGraph(topology.data);
    const layout = chooseLayout(asked, nodes.length, edges.length);
    cy.current?.destroy();
    const graph = cytoscape({
      container: box.current,
      elements: { nodes, edges },
      style,
      layout: layouts[layout],
      wheelSensitivity: 0.3,
      maxZoom: 3,
    });
    // A small graph fitted to the box would be drawn huge: no closer than 1.25×.
    const notTooClose = () => {
      if (graph.zoom() > 1.25) {
        graph.zoom(1.25);
        graph.center();
      }
    };
    notTooClose(); // both layouts run synchronously, within cytoscape()
    graph.one("layoutstop", notTooClose);
    graph.on("tap", 'node[kind = "component"]', (e) => navigate(`/components/${encodeURIComponent(String(e.target.data("label")))}`));
    cy.current = graph;
    performance.mark("coral:topology-drawn");
    box.current.dataset.nodes = String(nodes.length);
    box.current.dataset.edges = String(edges.length);
    box.current.dataset.layout = layout;
    return () => {
      graph.destroy();
      cy.current = undefined;
    };
  }, [topology.data, asked]);

  // State colours follow the live status without a new layout.
  useEffect(() => {
    const graph = cy.current;
    if (!graph || !status) return;
    for (const s of status.services) graph.$id(`c:${s.name}`).data("status", s.status);
  }, [status, topology.data]);

  return (
    <div>
      <div class="toolbar">
        <h2>Topology</h2>
        <span class="muted">arrows point from caller to callee; numbers are connections seen; dashed boxes are dependencies outside the app</span>
        <label class="layout-choice" title={`layered is the default up to ${layeredLimit.nodes} nodes and ${layeredLimit.edges} edges; it takes longer on large graphs`}>
          Layout{" "}
          <select data-testid="topology-layout" value={asked ?? "auto"} onChange={(e) => setQuery("layout", e.currentTarget.value === "auto" ? null : e.currentTarget.value)}>
            <option value="auto">automatic</option>
            <option value="layered">layered</option>
            <option value="force">force-directed</option>
          </select>
        </label>
      </div>
      {topology.error && <p class="error">{topology.error}</p>}
      {topology.data && topology.data.services.length === 0 && topology.data.edges.length === 0 && <p class="muted">Nothing observed yet.</p>}
      <div class="topology" ref={box} data-testid="topology" />
    </div>
  );
}
