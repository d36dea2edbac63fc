// Runs one rollback on the agent's side: the app's handler through the SDK,
// or the systemd / kubernetes commands the colony planned. Only systemctl
// and kubectl may be run. When a command fails, the undo commands the colony
// planned put back what ran before (kubernetes: to the revision recorded
// before the first command). A repeated rollback id (the colony restarted and
// asks again) joins the first run instead of running twice.
import { execFile } from "node:child_process";
import { ConnectError, Code } from "@connectrpc/connect";
import { RollbackStrategy, type ExecuteRollbackRequest, type ExecuteRollbackResponse } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import type { SdkLink } from "./sdk-link.ts";

const allowedTools = new Set(["systemctl", "kubectl"]);
const toolFor: Partial<Record<RollbackStrategy, string>> = { [RollbackStrategy.SYSTEMD]: "systemctl", [RollbackStrategy.KUBERNETES]: "kubectl" };

type Result = Omit<ExecuteRollbackResponse, "$typeName" | "$unknown">;

function run(argv: string[], timeoutMs: number): Promise<{ code: number | string; output: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim().slice(0, 2000);
      if (!err) resolve({ code: 0, output, stdout });
      else resolve({ code: (err as NodeJS.ErrnoException).code ?? (err as { status?: number }).status ?? 1, output: output || err.message, stdout });
    });
  });
}

export class RollbackExecutor {
  private readonly runs = new Map<string, Promise<Result>>();

  constructor(private readonly sdk: SdkLink) {}

  execute(req: ExecuteRollbackRequest): Promise<Result> {
    if (!req.rollbackId) throw new ConnectError("rollback_id is required", Code.InvalidArgument);
    let running = this.runs.get(req.rollbackId);
    if (!running) {
      running = this.start(req);
      this.runs.set(req.rollbackId, running);
      // Forget finished runs after a while; the colony keeps the history.
      void running.finally(() => setTimeout(() => this.runs.delete(req.rollbackId), 10 * 60_000).unref());
    }
    return running;
  }

  private async start(req: ExecuteRollbackRequest): Promise<Result> {
    const timeoutMs = Math.max(1, req.timeoutSeconds || 300) * 1000;
    if (req.strategy === RollbackStrategy.SDK) {
      try {
        const res = await this.sdk.executeRollback(req, timeoutMs);
        return { success: res.success, message: res.message, steps: res.steps, reverted: res.reverted, undoSteps: res.undoSteps, undoError: res.undoError };
      } catch (err) {
        return failure(ConnectError.from(err).rawMessage, []);
      }
    }
    const tool = toolFor[req.strategy];
    if (!tool) return failure(`the agent cannot run strategy ${RollbackStrategy[req.strategy] ?? req.strategy}`, []);
    const strategy = RollbackStrategy[req.strategy]!.toLowerCase();

    // The live revision, recorded before anything changes, is where an undo goes back to.
    let revision = "";
    const record = req.recordRevision?.argv ?? [];
    if (record.length > 0) {
      const recorded = await runSteps([record], tool, strategy, timeoutMs);
      revision = recorded.stdout.trim();
      if (recorded.error) return failure(`could not record the live revision, so nothing was changed: ${recorded.error}`, recorded.steps);
      if (!/^\d{1,10}$/.test(revision))
        return failure(`could not record the live revision, so nothing was changed: "${record.join(" ")}" printed "${revision.slice(0, 80)}", not a revision number`, recorded.steps);
    }

    const forward = await runSteps(req.commands.map((c) => c.argv), tool, strategy, timeoutMs);
    const steps = record.length > 0 ? [`${record.join(" ")} → revision ${revision}`, ...forward.steps] : forward.steps;
    if (!forward.error) return { success: true, message: `ran ${req.commands.length} ${tool} command(s)`, steps, reverted: false, undoSteps: [], undoError: "" };
    // Nothing ran (a refused command, no tool): nothing changed, so nothing to undo.
    if (req.undoCommands.length === 0 || forward.ran === 0) return failure(forward.error, steps);

    const undoArgv = req.undoCommands.map((c) => c.argv.map((a) => a.replaceAll("{revision}", revision)));
    if (undoArgv.some((argv) => argv.some((a) => a.includes("{revision}"))))
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
    if (argv.length === 0 || argv[0] !== tool || !allowedTools.has(argv[0])) {
      steps.push(`${line} → refused`);
      return { steps, error: `refusing to run "${line}": the ${tool} strategy runs only ${tool}`, stdout, ran: steps.length - 1 };
    }
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
