// AgentShellService: `coral shell` terminals for the colony (every call signed
// by it over its own body). Refused when exec is disabled for the service.
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AgentShellService, OpenShellResponseSchema } from "@coral/proto/gen/coral/agent/v1/shell_pb";
import { checkShellRequest, checkTerminalSize, shellLimits } from "@coral/common/exec-limits";
import type { AgentExecOptions } from "./exec-service.ts";
import { ShellSessions } from "../exec/shell.ts";
import { canEnterNamespaces, needsRootMessage } from "../exec/run.ts";

const sessionIdPattern = /^[A-Za-z0-9_-]{1,64}$/;

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

export function agentShellService(options: AgentExecOptions, sessions = new ShellSessions()): ServiceImpl<typeof AgentShellService> {
  const noSession = (id: string) => new ConnectError(`no open shell session ${JSON.stringify(id.slice(0, 64))} on this agent (it ended, or was never opened here)`, Code.NotFound);
  return {
    async *openShell(req, ctx): AsyncGenerator<MessageInitShape<typeof OpenShellResponseSchema>> {
      if (!options.enabled) throw new ConnectError("coral shell is disabled on this agent (its configuration says exec: false)", Code.PermissionDenied);
      if (!sessionIdPattern.test(req.sessionId)) throw invalid("session_id: 1-64 letters, digits, _ or -");
      let bounds: ReturnType<typeof checkShellRequest>;
      try {
        bounds = checkShellRequest(req);
      } catch (err) {
        throw invalid((err as Error).message);
      }
      if (!req.host && !canEnterNamespaces()) throw new ConnectError(needsRootMessage, Code.FailedPrecondition);
      const targetPid = req.host ? undefined : options.targetPid();
      if (!req.host && targetPid === undefined)
        throw new ConnectError("the service has no running process to enter now; wait for it, or open the shell on the agent's host with --host", Code.FailedPrecondition);
      options.onExec?.({ execId: req.sessionId, argv: ["(shell)"], host: req.host });
      for await (const e of sessions.open({ sessionId: req.sessionId, targetPid, cols: bounds.cols, rows: bounds.rows, idleMs: bounds.idleMs, maxDurationMs: bounds.maxDurationMs, signal: ctx.signal })) {
        if (e.kind === "started") yield { event: { case: "started", value: { pid: e.pid, mode: e.mode, targetPid: e.targetPid, sessionId: req.sessionId } } };
        else if (e.kind === "data") yield { event: { case: "data", value: e.data } };
        else {
          options.onExec?.({ execId: req.sessionId, argv: ["(shell)"], host: req.host, exitCode: e.exitCode, durationMs: e.durationMs });
          yield { event: { case: "exit", value: { exitCode: e.exitCode, signal: e.signal, reason: e.reason, durationMs: e.durationMs } } };
        }
      }
    },
    async sendShellInput(req) {
      if (req.data.length > shellLimits.maxInputBytes) throw invalid(`data: at most ${shellLimits.maxInputBytes} bytes a call, got ${req.data.length}`);
      if (!sessions.write(req.sessionId, req.data)) throw noSession(req.sessionId);
      return {};
    },
    async resizeShell(req) {
      let size: ReturnType<typeof checkTerminalSize>;
      try {
        size = checkTerminalSize(req.cols, req.rows);
      } catch (err) {
        throw invalid((err as Error).message);
      }
      if (!sessions.resize(req.sessionId, size.cols, size.rows)) throw noSession(req.sessionId);
      return {};
    },
  };
}
