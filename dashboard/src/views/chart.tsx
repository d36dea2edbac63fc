// One metric chart: uPlot (fast on 100k points), drag to zoom, double-click to reset.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatMetric, type Chart } from "../logic/index.ts";

const colours = ["#2563eb", "#f59e0b", "#dc2626", "#16a34a", "#9333ea", "#0891b2"];

export function MetricChart({ chart }: { chart: Chart }) {
  const box = useRef<HTMLDivElement>(null);
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
      },
      [chart.x, ...chart.lines.map((l) => l.values)] as uPlot.AlignedData,
      el,
    );
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
      </figcaption>
      <div ref={box} />
    </figure>
  );
}
