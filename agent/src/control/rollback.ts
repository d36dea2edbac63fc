// Runs one rollback on the agent's side: the app's handler through the SDK,
// or the systemd / kubernetes commands the colony planned. Only systemctl
// and kubectl may be run. A repeated rollback id (the colony restarted and
// asks again) joins the first run instead of running twice.
import { execFile } from "node:child_process";
import { ConnectError, Code } from "@connectrpc/connect";
import { RollbackStrategy, type ExecuteRollbackRequest, type ExecuteRollbackResponse } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import type { SdkLink } from "./sdk-link.ts";

const allowedTools = new Set(["systemctl", "kubectl"]);
const toolFor: Partial<Record<RollbackStrategy, string>> = { [RollbackStrategy.SYSTEMD]: "systemctl", [RollbackStrategy.KUBERNETES]: "kubectl" };

type Result = Omit<ExecuteRollbackResponse, "$typeName" | "$unknown">;

function run(argv: string[], timeoutMs: number): Promise<{ code: number | string; output: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim().slice(0, 2000);
      if (!err) resolve({ code: 0, output });
      else resolve({ code: (err as NodeJS.ErrnoException).code ?? (err as { status?: number }).status ?? 1, output: output || err.message });
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
        return { success: res.success, message: res.message, steps: res.steps };
      } catch (err) {
        return { success: false, message: ConnectError.from(err).rawMessage, steps: [] };
      }
    }
    const tool = toolFor[req.strategy];
    if (!tool) return { success: false, message: `the agent cannot run strategy ${RollbackStrategy[req.strategy] ?? req.strategy}`, steps: [] };
    const steps: string[] = [];
    for (const command of req.commands) {
      const argv = command.argv;
      if (argv.length === 0 || argv[0] !== tool || !allowedTools.has(argv[0]))
        return { success: false, message: `refusing to run "${argv.join(" ")}": the ${tool} strategy runs only ${tool}`, steps };
      const result = await run(argv, timeoutMs);
      if (result.code === "ENOENT")
        return { success: false, message: `${tool} is not installed on the agent's machine (not on PATH); the ${RollbackStrategy[req.strategy]!.toLowerCase()} strategy needs it`, steps };
      steps.push(`${argv.join(" ")} → ${result.code === 0 ? "ok" : `exit ${result.code}`}`);
      if (result.code !== 0) return { success: false, message: `${argv.join(" ")} failed (exit ${result.code}): ${result.output}`, steps };
    }
    return { success: true, message: `ran ${req.commands.length} ${tool} command(s)`, steps };
  }
}
