// An interactive flame graph in SVG (no library): each frame as wide as its
// share of the samples, click a frame to zoom into it (click the root or a
// dimmed ancestor to zoom back out), search matches in purple, a tooltip with
// the function, its self and total samples, and with a baseline the change
// in red (hotter) and blue (colder).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { diffColour, fitLabel, frameColour, layoutFlame, matchColour, share, type FlameTree } from "../logic/index.ts";

const rowHeight = 18;

export interface FlameGraphProps {
  tree: FlameTree;
  /** The zoomed frame's id (0: the root). */
  focus: number;
  onFocus(id: number): void;
  /** Ids of the frames the search matched. */
  matches: Set<number>;
  /** Per node id, the change in share (percentage points) against the baseline: draws the differential colours. */
  deltas?: number[];
  /** "icicle": the root on top; "flame": the root at the bottom. */
  orientation: "icicle" | "flame";
}

const pct = (n: number) => `${n.toFixed(n >= 10 ? 1 : 2)}%`;

export function FlameGraph({ tree, focus, onFocus, matches, deltas, orientation }: FlameGraphProps) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  const [hover, setHover] = useState<{ id: number; x: number; y: number } | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setWidth(Math.max(200, Math.floor(el.clientWidth)));
    measure();
    const resize = new ResizeObserver(measure);
    resize.observe(el);
    return () => resize.disconnect();
  }, []);
  const boxes = useMemo(() => (width ? layoutFlame(tree, focus, width) : []), [tree, focus, width]);
  const depth = boxes.reduce((d, b) => Math.max(d, b.depth), 0);
  // Colours scale to the largest change drawn, so a small shift still shows.
  const maxAbs = useMemo(() => (deltas ? boxes.reduce((m, b) => (b.depth > 0 ? Math.max(m, Math.abs(deltas[b.id] ?? 0)) : m), 0) : 0), [boxes, deltas]);
  const height = (depth + 1) * rowHeight;
  const hovered = hover ? tree.nodes[hover.id] : undefined;
  return (
    <div class="flame" ref={box} data-testid="flame-graph" data-width={width} data-focus={focus} data-orientation={orientation} onMouseLeave={() => setHover(null)}>
      {width > 0 && (
        <svg width={width} height={height} role="img" aria-label="flame graph">
          {boxes.map((b) => {
            const node = tree.nodes[b.id]!;
            const y = orientation === "icicle" ? b.depth * rowHeight : (depth - b.depth) * rowHeight;
            const match = matches.has(b.id);
            const delta = deltas?.[b.id];
            const fill = match ? matchColour : delta === undefined || node.kind === "root" ? frameColour(node) : diffColour(delta, maxAbs);
            const label = fitLabel(node.name, b.w);
            return (
              <g
                class={`frame${b.ancestor ? " ancestor" : ""}${match ? " match" : ""}`}
                key={b.id}
                data-id={b.id}
                data-name={node.name}
                data-depth={b.depth}
                data-samples={node.value}
                data-match={match ? "true" : undefined}
                data-delta={delta === undefined ? undefined : delta.toFixed(4)}
                data-fill={fill}
                transform={`translate(${b.x},${y})`}
                onClick={() => onFocus(b.id === focus && b.id !== 0 ? node.parent : b.id)}
                onMouseMove={(e) => {
                  const r = box.current!.getBoundingClientRect();
                  setHover({ id: b.id, x: e.clientX - r.left, y: e.clientY - r.top });
                }}
              >
                <rect width={Math.max(0, b.w - 0.5)} height={rowHeight - 1} fill={fill} rx={1.5} />
                {label && (
                  <text x={3} y={rowHeight - 5}>
                    {label}
                  </text>
                )}
              </g>
            );
          })}
        </svg>
      )}
      {hovered && hover && (
        <div class="flame-tooltip" data-testid="flame-tooltip" style={{ left: `${Math.min(hover.x + 14, Math.max(0, width - 340))}px`, top: `${hover.y + 16}px` }}>
          <div class="fn">{hovered.name}</div>
          {hovered.module && <div class="muted">{hovered.module}</div>}
          <div data-field="total">
            total {hovered.value.toLocaleString("en-US")} samples ({pct(share(hovered.value, tree.total))})
          </div>
          <div data-field="self">
            self {hovered.self.toLocaleString("en-US")} samples ({pct(share(hovered.self, tree.total))})
          </div>
          {focus !== 0 && hovered.id !== focus && <div class="muted">{pct(share(hovered.value, tree.nodes[focus]!.value))} of the zoomed frame</div>}
          {deltas && hovered.kind !== "root" && (
            <div data-field="delta" class={(deltas[hovered.id] ?? 0) > 0 ? "hotter" : "colder"}>
              {(deltas[hovered.id] ?? 0) >= 0 ? "+" : "−"}
              {Math.abs(deltas[hovered.id] ?? 0).toFixed(2)} points of all samples vs the baseline
            </div>
          )}
          <div class="muted">{hovered.id === focus ? (hovered.id === 0 ? "" : "click: zoom out one level") : "click: zoom in"}</div>
        </div>
      )}
    </div>
  );
}
