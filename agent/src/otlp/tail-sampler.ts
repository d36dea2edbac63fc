// Tail-based keep rules for spans, per trace: a trace is kept whole when one
// of its spans is an error or slower than the threshold, and otherwise when
// its id falls in the kept share (the id's first 32 bits against the share,
// so every agent keeps the same traces of a distributed trace). Spans wait
// `decisionWaitMs` after their trace's first span arrived, for the rest of
// the trace; spans arriving after the decision follow it (decisions are
// remembered for the last `rememberTraces` traces). Memory is bounded: past
// `maxBufferedSpans` the oldest traces are decided early.
//
// Across agents: the first error or slow span of a trace seen here is
// handed to `onKeep` at once (not after the wait), for the colony to tell the
// other agents; what they were told (`keepTold`) decides their waiting spans
// of the trace as kept now, and keeps spans of it arriving within `toldKeepMs`
// (the last `rememberTold` traces told).
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
  /** How long a keep told by another agent holds for spans not seen yet (default 30 s). */
  toldKeepMs?: number;
  /** Keeps told by other agents remembered at most (default 100,000; the oldest are forgotten first). */
  rememberTold?: number;
  /**
   * Called once per trace, as its first error or slow span arrives here, so
   * other agents can keep their spans of it. Not called for traces kept by
   * the share (every agent keeps those alike) or because another agent said so.
   */
  onKeep?: (traceId: string) => void;
}

export interface TailSamplerStats {
  received: number;
  kept: number;
  dropped: number;
  buffered: number;
  /** Traces decided before their wait was over because the buffer was full. */
  decidedEarly: number;
  /** Traces handed to onKeep (an error or slow span seen here). */
  reported: number;
  /** Trace ids other agents said to keep (keepTold). */
  told: number;
  /** Spans kept only because another agent said to keep their trace (counted in kept too). */
  keptForOthers: number;
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
  /** Decisions made: kept, dropped, or kept because another agent said so ("told"). */
  readonly #decided = new Map<string, boolean | "told">();
  /** Traces other agents keep that have no span here yet: until when their spans are kept. */
  readonly #told = new Map<string, number>();
  readonly #toldKeepMs: number;
  readonly #rememberTold: number;
  readonly #onKeep: ((traceId: string) => void) | undefined;
  #buffered = 0;
  readonly #stats = { received: 0, kept: 0, dropped: 0, decidedEarly: 0, reported: 0, told: 0, keptForOthers: 0 };

  constructor(options: TailSamplerOptions = {}) {
    this.slowMs = options.slowMs ?? 500;
    this.keepShare = options.keepShare ?? 0.1;
    if (!(this.keepShare >= 0 && this.keepShare <= 1)) throw new RangeError(`keepShare must be in [0, 1], got ${this.keepShare}`);
    if (!(this.slowMs >= 0)) throw new RangeError(`slowMs must be ≥ 0, got ${this.slowMs}`);
    this.decisionWaitMs = options.decisionWaitMs ?? 5000;
    this.#maxBuffered = options.maxBufferedSpans ?? 100_000;
    this.#remember = options.rememberTraces ?? 100_000;
    this.#toldKeepMs = options.toldKeepMs ?? 30_000;
    this.#rememberTold = options.rememberTold ?? 100_000;
    this.#onKeep = options.onKeep;
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
          if (decided === "told" && !this.#worth(s)) this.#stats.keptForOthers++;
        } else if (this.#worth(s)) {
          // A late error or slow span is kept (the rule is "every error span"), and so is the
          // rest of its trace from now on, here and at the agents told.
          out.push(s);
          this.#stats.kept++;
          this.#decided.set(s.traceId, true);
          this.#report(s.traceId);
        } else this.#stats.dropped++;
        continue;
      }
      if (this.#isTold(s.traceId, now)) {
        out.push(s);
        this.#stats.kept++;
        if (!this.#worth(s)) this.#stats.keptForOthers++;
        continue;
      }
      let p = this.#pending.get(s.traceId);
      if (!p) this.#pending.set(s.traceId, (p = { firstAt: now, spans: [], keep: false }));
      p.spans.push(s);
      this.#buffered++;
      if (!p.keep && this.#worth(s)) {
        p.keep = true;
        this.#report(s.traceId);
      }
    }
    // Over the bound: decide the oldest traces now (Map order is arrival order).
    for (const [traceId, p] of this.#pending) {
      if (this.#buffered <= this.#maxBuffered) break;
      this.#stats.decidedEarly++;
      out.push(...this.#decide(traceId, p));
    }
    return out;
  }

  /**
   * Other agents keep these traces (an error or slow span there): this
   * agent's waiting spans of them are kept now (returned, to store), and
   * spans arriving in the next `toldKeepMs` are kept as they come.
   */
  keepTold(traceIds: readonly string[], now: number): SpanRecord[] {
    const out: SpanRecord[] = [];
    this.#stats.told += traceIds.length;
    for (const traceId of traceIds) {
      const p = this.#pending.get(traceId);
      const decided = this.#decided.get(traceId);
      if (p) {
        const own = p.keep;
        p.keep = true;
        out.push(...this.#decide(traceId, p));
        if (!own) {
          this.#stats.keptForOthers += p.spans.length;
          this.#decided.set(traceId, "told");
        }
      } else if (decided === false) {
        // Dropped here already: what was dropped is gone, what comes from now on is kept.
        this.#decided.set(traceId, "told");
      } else if (decided === undefined) {
        this.#told.delete(traceId); // re-inserted last: the Map stays in expiry order
        this.#told.set(traceId, now + this.#toldKeepMs);
        if (this.#told.size > this.#rememberTold) this.#told.delete(this.#told.keys().next().value!);
      }
    }
    return out;
  }

  #isTold(traceId: string, now: number): boolean {
    const until = this.#told.get(traceId);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#told.delete(traceId);
    return false;
  }

  #report(traceId: string): void {
    if (!this.#onKeep) return;
    this.#stats.reported++;
    this.#onKeep(traceId);
  }

  /** Decides every trace whose wait is over (all of them with `all`); returns the spans kept. */
  flush(now: number, all = false): SpanRecord[] {
    const out: SpanRecord[] = [];
    // Forget told keeps that ran out (oldest first).
    for (const [traceId, until] of this.#told) {
      if (until > now) break;
      this.#told.delete(traceId);
    }
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
