// The page of bench/dashboard-chart: the dashboard's own chart component
// (uPlot) and chart logic on N points of 1 s data. Built by the benchmark
// into a temporary directory, never into the shipped bundle.
import { render } from "preact";
import { buildCharts } from "../logic/series.ts";
import { MetricChart } from "../views/chart.tsx";
import "../styles.css";

export interface ChartTiming {
  /** QueryMetrics answer → chart data (buildCharts). */
  buildMs: number;
  /** Chart data → the chart drawn (the frame after its canvas exists). */
  drawMs: number;
  points: number;
}

declare global {
  interface Window {
    drawChart(points: number): Promise<ChartTiming>;
  }
}

const frame = () => new Promise<number>((r) => requestAnimationFrame(() => r(performance.now())));

window.drawChart = async (points) => {
  const start = Math.floor(Date.now() / 1000) - points;
  // One agent's cpu_percent every second, as the agent's raw answer carries it.
  const rawPoints = Array.from({ length: points }, (_, i) => ({
    timestamp: { seconds: BigInt(start + i), nanos: 0 },
    metricName: "cpu_percent",
    value: 30 + 20 * Math.sin(i / 900) + 8 * Math.sin(i / 7),
    agentId: "api-1",
  }));
  const root = document.getElementById("app")!;
  render(null, root);
  await frame();
  const t0 = performance.now();
  const [chart] = buildCharts({ series: [], rawPoints });
  const t1 = performance.now();
  render(<MetricChart chart={chart!} />, root);
  while (!root.querySelector("canvas")) await frame();
  const drawn = await frame();
  return { buildMs: t1 - t0, drawMs: drawn - t1, points: chart!.x.length };
};
