/**
 * RED aggregates per method, status class and route, kept in memory until the
 * agent drains them. Bounded: routes are capped per service as the agent's
 * eBPF tracer caps them (the rest is `other`), methods outside the standard
 * set count as OTHER, and each series holds a bounded histogram.
 */
import { RouteCap, OTHER_ROUTE } from "@coral/proto/http-routes";
import { LatencyHistogram } from "./histogram.ts";

const knownMethods = new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"]);

export interface DrainedSeries {
  method: string;
  route: string;
  statusClass: string;
  count: number;
  sumMs: number;
  buckets: { ms: number; count: number }[];
}

export function statusClassOf(status: number): string {
  return status >= 100 && status <= 599 ? `${Math.floor(status / 100)}xx` : "5xx";
}

export class RedAggregator {
  #series = new Map<string, { method: string; route: string; statusClass: string; histogram: LatencyHistogram }>();
  readonly #cap: RouteCap;
  #overflow = 0;

  constructor(routeCap?: number) {
    this.#cap = new RouteCap(routeCap);
  }

  record(method: string, route: string, status: number, durationMs: number): void {
    const m = knownMethods.has(method) ? method : "OTHER";
    const r = this.#cap.route(m, route);
    if (r === OTHER_ROUTE) this.#overflow++;
    const statusClass = statusClassOf(status);
    const key = `${m} ${statusClass} ${r}`;
    let s = this.#series.get(key);
    if (!s) {
      s = { method: m, route: r, statusClass, histogram: new LatencyHistogram() };
      this.#series.set(key, s);
    }
    s.histogram.add(durationMs);
  }

  /** The series since the last drain; they are forgotten (the known routes stay). */
  drain(): { series: DrainedSeries[]; overflow: number } {
    const series = [...this.#series.values()].map((s) => ({
      method: s.method,
      route: s.route,
      statusClass: s.statusClass,
      count: s.histogram.count,
      sumMs: s.histogram.sumMs,
      buckets: s.histogram.buckets(),
    }));
    const overflow = this.#overflow;
    this.#series = new Map();
    this.#overflow = 0;
    return { series, overflow };
  }
}
