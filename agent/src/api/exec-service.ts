// AgentExecService: runs `coral exec` commands for the colony (the guard has
// checked the colony's signature over this very request). Refused when this
// agent's configuration disables exec, or when the service has no process to
// enter and --host was not asked for.
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AgentExecService, ExecResponseSchema } from "@coral/proto/gen/coral/agent/v1/exec_pb";
import { checkExecRequest } from "@coral/common/exec-limits";
import { canEnterNamespaces, needsRootMessage, runExec } from "../exec/run.ts";

export interface AgentExecOptions {
  /** False: this agent refuses every exec (its config says exec: false). */
  enabled: boolean;
  /** The service's main process now, if it runs. */
  targetPid: () => number | undefined;
  /** Called when a command starts and ends (the agent's log). */
  onExec?: (what: { execId: string; argv: readonly string[]; host: boolean; exitCode?: number; durationMs?: number }) => void;
}

export function agentExecService(options: AgentExecOptions): ServiceImpl<typeof AgentExecService> {
  return {
    async *exec(req, ctx): AsyncGenerator<MessageInitShape<typeof ExecResponseSchema>> {
      if (!options.enabled) throw new ConnectError("coral exec is disabled on this agent (its configuration says exec: false)", Code.PermissionDenied);
      let bounds: ReturnType<typeof checkExecRequest>;
      try {
        bounds = checkExecRequest(req);
      } catch (err) {
        throw new ConnectError((err as Error).message, Code.InvalidArgument);
      }
      if (!req.host && !canEnterNamespaces()) throw new ConnectError(needsRootMessage, Code.FailedPrecondition);
      const targetPid = req.host ? undefined : options.targetPid();
      if (!req.host && targetPid === undefined)
        throw new ConnectError("the service has no running process to enter now; wait for it, or run on the agent's host with --host", Code.FailedPrecondition);
      options.onExec?.({ execId: req.execId, argv: req.argv, host: req.host });
      for await (const e of runExec({ argv: req.argv, targetPid, timeoutMs: bounds.timeoutMs, maxOutputBytes: bounds.maxOutputBytes, signal: ctx.signal })) {
        if (e.kind === "started") yield { event: { case: "started", value: { pid: e.pid, mode: e.mode, targetPid: e.targetPid } } };
        else if (e.kind === "exit") {
          options.onExec?.({ execId: req.execId, argv: req.argv, host: req.host, exitCode: e.exitCode, durationMs: e.durationMs });
          yield { event: { case: "exit", value: { exitCode: e.exitCode, signal: e.signal, timedOut: e.timedOut, outputTruncated: e.outputTruncated, durationMs: e.durationMs, outputBytes: BigInt(e.outputBytes) } } };
        } else yield { event: { case: e.kind, value: e.data } };
      }
    },
  };
}
