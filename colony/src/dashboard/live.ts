// Live updates for the dashboard, pushed as server-sent events. One loop per
// colony, running only while a browser listens, looks at what the colony
// has stored every second and tells every listener what changed:
//   event `status`:  the GetStatus answer (as `coral status` gets it), JSON
//   event `changed`: {"topics": ["events" | "insights" | "topology" | "debug" | "control"]}, so a
//                    view showing those asks for them again. A new listener
//                    gets every topic once the loop has its baseline: what was
//                    stored before (or while it was away) is fetched again.
// A view thus shows new data within about a second of the colony storing it.

export type Topic = "events" | "insights" | "topology" | "debug" | "control";
const allTopics = JSON.stringify({ topics: ["events", "insights", "topology", "debug", "control"] satisfies Topic[] });

export interface LiveSources {
  /** The status as protobuf JSON, and the part of it that counts as a change (no uptimes). */
  status(): Promise<{ json: string; fingerprint: string }>;
  /** A cheap fingerprint of each topic: a new value means new data. */
  fingerprints(): Promise<Record<Topic, string>>;
}

export type Listener = (event: "status" | "changed", data: string) => void;

export interface LiveFeedOptions {
  intervalMs?: number;
  /** Status is sent again at least this often even unchanged (uptimes move). */
  refreshMs?: number;
  onError?(err: unknown): void;
}

export class LiveFeed {
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | undefined;
  private lastStatus: { json: string; fingerprint: string; at: number } | undefined;
  private lastPrints: Record<Topic, string> | undefined;
  private running = false;
  private closed = false;
  private readonly intervalMs: number;
  private readonly refreshMs: number;

  constructor(
    private readonly sources: LiveSources,
    private readonly options: LiveFeedOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.refreshMs = options.refreshMs ?? 15_000;
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Starts sending to `listener` (the current status first); returns how to stop. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.lastStatus && this.lastPrints && this.running) {
      listener("status", this.lastStatus.json);
      listener("changed", allTopics);
    } else this.schedule(0);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  close(): void {
    this.closed = true;
    this.listeners.clear();
    this.stop();
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.running = false;
    this.lastStatus = undefined;
    this.lastPrints = undefined;
  }

  private schedule(ms: number): void {
    if (this.closed || this.timer) return;
    this.running = true;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick()
        .catch((err: unknown) => this.options.onError?.(err))
        .finally(() => {
          if (this.listeners.size > 0) this.schedule(this.intervalMs);
          else this.stop();
        });
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const [status, prints] = await Promise.all([this.sources.status(), this.sources.fingerprints()]);
    const now = Date.now();
    const last = this.lastStatus;
    if (!last || last.fingerprint !== status.fingerprint || now - last.at >= this.refreshMs) {
      this.lastStatus = { ...status, at: now };
      this.send("status", status.json);
    }
    if (this.lastPrints) {
      const topics = (Object.keys(prints) as Topic[]).filter((t) => prints[t] !== this.lastPrints![t]);
      if (topics.length) this.send("changed", JSON.stringify({ topics }));
    } else this.send("changed", allTopics); // the baseline: every listener so far is new
    this.lastPrints = prints;
  }

  private send(event: "status" | "changed", data: string): void {
    for (const listener of this.listeners) {
      try {
        listener(event, data);
      } catch (err) {
        this.options.onError?.(err);
      }
    }
  }
}
