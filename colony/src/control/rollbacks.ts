// Rollback coordinator: one persistent rollbackMachine actor per rollback.
// It plans (strategy, target, commands, and the commands that undo them if
// one fails), drives the actor with what the
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
import { agentRollbackClient } from "./agent-client.ts";
import { rollbackMachine, terminalStates, type RollbackContext, type RollbackEvent } from "./rollback-machine.ts";
import { getRollback, listRollbacks, listSdkReports, previousVersion, saveRollback, type RollbackHistoryRow } from "./store.ts";

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
  plan: string[][];
  /** Put back what ran before if a command of plan fails; the last ones check it. Empty: no undo. */
  undo: string[][];
  /** kubernetes: records the live revision ("{revision}" in undo) before plan runs; else empty. */
  recordRevision: string[];
}

export interface RollbacksOptions {
  store: ColonyStore;
  agents: AgentActors;
  secret: string;
  config: ControlConfig;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
  /** How often verification looks at the service (default 250 ms). */
  verifyPollMs?: number;
}

const failed = (message: string) => new ConnectError(message, Code.FailedPrecondition);

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

  /** Works out strategy, target and commands; throws FailedPrecondition when it cannot. */
  async plan(service: string, requestedTarget: string, requested: RollbackStrategy): Promise<RollbackPlan> {
    const agents = (await this.options.store.listAgents()).filter((a) => a.serviceName === service);
    if (agents.length === 0) throw new ConnectError(`no component named ${service} is connected to this colony (see coral status)`, Code.NotFound);
    const reports = await this.options.store.read((c) => listSdkReports(c));
    const live = agents.filter((a) => connected.has(this.options.agents.get(a.agentId)?.state ?? ""));
    const current = live[0] ?? agents[0]!;
    const fromVersion = current.version;
    const hasHandler = agents.some((a) => reports.get(a.agentId)?.rollbackHandler);
    const cfg = this.options.config.services[service];

    let strategy: StrategyName;
    if (requested === RollbackStrategy.AUTO || requested === RollbackStrategy.UNSPECIFIED) {
      if (hasHandler) strategy = "sdk";
      else if (cfg?.systemd) strategy = "systemd";
      else if (cfg?.kubernetes) strategy = "kubernetes";
      else
        throw failed(
          `no rollback strategy for ${service}: the app registered no SDK rollback handler (coral.init onRollback) and control.services.${service} in .coral/config.yaml names no systemd unit or kubernetes deployment`,
        );
    } else {
      const name = strategyNames[requested];
      if (!name) throw new ConnectError(`strategy: unknown value ${requested}`, Code.InvalidArgument);
      strategy = name;
      if (strategy === "sdk" && !hasHandler) throw failed(`the sdk strategy needs the app's rollback handler: ${service} reports no Coral SDK with onRollback`);
      if (strategy === "systemd" && !cfg?.systemd) throw failed(`the systemd strategy needs control.services.${service}.systemd.unit in .coral/config.yaml`);
      if (strategy === "kubernetes" && !cfg?.kubernetes) throw failed(`the kubernetes strategy needs control.services.${service}.kubernetes.deployment in .coral/config.yaml`);
    }

    let targetVersion = requestedTarget;
    if (!targetVersion) targetVersion = (await this.options.store.read((c) => previousVersion(c, service, fromVersion))) ?? "";
    if (!targetVersion && strategy !== "kubernetes") throw failed(`no earlier version of ${service} is known (it has only reported ${fromVersion || "no version"}); pass --to VERSION`);
    if (targetVersion && targetVersion === fromVersion) throw failed(`${service} already runs ${fromVersion}`);
    if (targetVersion.length > 128 || /[\s/]/.test(targetVersion)) throw new ConnectError("target_version: at most 128 characters, no spaces or slashes", Code.InvalidArgument);

    return { service, fromVersion, targetVersion, strategy, ...this.commands(strategy, service, fromVersion, targetVersion) };
  }

  /**
   * The systemd or kubernetes commands, with their undo: back to the version
   * (systemd) or revision (kubernetes) that ran before, then a check that it
   * runs. Without a known current version systemd has nothing to go back to.
   */
  private commands(strategy: StrategyName, service: string, fromVersion: string, targetVersion: string): Pick<RollbackPlan, "plan" | "undo" | "recordRevision"> {
    const cfg = this.options.config.services[service];
    // Forward and undo each get part of the execute deadline, so an undo after a slow failure still fits.
    const waitS = `--timeout=${Math.max(1, Math.floor((this.options.config.rollback_timeout_ms * 0.45) / 1000))}s`;
    if (strategy === "systemd") {
      const unit = cfg!.systemd!.unit;
      if (unit.includes("{version}")) {
        const [from, to] = [unit.replaceAll("{version}", fromVersion), unit.replaceAll("{version}", targetVersion)];
        if (!fromVersion) return { plan: [["systemctl", "start", to]], undo: [], recordRevision: [] };
        return {
          plan: [["systemctl", "stop", from], ["systemctl", "start", to]],
          undo: [["systemctl", "stop", to], ["systemctl", "start", from], ["systemctl", "is-active", from]],
          recordRevision: [],
        };
      }
      const plan = [["systemctl", "set-environment", `CORAL_ROLLBACK_VERSION=${targetVersion}`], ["systemctl", "restart", unit]];
      if (!fromVersion) return { plan, undo: [], recordRevision: [] };
      return {
        plan,
        undo: [["systemctl", "set-environment", `CORAL_ROLLBACK_VERSION=${fromVersion}`], ["systemctl", "restart", unit], ["systemctl", "is-active", unit]],
        recordRevision: [],
      };
    }
    if (strategy === "kubernetes") {
      const k = cfg!.kubernetes!;
      const [deployment, namespace] = [`deployment/${k.deployment}`, `--namespace=${k.namespace}`];
      const revision = targetVersion ? k.revisions[targetVersion] : undefined;
      return {
        recordRevision: ["kubectl", "get", deployment, namespace, "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"],
        plan: [
          ["kubectl", "rollout", "undo", deployment, namespace, ...(revision ? [`--to-revision=${revision}`] : [])],
          ["kubectl", "rollout", "status", deployment, namespace, waitS],
        ],
        undo: [
          ["kubectl", "rollout", "undo", deployment, namespace, "--to-revision={revision}"],
          ["kubectl", "rollout", "status", deployment, namespace, waitS],
        ],
      };
    }
    return { plan: [], undo: [], recordRevision: [] };
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
        plan: p.plan.map((c) => c.join(" ")),
        undo_plan: p.undo.map((c) => c.join(" ")),
      },
    });
    this.resume(id);
    return id;
  }

  /** The rollback as the API shows it: the live actor, else the history row. */
  async get(id: string): Promise<Rollback | null> {
    const s = this.host.snapshot(id);
    if (s) return toRollback(s.context, stateName(s.value));
    const row = await this.options.store.read((c) => getRollback(c, id));
    return row ? historyToRollback(row) : null;
  }

  async list(service: string, limit: number): Promise<Rollback[]> {
    const rows = await this.options.store.read((c) => listRollbacks(c, service, limit));
    return rows.map((r) => {
      const s = this.host.snapshot(r.rollbackId);
      return s ? toRollback(s.context, stateName(s.value)) : historyToRollback(r);
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
          const res = await agentRollbackClient(agent.agentUrl, agent.agentId, this.options.secret).executeRollback(
            {
              rollbackId: id,
              service: ctx.service,
              targetVersion: ctx.targetVersion,
              currentVersion: ctx.fromVersion,
              strategy: strategyCodes[ctx.strategy],
              commands: ctx.plan.map((argv) => ({ argv })),
              undoCommands: (ctx.undo ?? []).map((argv) => ({ argv })),
              recordRevision: ctx.recordRevision?.length ? { argv: ctx.recordRevision } : undefined,
              timeoutSeconds: Math.max(1, Math.ceil(remaining / 1000)),
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
          this.options.log.warn({ rollback_id: id, err: ConnectError.from(err).rawMessage }, "Could not reach the agent for a rollback; retrying");
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
    plan: ctx.plan.map((c) => c.join(" ")),
    undoPlan: (ctx.undo ?? []).map((c) => c.join(" ")),
    recordRevision: (ctx.recordRevision ?? []).join(" "),
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
