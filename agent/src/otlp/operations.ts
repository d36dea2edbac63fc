// Per-operation summaries of every span received (kept by the tail rules or
// not, so the figures are not biased by what is kept), and the interval's
// error counts: what the agent adds to its metric summaries for the colony.
// Counts, means, minimum and maximum are exact; percentiles come from a
// uniform sample of at most `sampleSize` durations per operation and
// interval (reservoir sampling), so memory stays bounded at any span rate.
import { LOG_ERRORS_METRIC, OTHER_OPERATION, SPAN_ERRORS_METRIC, spanMetricName } from "@coral/common/span-metric-name";
import type { MetricSummary } from "../storage/types.ts";

export interface OperationStatsOptions {
  /** Distinct operations per interval; the rest are summed as "other" (default 200). */
  maxOperations?: number;
  /** Durations kept per operation and interval for percentiles (default 1024). */
  sampleSize?: number;
  random?: () => number;
}

interface Op {
  count: number;
  sum: number;
  min: number;
  max: number;
  sample: number[];
}

/** The value at quantile q of sorted values, interpolated as DuckDB's quantile_cont (the agent's other summaries). */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export class OperationStats {
  readonly #maxOperations: number;
  readonly #sampleSize: number;
  readonly #random: () => number;
  #ops = new Map<string, Op>();
  #spanErrors = 0;
  #logErrors = 0;
  #sawSpans = false;
  #sawLogs = false;

  constructor(options: OperationStatsOptions = {}) {
    this.#maxOperations = options.maxOperations ?? 200;
    this.#sampleSize = options.sampleSize ?? 1024;
    this.#random = options.random ?? Math.random;
  }

  /** `service`: the span's service.name; spans of another service than the agent's are named "<service>: <operation>". */
  span(agentService: string, service: string, operation: string, durationMs: number, error: boolean): void {
    this.#sawSpans = true;
    if (error) this.#spanErrors++;
    let name = service === agentService ? operation : `${service}: ${operation}`;
    // Past the cap, new operations go to "other" (which may be the one entry over it).
    if (!this.#ops.has(name) && this.#ops.size >= this.#maxOperations) name = OTHER_OPERATION;
    let op = this.#ops.get(name);
    if (!op) {
      op = { count: 0, sum: 0, min: Infinity, max: -Infinity, sample: [] };
      this.#ops.set(name, op);
    }
    op.count++;
    op.sum += durationMs;
    if (durationMs < op.min) op.min = durationMs;
    if (durationMs > op.max) op.max = durationMs;
    if (op.sample.length < this.#sampleSize) op.sample.push(durationMs);
    else {
      const j = Math.floor(this.#random() * op.count);
      if (j < this.#sampleSize) op.sample[j] = durationMs;
    }
  }

  log(severityNumber: number): void {
    this.#sawLogs = true;
    if (severityNumber >= 17) this.#logErrors++;
  }

  /** The interval's summaries, and a new interval. The error counts are sent every interval once data has come (0 included), so a baseline sees the quiet ones. */
  drain(): MetricSummary[] {
    const out: MetricSummary[] = [];
    for (const [name, op] of this.#ops) {
      const sorted = op.sample.sort((a, b) => a - b);
      out.push({ metricName: spanMetricName(name), count: op.count, mean: op.sum / op.count, min: op.min, max: op.max, p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), p99: quantile(sorted, 0.99) });
    }
    const counted = (metricName: string, n: number): MetricSummary => ({ metricName, count: 1, mean: n, min: n, max: n, p50: n, p95: n, p99: n });
    if (this.#sawSpans) out.push(counted(SPAN_ERRORS_METRIC, this.#spanErrors));
    if (this.#sawLogs) out.push(counted(LOG_ERRORS_METRIC, this.#logErrors));
    this.#ops = new Map();
    this.#spanErrors = 0;
    this.#logErrors = 0;
    return out;
  }
}
