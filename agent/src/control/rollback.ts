// Runs one rollback on the agent's side: the app's handler through the SDK,
// or the systemd / kubernetes commands this agent plans from its own
// configuration (rollback-plan.ts); the colony sends only the intent. When a
// command fails, the undo puts back what ran before (kubernetes: to the
// revision recorded before the first command). A repeated rollback id (the
// colony restarted and asks again) joins the first run instead of running twice.
import { execFile } from "node:child_process";
import { ConnectError, Code } from "@connectrpc/connect";
import {
  RollbackStrategy,
  type ExecuteRollbackRequest,
  type ExecuteRollbackResponse,
  type PlanRollbackRequest,
  type PlanRollbackResponse,
} from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { rollbackConfigProblems, type AgentRollbackConfig } from "./rollback-config.ts";
import { defaultTimeoutSeconds, planRollback, revisionPlaceholder, strategyWord, type RollbackPlan } from "./rollback-plan.ts";
import type { SdkLink } from "./sdk-link.ts";

type Result = Omit<ExecuteRollbackResponse, "$typeName" | "$unknown">;
type PlanAnswer = Omit<PlanRollbackResponse, "$typeName" | "$unknown">;

const rollbackIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function run(argv: string[], timeoutMs: number): Promise<{ code: number | string; output: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim().slice(0, 2000);
      if (!err) resolve({ code: 0, output, stdout });
      else resolve({ code: (err as NodeJS.ErrnoException).code ?? (err as { status?: number }).status ?? 1, output: output || err.message, stdout });
    });
  });
}

export interface RollbackExecutorOptions {
  /** The component this agent observes: it refuses another's rollback. */
  serviceName: string;
  config?: AgentRollbackConfig;
  sdk: SdkLink;
  log?: { info(obj: object, msg?: string): void };
}

export class RollbackExecutor {
  private readonly runs = new Map<string, Promise<Result>>();
  private readonly config: AgentRollbackConfig;

  constructor(private readonly options: RollbackExecutorOptions) {
    this.config = options.config ?? {};
    const problems = rollbackConfigProblems(this.config);
    if (problems.length) throw new Error(problems.join("; "));
  }

  /** What execute would run for this intent; runs nothing. */
  plan(req: PlanRollbackRequest): PlanAnswer {
    const p = this.planFor(req);
    return {
      strategy: p.strategy,
      commands: p.commands.map((c) => c.join(" ")),
      undoCommands: p.undo.map((c) => c.join(" ")),
      recordRevision: p.recordRevision.join(" "),
    };
  }

  execute(req: ExecuteRollbackRequest): Promise<Result> {
    if (!rollbackIdPattern.test(req.rollbackId)) throw new ConnectError("rollback_id: 1-64 letters, digits and \"._-\" is required", Code.InvalidArgument);
    let running = this.runs.get(req.rollbackId);
    if (!running) {
      // Planning throws (bad intent, strategy not configured) before anything is kept or run.
      const plan = this.planFor(req);
      this.options.log?.info({ rollback_id: req.rollbackId, strategy: strategyWord[plan.strategy], target: req.targetVersion, reason: req.reason.slice(0, 200) }, "Rolling back");
      running = this.start(req, plan);
      this.runs.set(req.rollbackId, running);
      // Forget finished runs after a while; the colony keeps the history.
      void running.finally(() => setTimeout(() => this.runs.delete(req.rollbackId), 10 * 60_000).unref());
    }
    return running;
  }

  private planFor(req: PlanRollbackRequest | ExecuteRollbackRequest): RollbackPlan {
    return planRollback(req, {
      service: this.options.serviceName,
      config: this.config,
      hasSdkHandler: this.options.sdk.last()?.info.rollbackHandler === true,
    });
  }

  private async start(req: ExecuteRollbackRequest, plan: RollbackPlan): Promise<Result> {
    const timeoutMs = (req.timeoutSeconds || defaultTimeoutSeconds) * 1000;
    if (plan.strategy === RollbackStrategy.SDK) {
      try {
        const res = await this.options.sdk.executeRollback(req, timeoutMs);
        return { success: res.success, message: res.message, steps: res.steps, reverted: res.reverted, undoSteps: res.undoSteps, undoError: res.undoError };
      } catch (err) {
        return failure(ConnectError.from(err).rawMessage, []);
      }
    }
    const tool = plan.tool!;
    const strategy = strategyWord[plan.strategy];

    // The live revision, recorded before anything changes, is where an undo goes back to.
    let revision = "";
    const record = plan.recordRevision;
    if (record.length > 0) {
      const recorded = await runSteps([record], tool, strategy, timeoutMs);
      revision = recorded.stdout.trim();
      if (recorded.error) return failure(`could not record the live revision, so nothing was changed: ${recorded.error}`, recorded.steps);
      if (!/^\d{1,10}$/.test(revision))
        return failure(`could not record the live revision, so nothing was changed: "${record.join(" ")}" printed "${revision.slice(0, 80)}", not a revision number`, recorded.steps);
    }

    const forward = await runSteps(plan.commands, tool, strategy, timeoutMs);
    const steps = record.length > 0 ? [`${record.join(" ")} → revision ${revision}`, ...forward.steps] : forward.steps;
    if (!forward.error) return { success: true, message: `ran ${plan.commands.length} ${tool} command(s)`, steps, reverted: false, undoSteps: [], undoError: "" };
    // Nothing ran (no tool): nothing changed, so nothing to undo.
    if (plan.undo.length === 0 || forward.ran === 0) return failure(forward.error, steps);

    const undoArgv = plan.undo.map((argv) => argv.map((a) => a.replaceAll(revisionPlaceholder, revision)));
    if (undoArgv.some((argv) => argv.some((a) => a.includes(revisionPlaceholder))))
      return { ...failure(forward.error, steps), undoError: "the undo needs the live revision, and none was recorded before the first step" };
    const undo = await runSteps(undoArgv, tool, strategy, timeoutMs);
    return { success: false, message: forward.error, steps, reverted: !undo.error, undoSteps: undo.steps, undoError: undo.error };
  }
}

function failure(message: string, steps: string[]): Result {
  return { success: false, message, steps, reverted: false, undoSteps: [], undoError: "" };
}

/**
 * Runs commands in order until one fails. Each is one step line; a failing
 * command's line is the last. `ran` counts the commands that ran (the
 * failing one too, as it may have changed something); `stdout` is what the
 * last command printed there.
 */
async function runSteps(commands: string[][], tool: string, strategy: string, timeoutMs: number): Promise<{ steps: string[]; error: string; stdout: string; ran: number }> {
  const steps: string[] = [];
  let stdout = "";
  for (const argv of commands) {
    const line = argv.join(" ");
    // The plan builds only `tool` commands; this guards the planner, not the colony.
    if (argv[0] !== tool) throw new Error(`rollback plan error: "${line}" is not a ${tool} command`);
    const result = await run(argv, timeoutMs);
    if (result.code === "ENOENT") {
      steps.push(`${line} → not installed`);
      return { steps, error: `${tool} is not installed on the agent's machine (not on PATH); the ${strategy} strategy needs it`, stdout, ran: steps.length - 1 };
    }
    steps.push(`${line} → ${result.code === 0 ? "ok" : `exit ${result.code}`}`);
    stdout = result.stdout;
    if (result.code !== 0) return { steps, error: `${line} failed (exit ${result.code}): ${result.output}`, stdout, ran: steps.length };
  }
  return { steps, error: "", stdout, ran: steps.length };
}
