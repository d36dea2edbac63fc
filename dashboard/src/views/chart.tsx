// One metric chart: uPlot (fast on 100k points), drag to zoom, double-click to reset.
// `rangeLink` adds a link for the range the chart shows (zoomed or not), e.g. the CPU chart's "profile this range".
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatMetric, type Chart } from "../logic/index.ts";
import { Link } from "../router.tsx";

const colours = ["#2563eb", "#f59e0b", "#dc2626", "#16a34a", "#9333ea", "#0891b2"];

export function MetricChart({ chart, rangeLink }: { chart: Chart; rangeLink?: { label: string; title?: string; href(minSeconds: number, maxSeconds: number): string } }) {
  const box = useRef<HTMLDivElement>(null);
  /** The x range shown (unix seconds), following drag-to-zoom and its reset. */
  const [shown, setShown] = useState<[number, number] | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const plot = new uPlot(
      {
        width: Math.max(300, el.clientWidth),
        height: 200,
        series: [
          {},
          ...chart.lines.map((l, n) => ({ label: l.label, stroke: colours[n % colours.length], width: 1.5, spanGaps: chart.resolution !== "raw", value: (_: uPlot, v: number | null) => (v == null ? "–" : formatMetric(chart.metric, v)) })),
        ],
        axes: [{}, { size: 70, values: (_: uPlot, ticks: number[]) => ticks.map((t) => formatMetric(chart.metric, t)) }],
        cursor: { drag: { x: true, y: false } },
        legend: { live: true },
        hooks: {
          setScale: [
            (u: uPlot, key: string) => {
              const { min, max } = u.scales.x ?? {};
              if (key === "x" && min != null && max != null) setShown([min, max]);
            },
          ],
        },
      },
      [chart.x, ...chart.lines.map((l) => l.values)] as uPlot.AlignedData,
      el,
    );
    const { min, max } = plot.scales.x ?? {};
    if (min != null && max != null) setShown([min, max]);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(300, el.clientWidth), height: 200 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [chart]);
  return (
    <figure class="chart" data-metric={chart.metric} data-points={chart.x.length}>
      <figcaption>
        {chart.metric} <span class="muted">({chart.resolution === "raw" ? "raw, 1 s" : `rollup ${chart.resolution}`}, {chart.x.length} points)</span>
        {rangeLink && shown && (
          <Link href={rangeLink.href(shown[0], shown[1])} class="range-link" title={rangeLink.title}>
            {rangeLink.label}
          </Link>
        )}
      </figcaption>
      <div ref={box} />
    </figure>
  );
}
