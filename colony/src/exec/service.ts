// ExecService: `coral exec <service> -- <command>`. The colony checks the
// request, records the exec (who, when, which service, the command line)
// before the agent hears of it, forwards it to the service's live agent
// (signed with the colony's identity, bound to this request), streams the
// output back and records how it ended. Only tokens with the exec scope get
// here (../auth); the agent may refuse too (exec disabled in its config).
import { randomBytes } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { IdentityKey } from "@coral/proto";
import { AgentExecService, type ExecExit } from "@coral/proto/gen/coral/agent/v1/exec_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ExecResponseSchema, ExecService } from "@coral/proto/gen/coral/colony/v1/exec_pb";
import { checkExecRequest } from "@coral/common/exec-limits";
import { callerKey } from "../auth/index.ts";
import { agentServiceClient } from "../agents/transport.ts";
import { agentError, type DebugSessions } from "../debug/sessions.ts";
import { admitExec } from "./admit.ts";
import { finishExec, insertExec, listExecs, type ColonyStore, type ExecEnd, type ExecRecordRow } from "../store/index.ts";

export interface ExecDeps {
  store: Pick<ColonyStore, "write" | "read">;
  debug?: Pick<DebugSessions, "agentFor">;
  identity: IdentityKey;
}

/** Time the agent gets beyond the command's own timeout to say how it ended. */
const agentSlackMs = 15_000;

function outcomeOf(exit: ExecExit): ExecEnd["outcome"] {
  return exit.timedOut ? "timed_out" : exit.outputTruncated ? "truncated" : "exited";
}

export function recordMessage(r: ExecRecordRow) {
  return {
    execId: r.execId,
    startedAt: timestampFromDate(r.startedAt),
    endedAt: r.endedAt ? timestampFromDate(r.endedAt) : undefined,
    actor: r.actor,
    serviceName: r.serviceName,
    agentId: r.agentId ?? "",
    argv: r.argv,
    host: r.host,
    outcome: r.outcome,
    exitCode: r.exitCode ?? 0,
    signal: r.signal ?? "",
    durationMs: r.durationMs ?? 0,
    outputBytes: BigInt(r.outputBytes ?? 0),
    error: r.error ?? "",
    kind: r.kind,
  };
}

export function execService(deps: ExecDeps): ServiceImpl<typeof ExecService> {
  const who = (ctx: HandlerContext) => ctx.values.get(callerKey)?.name ?? "unknown";
  const finish = (execId: string, end: ExecEnd) => deps.store.write((c) => finishExec(c, execId, end)).catch(() => undefined);

  return {
    async *exec(req, ctx): AsyncGenerator<MessageInitShape<typeof ExecResponseSchema>> {
      const execId = `x${randomBytes(8).toString("hex")}`;
      const startedAt = new Date();
      const base = { execId, startedAt, actor: who(ctx), serviceName: req.serviceName.slice(0, 129), argv: req.argv.slice(0, 256).map((a) => a.slice(0, 8192)), host: req.host };
      const { bounds, agent } = await admitExec(deps, base, () => checkExecRequest(req));
      await deps.store.write((c) => insertExec(c, { ...base, agentId: agent.agentId, outcome: "running", error: null }));
      const client = agentServiceClient(AgentExecService, agent.agentUrl, agent.agentId, deps.identity);
      let exit: ExecExit | undefined;
      try {
        const stream = client.exec(
          { argv: req.argv, host: req.host, timeoutMs: bounds.timeoutMs, maxOutputBytes: BigInt(bounds.maxOutputBytes), serviceName: req.serviceName, execId },
          { timeoutMs: bounds.timeoutMs + agentSlackMs, signal: ctx.signal },
        );
        for await (const res of stream) {
          const e = res.event;
          if (e.case === "started") yield { event: { case: "started", value: { ...e.value, execId, agentId: agent.agentId } } };
          else if (e.case === "stdout" || e.case === "stderr") yield { event: e };
          else if (e.case === "exit") {
            exit = e.value;
            yield { event: e };
          }
        }
        if (!exit) throw new ConnectError(`agent ${agent.agentId} ended the stream without saying how the command ended`, Code.Internal);
        await finish(execId, { endedAt: new Date(), outcome: outcomeOf(exit), exitCode: exit.exitCode, signal: exit.signal || null, durationMs: exit.durationMs, outputBytes: Number(exit.outputBytes), error: null });
      } catch (err) {
        const ce = ctx.signal.aborted ? new ConnectError("the client went away; the agent stops the command", Code.Canceled) : ConnectError.from(err);
        const mapped = [Code.InvalidArgument, Code.PermissionDenied, Code.FailedPrecondition, Code.NotFound, Code.Canceled].includes(ce.code) ? new ConnectError(ce.rawMessage, ce.code) : agentError(err, agent);
        const outcome = mapped.code === Code.PermissionDenied || mapped.code === Code.InvalidArgument ? "refused" : "failed";
        if (!exit) await finish(execId, { endedAt: new Date(), outcome, exitCode: null, signal: null, durationMs: Date.now() - startedAt.getTime(), outputBytes: null, error: mapped.rawMessage.slice(0, 500) });
        throw mapped;
      }
    },

    async listExecs(req) {
      if (req.limit > 1000) throw new ConnectError("limit: at most 1000", Code.InvalidArgument);
      const rows = await deps.store.read((c) => listExecs(c, req.limit || 50, req.serviceName || undefined));
      return { execs: rows.map(recordMessage) };
    },
  };
}
