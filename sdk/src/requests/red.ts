/**
 * RED aggregates per method, status class and route, kept in memory until the
 * agent drains them. Bounded: routes are capped per service as the agent's
 * eBPF tracer caps them (the rest is `other`), methods outside the standard
 * set count as OTHER, and each series holds a bounded histogram.
 */
import { RouteCap, OTHER_ROUTE } from "@coral/proto/http-routes";
import { LatencyHistogram } from "./histogram.ts";

// Methods and status classes by index: a series is found per request by
// one Map lookup (the route) and an array slot, with no key strings built.
const methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER"] as const;
const methodIndex = new Map<string, number>(methods.slice(0, -1).map((m, i) => [m, i]));
const otherMethod = methods.length - 1;
const statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;

export interface DrainedSeries {
  method: string;
  route: string;
  statusClass: string;
  count: number;
  sumMs: number;
  buckets: { ms: number; count: number }[];
}

function statusClassIndex(status: number): number {
  return status >= 100 && status <= 599 ? Math.floor(status / 100) - 1 : statusClasses.length - 1;
}

export function statusClassOf(status: number): string {
  return statusClasses[statusClassIndex(status)]!;
}

interface Series {
  method: string;
  route: string;
  statusClass: string;
  histogram: LatencyHistogram;
  /** Where it is kept until drained. */
  slots: (Series | undefined)[];
  slot: number;
}

/** A route the cap admitted (for the methods in `admitted`, one bit each), with its series since the last drain. */
interface RouteEntry {
  route: string;
  admitted: number;
  series: (Series | undefined)[];
}

export class RedAggregator {
  /** Admitted routes (at most the cap's worth); kept across drains, as the cap remembers them. */
  readonly #routes = new Map<string, RouteEntry>();
  readonly #other: RouteEntry = { route: OTHER_ROUTE, admitted: 0, series: [] };
  #active: Series[] = [];
  readonly #cap: RouteCap;
  #overflow = 0;

  constructor(routeCap?: number) {
    this.#cap = new RouteCap(routeCap);
  }

  record(method: string, route: string, status: number, durationMs: number): void {
    const mi = methodIndex.get(method) ?? otherMethod;
    let entry = this.#routes.get(route);
    if (entry === undefined || (entry.admitted & (1 << mi)) === 0) {
      if (this.#cap.route(methods[mi]!, route) === OTHER_ROUTE) {
        this.#overflow++;
        entry = this.#other;
      } else {
        if (entry === undefined) {
          entry = { route, admitted: 0, series: [] };
          this.#routes.set(route, entry);
        }
        entry.admitted |= 1 << mi;
      }
    }
    const ci = statusClassIndex(status);
    const slot = mi * statusClasses.length + ci;
    let s = entry.series[slot];
    if (s === undefined) {
      s = { method: methods[mi]!, route: entry.route, statusClass: statusClasses[ci]!, histogram: new LatencyHistogram(), slots: entry.series, slot };
      entry.series[slot] = s;
      this.#active.push(s);
    }
    s.histogram.add(durationMs);
  }

  /** The series since the last drain; they are forgotten (the known routes stay). */
  drain(): { series: DrainedSeries[]; overflow: number } {
    const active = this.#active;
    this.#active = [];
    const series = active.map((s) => {
      s.slots[s.slot] = undefined;
      return {
        method: s.method,
        route: s.route,
        statusClass: s.statusClass,
        count: s.histogram.count,
        sumMs: s.histogram.sumMs,
        buckets: s.histogram.buckets(),
      };
    });
    const overflow = this.#overflow;
    this.#overflow = 0;
    return { series, overflow };
  }
}
