// Rollback coordinator: one persistent rollbackMachine actor per rollback.
// It works out the target, asks the service's agent for its plan (the agent
// picks the strategy and builds the commands from its own configuration; the
// colony only ever sends the intent), drives the actor with what the
// agent and the service's heartbeats report, mirrors every change into
// rollback_history and the audit log, and resumes after a colony restart:
// an executing rollback asks its agent again (the agent and SDK join the
// first run by rollback id), a verifying one goes back to watching.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { backoffMs, sleep } from "@coral/common/async";
import { RollbackSchema, type Rollback } from "@coral/proto/gen/coral/control/v1/control_pb";
import { RollbackStrategy } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { ActorHost, stateName } from "../store/actor-host.ts";
import { appendAudit } from "../store/audit.ts";
import { transaction } from "../store/sql.ts";
import type { AgentActors } from "../agents/actors.ts";
import type { ControlConfig } from "../config/control-schema.ts";
import type { ColonyStore } from "../store/index.ts";
import type { AgentRow } from "../store/types.ts";
import { agentRollbackClient, agentRollbackPlanClient } from "./agent-client.ts";
import { commandLine, commandLines, rollbackMachine, terminalStates, type RollbackContext, type RollbackEvent } from "./rollback-machine.ts";
import { getRollback, listRollbacks, listSdkReports, previousVersion, saveRollback, type RollbackHistoryRow } from "./store.ts";
import type { IdentityKey } from "@coral/proto";

type StrategyName = RollbackContext["strategy"];
const strategyNames: Partial<Record<RollbackStrategy, StrategyName>> = {
  [RollbackStrategy.SDK]: "sdk",
  [RollbackStrategy.SYSTEMD]: "systemd",
  [RollbackStrategy.KUBERNETES]: "kubernetes",
};
const strategyCodes: Record<StrategyName, RollbackStrategy> = {
  sdk: RollbackStrategy.SDK,
  systemd: RollbackStrategy.SYSTEMD,
  kubernetes: RollbackStrategy.KUBERNETES,
};
const connected = new Set(["online", "degraded"]);

export interface RollbackPlan {
  service: string;
  fromVersion: string;
  targetVersion: string;
  strategy: StrategyName;
  /** kubernetes: the deployment revision of targetVersion (control.services.<service>.kubernetes.revisions), or "". */
  targetRevision: string;
  /** What the agent said it would run (display only: the agent plans and runs its own commands). */
  plan: string[];
  /** What the agent would run to put back what ran before if a command fails; "{revision}" is the one it records first. */
  undo: string[];
  /** kubernetes: what records the live revision before the first command; else empty. */
  recordRevision: string;
}

export interface RollbacksOptions {
  store: ColonyStore;
  agents: AgentActors;
  /** Signs every call to an agent. */
  identity: IdentityKey;
  config: ControlConfig;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
  /** How often verification looks at the service (default 250 ms). */
  verifyPollMs?: number;
}

const failed = (message: string) => new ConnectError(message, Code.FailedPrecondition);
// An agent's answer that asking again will not change: the rollback fails with it.
const final = new Set([Code.InvalidArgument, Code.FailedPrecondition, Code.PermissionDenied, Code.Unauthenticated, Code.Unimplemented, Code.NotFound]);

export class Rollbacks {
  readonly host: ActorHost<typeof rollbackMachine>;
  private readonly changes = new EventEmitter();
  private readonly running = new Set<string>();
  private stopped = false;

  constructor(private readonly options: RollbacksOptions) {
    this.changes.setMaxListeners(0);
    this.host = new ActorHost({
      kind: "rollback",
      machine: rollbackMachine,
      persistence: options.store,
      deadlineOf: (s) => (terminalStates.has(stateName(s.value)) ? null : s.context.deadlineMs),
      deadlineEvent: (atMs) => ({ type: "deadline", atMs }),
      reasonOf: (s) => s.context.reason,
      onTransition: (id, from, to, s) => {
        options.log.info({ rollback_id: id, from, to, reason: s.context.reason }, "Rollback state changed");
        void this.mirror(id, to, s.context);
      },
      onError: (id, err) => options.log.warn({ rollback_id: id, err: String(err) }, "rollback actor error"),
    });
  }

  async restore(): Promise<number> {
    const n = await this.host.restore();
    for (const id of this.host.ids()) this.resume(id);
    return n;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.host.stop();
  }

  /**
   * Works out the target and asks the service's agent how it would roll back
   * (its own configuration decides the strategy and commands). Throws
   * FailedPrecondition when it cannot, with the agent's reason.
   */
  async plan(service: string, requestedTarget: string, requested: RollbackStrategy): Promise<RollbackPlan> {
    if (!(requested in RollbackStrategy)) throw new ConnectError(`strategy: unknown value ${requested}`, Code.InvalidArgument);
    const agents = (await this.options.store.listAgents()).filter((a) => a.serviceName === service);
    if (agents.length === 0) throw new ConnectError(`no component named ${service} is connected to this colony (see coral status)`, Code.NotFound);
    const agent = await this.agentFor(service);
    if (!agent) throw failed(`no agent of ${service} is connected (see coral status); its agent plans the rollback from its own configuration`);
    const fromVersion = agent.version;

    let targetVersion = requestedTarget;
    if (!targetVersion) targetVersion = (await this.options.store.read((c) => previousVersion(c, service, fromVersion))) ?? "";
    if (targetVersion && targetVersion === fromVersion) throw failed(`${service} already runs ${fromVersion}`);
    if (targetVersion.length > 128 || /[\s/]/.test(targetVersion)) throw new ConnectError("target_version: at most 128 characters, no spaces or slashes", Code.InvalidArgument);
    const revision = targetVersion ? this.options.config.services[service]?.kubernetes?.revisions[targetVersion] : undefined;
    const targetRevision = revision ? String(revision) : "";

    let answer;
    try {
      answer = await agentRollbackPlanClient(agent.agentUrl, agent.agentId, this.options.identity).planRollback(
        { service, targetVersion, currentVersion: fromVersion, strategy: requested, targetRevision, timeoutSeconds: Math.ceil(this.options.config.rollback_timeout_ms / 1000) },
        { timeoutMs: 10_000 },
      );
    } catch (err) {
      const ce = ConnectError.from(err);
      if (final.has(ce.code)) throw new ConnectError(ce.rawMessage, ce.code);
      throw new ConnectError(`could not ask ${service}'s agent ${agent.agentId} for its rollback plan: ${ce.rawMessage}`, Code.Unavailable);
    }
    const strategy = strategyNames[answer.strategy];
    if (!strategy) throw new ConnectError(`agent ${agent.agentId} answered an unknown strategy ${answer.strategy}`, Code.Internal);
    if (!targetVersion && strategy !== "kubernetes") throw failed(`no earlier version of ${service} is known (it has only reported ${fromVersion || "no version"}); pass --to VERSION`);
    return { service, fromVersion, targetVersion, strategy, targetRevision, plan: answer.commands, undo: answer.undoCommands, recordRevision: answer.recordRevision };
  }

  async start(p: RollbackPlan, initiatedBy: string): Promise<string> {
    const id = `rb-${randomBytes(6).toString("hex")}`;
    const now = Date.now();
    await this.host.send(
      id,
      { type: "execute", atMs: now },
      {
        rollbackId: id,
        service: p.service,
        fromVersion: p.fromVersion,
        targetVersion: p.targetVersion,
        strategy: p.strategy,
        plan: p.plan,
        undo: p.undo,
        recordRevision: p.recordRevision,
        targetRevision: p.targetRevision,
        initiatedBy,
        startedAtMs: now,
        executeTimeoutMs: this.options.config.rollback_timeout_ms,
        verifyTimeoutMs: this.options.config.verify_timeout_ms,
      },
    );
    await this.options.store.appendAudit({
      at: new Date(now),
      actor: initiatedBy,
      action: "rollback.start",
      target: p.service,
      details: {
        rollback_id: id,
        from: p.fromVersion,
        to: p.targetVersion,
        strategy: p.strategy,
        plan: p.plan,
        undo_plan: p.undo,
      },
    });
    this.resume(id);
    return id;
  }

  /**
   * The rollback as the API shows it: the live actor while it runs, the
   * history row once it ended (written with its audit row, so whoever sees
   * it ended also finds who started it and how it ended).
   */
  async get(id: string): Promise<Rollback | null> {
    const s = this.host.snapshot(id);
    if (s && !terminalStates.has(stateName(s.value))) return toRollback(s.context, stateName(s.value));
    const row = await this.options.store.read((c) => getRollback(c, id));
    return row ? historyToRollback(row) : s ? toRollback(s.context, stateName(s.value)) : null;
  }

  async list(service: string, limit: number): Promise<Rollback[]> {
    const rows = await this.options.store.read((c) => listRollbacks(c, service, limit));
    return rows.map((r) => {
      const s = this.host.snapshot(r.rollbackId);
      return s && !terminalStates.has(stateName(s.value)) ? toRollback(s.context, stateName(s.value)) : historyToRollback(r);
    });
  }

  /** Yields the rollback now and after each change, until it ends or `signal` aborts. */
  async *watch(id: string, signal: AbortSignal): AsyncGenerator<Rollback> {
    let last = "";
    while (!signal.aborted) {
      const changed = new Promise<void>((resolve) => {
        const done = () => {
          this.changes.off(id, done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.changes.on(id, done);
        signal.addEventListener("abort", done);
        // A slow consumer never misses the end: look again now and then.
        setTimeout(done, 1000).unref();
      });
      const r = await this.get(id);
      if (!r) return;
      const key = JSON.stringify([r.state, r.steps.length, r.steps.at(-1)?.outcome, r.error]);
      if (key !== last) {
        last = key;
        yield r;
      }
      if (terminalStates.has(r.state)) return;
      await changed;
    }
  }

  private async send(id: string, event: RollbackEvent): Promise<string> {
    const s = await this.host.send(id, event);
    this.changes.emit(id);
    return stateName(s.value);
  }

  private resume(id: string): void {
    if (this.running.has(id) || this.stopped) return;
    const state = stateName(this.host.snapshot(id)?.value);
    if (terminalStates.has(state)) return;
    this.running.add(id);
    void this.drive(id)
      .catch((err: unknown) => this.options.log.warn({ rollback_id: id, err: String(err) }, "rollback driver failed"))
      .finally(() => this.running.delete(id));
  }

  /** Moves the actor along until it ends (its deadlines end it if nothing else does). */
  private async drive(id: string): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const s = this.host.snapshot(id);
      if (!s) return;
      const state = stateName(s.value);
      if (state === "pending") await this.send(id, { type: "execute", atMs: Date.now() });
      else if (state === "executing") await this.execute(id, s.context);
      else if (state === "verifying") await this.verify(id, s.context);
      else return;
    }
  }

  private async execute(id: string, ctx: RollbackContext): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.stopped || stateName(this.host.snapshot(id)?.value) !== "executing") return;
      const agent = await this.agentFor(ctx.service);
      const remaining = (ctx.deadlineMs ?? Date.now() + 60_000) - Date.now();
      if (agent) {
        try {
          // The intent only: the agent builds the commands from its own configuration.
          const res = await agentRollbackClient(agent.agentUrl, agent.agentId, this.options.identity).executeRollback(
            {
              rollbackId: id,
              service: ctx.service,
              targetVersion: ctx.targetVersion,
              currentVersion: ctx.fromVersion,
              strategy: strategyCodes[ctx.strategy],
              targetRevision: ctx.targetRevision ?? "",
              reason: `started by ${ctx.initiatedBy}`,
              // The whole budget, as planned: the agent sizes its waits from it (the colony's deadline still ends it).
              timeoutSeconds: Math.max(1, Math.ceil(ctx.executeTimeoutMs / 1000)),
            },
            { timeoutMs: Math.max(1000, remaining) },
          );
          if (res.success) await this.send(id, { type: "executed", atMs: Date.now(), message: res.message, steps: res.steps });
          else
            await this.send(id, {
              type: "executionFailed",
              atMs: Date.now(),
              error: res.message || "the strategy failed",
              reverted: res.reverted,
              steps: res.steps,
              undoSteps: res.undoSteps,
              undoError: res.undoError,
            });
          return;
        } catch (err) {
          const ce = ConnectError.from(err);
          if (final.has(ce.code)) {
            await this.send(id, { type: "executionFailed", atMs: Date.now(), error: `agent ${agent.agentId} refused the rollback: ${ce.rawMessage}`, reverted: false });
            return;
          }
          this.options.log.warn({ rollback_id: id, err: ce.rawMessage }, "Could not reach the agent for a rollback; retrying");
        }
      }
      // No agent (yet): it may be reconnecting. The deadline ends the wait. 0.5 s doubling up to 5 s.
      await sleep(backoffMs(attempt, 500, 5000, { jitter: "none" }));
    }
  }

  private async verify(id: string, ctx: RollbackContext): Promise<void> {
    let lastObservation = "";
    while (!this.stopped && stateName(this.host.snapshot(id)?.value) === "verifying") {
      const { ok, observation } = await this.observe(ctx);
      if (ok) {
        await this.send(id, { type: "verified", atMs: Date.now(), observation });
        return;
      }
      if (observation !== lastObservation) {
        lastObservation = observation;
        await this.send(id, { type: "observed", atMs: Date.now(), observation });
      }
      await sleep(this.options.verifyPollMs ?? 250);
    }
  }

  /** Does a connected agent of the service report the target version and healthy? */
  private async observe(ctx: RollbackContext): Promise<{ ok: boolean; observation: string }> {
    const agents = (await this.options.store.listAgents()).filter((a) => a.serviceName === ctx.service && connected.has(this.options.agents.get(a.agentId)?.state ?? ""));
    if (agents.length === 0) return { ok: false, observation: `no agent of ${ctx.service} is connected` };
    const reports = await this.options.store.read((c) => listSdkReports(c));
    const views = agents.map((a) => {
      const sdk = reports.get(a.agentId);
      const health = sdk ? (sdk.overallHealth === "healthy" && a.health !== "unhealthy" ? "healthy" : sdk.overallHealth) : a.health;
      return { version: sdk?.version || a.version, health };
    });
    const good = views.find((v) => (!ctx.targetVersion || v.version === ctx.targetVersion) && v.health === "healthy");
    const shown = good ?? views[0]!;
    return { ok: Boolean(good), observation: `${ctx.service} reports version ${shown.version || "(none)"}, ${shown.health}` };
  }

  private async agentFor(service: string): Promise<AgentRow | undefined> {
    const agents = await this.options.store.listAgents();
    return agents.find((a) => a.serviceName === service && a.agentUrl && connected.has(this.options.agents.get(a.agentId)?.state ?? ""));
  }

  private async mirror(id: string, state: string, ctx: RollbackContext): Promise<void> {
    try {
      const r = toRollback(ctx, state);
      // One transaction: whoever sees the rollback ended also finds its audit row.
      await this.options.store.write((c) =>
        transaction(c, async () => {
          await saveRollback(c, rollbackToHistory(r, ctx));
          if (terminalStates.has(state))
            await appendAudit(c, {
              at: new Date(ctx.completedAtMs ?? Date.now()),
              actor: "colony",
              action: `rollback.${state}`,
              target: ctx.service,
              details: { rollback_id: id, initiated_by: ctx.initiatedBy, to: ctx.targetVersion, error: ctx.error },
            });
        }),
      );
    } catch (err) {
      this.options.log.warn({ rollback_id: id, err: String(err) }, "could not record rollback history");
    }
    this.changes.emit(id);
  }
}

function toRollback(ctx: RollbackContext, state: string): Rollback {
  return create(RollbackSchema, {
    rollbackId: ctx.rollbackId,
    service: ctx.service,
    state,
    fromVersion: ctx.fromVersion,
    targetVersion: ctx.targetVersion,
    strategy: ctx.strategy,
    initiatedBy: ctx.initiatedBy,
    startedAt: timestampFromDate(new Date(ctx.startedAtMs)),
    completedAt: ctx.completedAtMs ? timestampFromDate(new Date(ctx.completedAtMs)) : undefined,
    error: ctx.error,
    steps: ctx.steps.map((s) => ({ at: timestampFromDate(new Date(s.atMs)), description: s.description, outcome: s.outcome })),
    plan: commandLines(ctx.plan),
    undoPlan: commandLines(ctx.undo),
    recordRevision: commandLine(ctx.recordRevision),
  });
}

function rollbackToHistory(r: Rollback, ctx: RollbackContext): RollbackHistoryRow {
  return {
    rollbackId: r.rollbackId,
    service: r.service,
    fromVersion: r.fromVersion,
    toVersion: r.targetVersion,
    strategy: r.strategy,
    initiatedBy: r.initiatedBy,
    state: r.state,
    success: r.state === "completed" ? true : terminalStates.has(r.state) ? false : null,
    startedAt: new Date(ctx.startedAtMs),
    completedAt: ctx.completedAtMs ? new Date(ctx.completedAtMs) : null,
    error: r.error,
    steps: ctx.steps.map((s) => ({ at: new Date(s.atMs).toISOString(), description: s.description, outcome: s.outcome })),
    plan: r.plan,
    undoPlan: r.undoPlan,
    recordRevision: r.recordRevision,
  };
}

function historyToRollback(row: RollbackHistoryRow): Rollback {
  return create(RollbackSchema, {
    rollbackId: row.rollbackId,
    service: row.service,
    state: row.state,
    fromVersion: row.fromVersion,
    targetVersion: row.toVersion,
    strategy: row.strategy,
    initiatedBy: row.initiatedBy,
    startedAt: timestampFromDate(row.startedAt),
    completedAt: row.completedAt ? timestampFromDate(row.completedAt) : undefined,
    error: row.error,
    steps: row.steps.map((s) => ({ at: timestampFromDate(new Date(s.at)), description: s.description, outcome: s.outcome })),
    plan: row.plan,
    undoPlan: row.undoPlan,
    recordRevision: row.recordRevision,
  });
}
