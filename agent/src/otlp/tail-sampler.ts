// Tail-based keep rules for spans, per trace: a trace is kept whole when one
// of its spans is an error or slower than the threshold, and otherwise when
// its id falls in the kept share (the id's first 32 bits against the share,
// so every agent keeps the same traces of a distributed trace). Spans wait
// `decisionWaitMs` after their trace's first span arrived, for the rest of
// the trace; spans arriving after the decision follow it (decisions are
// remembered for the last `rememberTraces` traces). Memory is bounded: past
// `maxBufferedSpans` the oldest traces are decided early.
import type { SpanRecord } from "./records.ts";

export interface TailSamplerOptions {
  /** Spans at least this slow keep their trace (default 500 ms). */
  slowMs?: number;
  /** Share of the other traces kept, 0–1 (default 0.1). */
  keepShare?: number;
  /** How long a trace's spans wait for the rest (default 5 s). */
  decisionWaitMs?: number;
  maxBufferedSpans?: number;
  rememberTraces?: number;
}

export interface TailSamplerStats {
  received: number;
  kept: number;
  dropped: number;
  buffered: number;
  /** Traces decided before their wait was over because the buffer was full. */
  decidedEarly: number;
}

interface Pending {
  firstAt: number;
  spans: SpanRecord[];
  keep: boolean;
}

export function inKeptShare(traceId: string, share: number): boolean {
  if (share >= 1) return true;
  if (share <= 0) return false;
  const head = Number.parseInt(traceId.slice(0, 8), 16);
  return Number.isFinite(head) && head / 0x1_0000_0000 < share;
}

export class TailSampler {
  readonly slowMs: number;
  readonly keepShare: number;
  readonly decisionWaitMs: number;
  readonly #maxBuffered: number;
  readonly #remember: number;
  readonly #pending = new Map<string, Pending>();
  readonly #decided = new Map<string, boolean>();
  #buffered = 0;
  readonly #stats = { received: 0, kept: 0, dropped: 0, decidedEarly: 0 };

  constructor(options: TailSamplerOptions = {}) {
    this.slowMs = options.slowMs ?? 500;
    this.keepShare = options.keepShare ?? 0.1;
    if (!(this.keepShare >= 0 && this.keepShare <= 1)) throw new RangeError(`keepShare must be in [0, 1], got ${this.keepShare}`);
    if (!(this.slowMs >= 0)) throw new RangeError(`slowMs must be ≥ 0, got ${this.slowMs}`);
    this.decisionWaitMs = options.decisionWaitMs ?? 5000;
    this.#maxBuffered = options.maxBufferedSpans ?? 100_000;
    this.#remember = options.rememberTraces ?? 100_000;
  }

  stats(): TailSamplerStats {
    return { ...this.#stats, buffered: this.#buffered };
  }

  #worth(s: SpanRecord): boolean {
    return s.error || s.durationMs >= this.slowMs;
  }

  /** Takes spans in; returns those of already-decided kept traces (to store now). */
  add(spans: readonly SpanRecord[], now: number): SpanRecord[] {
    const out: SpanRecord[] = [];
    this.#stats.received += spans.length;
    for (const s of spans) {
      const decided = this.#decided.get(s.traceId);
      if (decided !== undefined) {
        if (decided) {
          out.push(s);
          this.#stats.kept++;
        } else if (this.#worth(s)) {
          // A late error or slow span is kept on its own: the rule is "every error span".
          out.push(s);
          this.#stats.kept++;
        } else this.#stats.dropped++;
        continue;
      }
      let p = this.#pending.get(s.traceId);
      if (!p) this.#pending.set(s.traceId, (p = { firstAt: now, spans: [], keep: false }));
      p.spans.push(s);
      p.keep ||= this.#worth(s);
      this.#buffered++;
    }
    // Over the bound: decide the oldest traces now (Map order is arrival order).
    for (const [traceId, p] of this.#pending) {
      if (this.#buffered <= this.#maxBuffered) break;
      this.#stats.decidedEarly++;
      out.push(...this.#decide(traceId, p));
    }
    return out;
  }

  /** Decides every trace whose wait is over (all of them with `all`); returns the spans kept. */
  flush(now: number, all = false): SpanRecord[] {
    const out: SpanRecord[] = [];
    for (const [traceId, p] of this.#pending) {
      if (!all && now - p.firstAt < this.decisionWaitMs) break; // the rest arrived later
      out.push(...this.#decide(traceId, p));
    }
    return out;
  }

  #decide(traceId: string, p: Pending): SpanRecord[] {
    this.#pending.delete(traceId);
    this.#buffered -= p.spans.length;
    const keep = p.keep || inKeptShare(traceId, this.keepShare);
    this.#decided.set(traceId, keep);
    if (this.#decided.size > this.#remember) this.#decided.delete(this.#decided.keys().next().value!);
    if (keep) this.#stats.kept += p.spans.length;
    else this.#stats.dropped += p.spans.length;
    return keep ? p.spans : [];
  }
}
