// Hosts persistent XState actors of one kind: every transition is saved
// (snapshot with a version number, plus a transitions row when the state
// changes) before the caller hears back; on start every actor is restored from
// its last snapshot, and deadlines stored in context are re-armed as timers.
import { createActor, type Actor, type AnyStateMachine, type EventFromLogic, type InputFrom, type SnapshotFrom } from "xstate";
import type { ActorSnapshotRow, TransitionRow } from "./types.ts";

export interface ActorPersistence {
  saveActorSnapshot(row: ActorSnapshotRow, transition?: TransitionRow): Promise<void>;
  loadActorSnapshots(kind?: string): Promise<ActorSnapshotRow[]>;
}

export interface ActorHostOptions<M extends AnyStateMachine> {
  kind: string;
  machine: M;
  persistence: ActorPersistence;
  /** The absolute time (ms) of the next deadline in this snapshot, or null. */
  deadlineOf: (snapshot: SnapshotFrom<M>) => number | null;
  /** The event to send when a deadline passes. */
  deadlineEvent: (atMs: number) => EventFromLogic<M>;
  /** Why the last transition happened (recorded with it). */
  reasonOf?: (snapshot: SnapshotFrom<M>) => string;
  onTransition?: (actorId: string, from: string, to: string, snapshot: SnapshotFrom<M>) => void;
  onError?: (actorId: string, err: unknown) => void;
  now?: () => number;
}

interface Hosted<M extends AnyStateMachine> {
  actor: Actor<M>;
  version: number;
  queue: Promise<unknown>;
  timer: NodeJS.Timeout | null;
}

export function stateName(value: unknown): string {
  if (typeof value === "string") return value;
  if (value && typeof value === "object") {
    const [key, inner] = Object.entries(value)[0] ?? ["", ""];
    return inner ? `${key}.${stateName(inner)}` : key;
  }
  return String(value);
}

function valueOf(snapshot: unknown): unknown {
  return (snapshot as { value: unknown }).value;
}

export class ActorHost<M extends AnyStateMachine> {
  private readonly actors = new Map<string, Hosted<M>>();
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly options: ActorHostOptions<M>) {
    this.now = options.now ?? Date.now;
  }

  /** Restores every persisted actor of this kind and re-arms its deadline. */
  async restore(): Promise<number> {
    const rows = await this.options.persistence.loadActorSnapshots(this.options.kind);
    for (const row of rows) {
      // XState's generic option types do not narrow for an abstract machine.
      const actor = createActor(this.options.machine, { snapshot: JSON.parse(row.snapshot) } as never) as Actor<M>;
      actor.start();
      const hosted: Hosted<M> = { actor, version: row.version, queue: Promise.resolve(), timer: null };
      this.actors.set(row.actorId, hosted);
      this.arm(row.actorId, hosted);
    }
    return rows.length;
  }

  has(actorId: string): boolean {
    return this.actors.has(actorId);
  }

  snapshot(actorId: string): SnapshotFrom<M> | undefined {
    return this.actors.get(actorId)?.actor.getSnapshot() as SnapshotFrom<M> | undefined;
  }

  ids(): string[] {
    return [...this.actors.keys()];
  }

  /**
   * Sends an event, creating the actor from `input` if it does not exist, and
   * resolves once the resulting snapshot is persisted.
   */
  send(actorId: string, event: EventFromLogic<M>, input?: InputFrom<M>): Promise<SnapshotFrom<M>> {
    if (this.stopped) return Promise.reject(new Error(`actor host for ${this.options.kind} is stopped`));
    let hosted = this.actors.get(actorId);
    if (!hosted) {
      if (input === undefined) return Promise.reject(new Error(`no ${this.options.kind} actor ${actorId}`));
      const actor = createActor(this.options.machine, { input } as never) as Actor<M>;
      actor.start();
      hosted = { actor, version: 0, queue: Promise.resolve(), timer: null };
      this.actors.set(actorId, hosted);
      const created = hosted;
      created.queue = this.persist(actorId, created, "", "created");
    }
    const target = hosted;
    const result = target.queue.then(async () => {
      const before = target.actor.getSnapshot() as SnapshotFrom<M>;
      const from = stateName(valueOf(before));
      target.actor.send(event);
      const after = target.actor.getSnapshot() as SnapshotFrom<M>;
      if (after !== before) await this.persist(actorId, target, from, event.type);
      this.arm(actorId, target);
      return after;
    });
    target.queue = result.catch(() => undefined);
    return result;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const hosted of this.actors.values()) {
      if (hosted.timer) clearTimeout(hosted.timer);
      await hosted.queue;
      hosted.actor.stop();
    }
  }

  private async persist(actorId: string, hosted: Hosted<M>, from: string, eventType: string): Promise<void> {
    const snapshot = hosted.actor.getSnapshot() as SnapshotFrom<M>;
    const to = stateName(valueOf(snapshot));
    const at = new Date(this.now());
    const version = hosted.version + 1;
    const row: ActorSnapshotRow = {
      actorId,
      kind: this.options.kind,
      version,
      state: to,
      snapshot: JSON.stringify(hosted.actor.getPersistedSnapshot()),
      updatedAt: at,
    };
    const transition: TransitionRow | undefined =
      from !== to
        ? { actorId, kind: this.options.kind, at, fromState: from, toState: to, event: eventType, reason: this.options.reasonOf?.(snapshot) ?? "", version }
        : undefined;
    await this.options.persistence.saveActorSnapshot(row, transition);
    hosted.version = version;
    if (transition) this.options.onTransition?.(actorId, from, to, snapshot);
  }

  private arm(actorId: string, hosted: Hosted<M>): void {
    if (hosted.timer) clearTimeout(hosted.timer);
    hosted.timer = null;
    if (this.stopped) return;
    const deadline = this.options.deadlineOf(hosted.actor.getSnapshot() as SnapshotFrom<M>);
    if (deadline === null) return;
    // setTimeout caps at ~24.8 days; re-arming on fire covers longer deadlines.
    const delay = Math.min(Math.max(0, deadline - this.now()), 2 ** 31 - 1);
    hosted.timer = setTimeout(() => {
      hosted.timer = null;
      this.send(actorId, this.options.deadlineEvent(this.now())).catch((err: unknown) => this.options.onError?.(actorId, err));
    }, delay);
    hosted.timer.unref();
  }
}
