// Topology: the observed graph (components, external dependencies, edges
// with connection counts), placed by ../logic/layout.ts (layered for small
// graphs, force-directed for large ones, or as `?layout=` asks) and drawn as
// SVG: wheel to zoom, drag to pan, double-click to fit, a component opens on
// click. Live: placed again when the colony stores new edges, recoloured
// when a component's state changes. (SVG instead of a canvas graph library:
// 50 components and 200 edges are drawn in a few milliseconds, with no
// large chunk to parse first; bench/dashboard.)
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { topologyData } from "../topology-data.ts";
import { useLive, useTopics } from "../live.ts";
import { buildGraph, chooseLayout, layeredLimit } from "../logic/index.ts";
// Not through ../logic/index.ts: dagre and d3-force stay in this view's chunk.
import { layoutGraph } from "../logic/layout.ts";
import { navigate, setQuery, useLocation } from "../router.tsx";
import { useAsync } from "../use-async.ts";

const padding = 24;
const maxZoom = 3;

interface View {
  x: number;
  y: number;
  width: number;
  height: number;
}

export function Topology() {
  const topology = useAsync(topologyData, []);
  const { query } = useLocation();
  const asked = query.get("layout");
  useTopics(["topology"], topology.reload);
  const { status } = useLive();

  const drawn = useMemo(() => {
    if (!topology.data) return undefined;
    // Marks for bench/dashboard: data in, graph placed.
    performance.mark("coral:topology-data");
    const graph = buildGraph(topology.data);
    const layout = chooseLayout(asked, graph.nodes.length, graph.edges.length);
    const placed = layoutGraph(graph.nodes, graph.edges, layout);
    const labels = new Map(graph.edges.map((e) => [e.data.id, e.data.label]));
    performance.mark("coral:topology-drawn");
    return { graph, layout, placed, labels };
  }, [topology.data, asked]);

  // The live state of each component, over the state the topology answer had.
  const liveStatus = new Map(status?.services.map((s) => [s.name, s.status]) ?? []);

  const fitted = useMemo<View | undefined>(() => {
    if (!drawn || drawn.placed.width === 0) return undefined;
    const { minX, minY, width, height } = drawn.placed;
    return { x: minX - padding, y: minY - padding, width: width + 2 * padding, height: height + 2 * padding };
  }, [drawn]);
  const [view, setView] = useState<View | undefined>(undefined);
  useEffect(() => setView(fitted), [fitted]);

  const svg = useRef<SVGSVGElement>(null);
  const drag = useRef<{ x: number; y: number; view: View; moved: boolean } | undefined>(undefined);
  /** Screen pixels to graph units, for the current view. */
  const unitsPerPixel = () => {
    const el = svg.current;
    if (!el || !view) return 1;
    const box = el.getBoundingClientRect();
    return Math.max(view.width / box.width, view.height / box.height);
  };

  const onWheel = (e: WheelEvent) => {
    if (!view || !fitted || !svg.current) return;
    e.preventDefault();
    const box = svg.current.getBoundingClientRect();
    const scale = Math.exp(e.deltaY * 0.0015);
    // Not closer than maxZoom (graph units per pixel at 1:1), not further than the whole graph fitted twice.
    const width = Math.min(fitted.width * 2, Math.max(box.width / maxZoom, view.width * scale));
    const k = width / view.width;
    const fx = (e.clientX - box.left) / box.width;
    const fy = (e.clientY - box.top) / box.height;
    setView({ x: view.x + fx * view.width * (1 - k), y: view.y + fy * view.height * (1 - k), width, height: view.height * k });
  };
  const onPointerDown = (e: PointerEvent) => {
    if (!view) return;
    drag.current = { x: e.clientX, y: e.clientY, view, moved: false };
  };
  const onPointerMove = (e: PointerEvent) => {
    const d = drag.current;
    if (!d) return;
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    if (!d.moved && Math.hypot(dx, dy) < 4) return;
    d.moved = true;
    const u = unitsPerPixel();
    setView({ ...d.view, x: d.view.x - dx * u, y: d.view.y - dy * u });
  };
  const onPointerUp = () => {
    // A drag that moved is a pan, not a click on what is under the pointer.
    setTimeout(() => (drag.current = undefined), 0);
  };
  const open = (name: string) => {
    if (!drag.current?.moved) navigate(`/components/${encodeURIComponent(name)}`);
  };

  const empty = topology.data && topology.data.services.length === 0 && topology.data.edges.length === 0;
  return (
    <div>
      <div class="toolbar">
        <h2>Topology</h2>
        <span class="muted">arrows point from caller to callee; numbers are connections seen; dashed boxes are dependencies outside the app</span>
        <label class="layout-choice" title={`layered is the default up to ${layeredLimit.nodes} nodes and ${layeredLimit.edges} edges`}>
          Layout{" "}
          <select data-testid="topology-layout" value={asked ?? "auto"} onChange={(e) => setQuery("layout", e.currentTarget.value === "auto" ? null : e.currentTarget.value)}>
            <option value="auto">automatic</option>
            <option value="layered">layered</option>
            <option value="force">force-directed</option>
          </select>
        </label>
      </div>
      {topology.error && <p class="error">{topology.error}</p>}
      {empty && <p class="muted">Nothing observed yet.</p>}
      <div
        class="topology"
        data-testid="topology"
        data-nodes={drawn ? String(drawn.graph.nodes.length) : undefined}
        data-edges={drawn ? String(drawn.graph.edges.length) : undefined}
        data-layout={drawn?.layout}
      >
        {drawn && view && (
          <svg
            ref={svg}
            viewBox={`${view.x} ${view.y} ${view.width} ${view.height}`}
            preserveAspectRatio="xMidYMid meet"
            onWheel={onWheel}
            onPointerDown={onPointerDown}
            onPointerMove={onPointerMove}
            onPointerUp={onPointerUp}
            onPointerLeave={onPointerUp}
            onDblClick={() => setView(fitted)}
          >
            <defs>
              <marker id="topology-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                <path d="M0,0 L10,5 L0,10 z" class="arrow" />
              </marker>
            </defs>
            <g class="edges">
              {drawn.placed.edges.map((e) => (
                <path key={e.id} d={e.path} class="edge" marker-end="url(#topology-arrow)" data-edge={e.id} />
              ))}
            </g>
            <g class="edge-labels">
              {drawn.placed.edges.map((e) => (
                <text key={e.id} x={e.labelX} y={e.labelY} class="edge-label">
                  {drawn.labels.get(e.id)}
                </text>
              ))}
            </g>
            <g class="nodes">
              {drawn.graph.nodes.map((n) => {
                const p = drawn.placed.nodes.get(n.data.id)!;
                const state = n.data.kind === "component" ? (liveStatus.get(n.data.label) ?? n.data.status) : "";
                return (
                  <g
                    key={n.data.id}
                    class={`node ${n.data.kind} ${state}`}
                    data-node={n.data.id}
                    data-status={state}
                    transform={`translate(${p.x - p.width / 2},${p.y - p.height / 2})`}
                    onClick={n.data.kind === "component" ? () => open(n.data.label) : undefined}
                  >
                    <title>{n.data.kind === "component" ? `${n.data.label}: ${state || "unknown"}` : `${n.data.label}: outside the app`}</title>
                    <rect width={p.width} height={p.height} rx={6} />
                    <text x={p.width / 2} y={p.height / 2}>
                      {n.data.label}
                    </text>
                  </g>
                );
              })}
            </g>
          </svg>
        )}
      </div>
    </div>
  );
}
