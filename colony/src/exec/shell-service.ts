// ShellService: `coral shell <service>`, a terminal beside a service through
// its agent. The colony opens the session (exec record, kind shell), records
// everything that passes (output, input, resizes) as asciicast v2 before it
// passes, accepts input only from the token that opened the session, and ends
// the session when the recording is full: nothing runs unrecorded.
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { IdentityKey } from "@coral/proto";
import { AgentShellService, type ShellExit } from "@coral/proto/gen/coral/agent/v1/shell_pb";
import type { OpenShellResponseSchema, ShellService } from "@coral/proto/gen/coral/colony/v1/shell_pb";
import { checkShellRequest, checkTerminalSize, shellLimits } from "@coral/common/exec-limits";
import { callerKey } from "../auth/index.ts";
import { agentServiceClient } from "../agents/transport.ts";
import { agentError, type DebugSessions } from "../debug/sessions.ts";
import { admitExec } from "./admit.ts";
import { finishExec, getExec, insertExec, type ColonyStore, type ExecEnd } from "../store/index.ts";
import { ShellRecorder } from "./recording.ts";

export interface ShellDeps {
  store: Pick<ColonyStore, "write" | "read">;
  debug?: Pick<DebugSessions, "agentFor">;
  identity: IdentityKey;
  /** Where recordings are kept (the colony's .coral/recordings). */
  recordingsDir: string;
  /** Recorded bytes per session at most (default 64 MiB). */
  maxRecordingBytes?: number;
}

interface OpenSession {
  owner: string;
  client: Client<typeof AgentShellService>;
  recorder: ShellRecorder;
  /** Ends the session (the agent kills the shell). */
  end(why: string): void;
}

const sessionIdPattern = /^s[0-9a-f]{32}$/;
const slackMs = 30_000;

export function shellService(deps: ShellDeps): ServiceImpl<typeof ShellService> {
  const who = (ctx: HandlerContext) => ctx.values.get(callerKey)?.name ?? "unknown";
  const sessions = new Map<string, OpenSession>();
  const finish = (id: string, end: ExecEnd) => deps.store.write((c) => finishExec(c, id, end)).catch(() => undefined);

  /** The open session of this id, if the caller opened it. */
  function ownSession(id: string, ctx: HandlerContext): OpenSession {
    const s = sessionIdPattern.test(id) ? sessions.get(id) : undefined;
    if (!s) throw new ConnectError(`no open shell session ${JSON.stringify(id.slice(0, 40))} (it ended, or was never opened)`, Code.NotFound);
    if (s.owner !== who(ctx)) throw new ConnectError("this shell session was opened by another token; only its owner may type into it", Code.PermissionDenied);
    return s;
  }

  return {
    async *openShell(req, ctx): AsyncGenerator<MessageInitShape<typeof OpenShellResponseSchema>> {
      const actor = who(ctx);
      const sessionId = `s${randomBytes(16).toString("hex")}`;
      const startedAt = new Date();
      const base = { execId: sessionId, kind: "shell" as const, startedAt, actor, serviceName: req.serviceName.slice(0, 129), argv: ["(shell)"], host: req.host };
      const { bounds, agent } = await admitExec(deps, base, () => checkShellRequest(req));
      const recording = join(deps.recordingsDir, `${sessionId}.cast`);
      const recorder = await ShellRecorder.create(recording, { cols: bounds.cols, rows: bounds.rows, title: `coral shell ${req.serviceName}${req.host ? " --host" : ""} (${actor})` }, deps.maxRecordingBytes ?? shellLimits.maxRecordingBytes);
      await deps.store.write((c) => insertExec(c, { ...base, agentId: agent.agentId, outcome: "running", error: null, recording }));
      const client = agentServiceClient(AgentShellService, agent.agentUrl, agent.agentId, deps.identity);
      const abort = new AbortController();
      let endedBy = "";
      const end = (why: string) => {
        endedBy ||= why;
        abort.abort();
      };
      const onGone = () => end("the client went away");
      ctx.signal.addEventListener("abort", onGone, { once: true });
      sessions.set(sessionId, { owner: actor, client, recorder, end });
      let exit: ShellExit | undefined;
      let started = false;
      try {
        const stream = client.openShell(
          { sessionId, serviceName: req.serviceName, host: req.host, cols: bounds.cols, rows: bounds.rows, idleTimeoutMs: bounds.idleMs, maxDurationMs: bounds.maxDurationMs },
          { signal: abort.signal, timeoutMs: bounds.maxDurationMs + slackMs },
        );
        for await (const res of stream) {
          const e = res.event;
          if (e.case === "started") {
            started = true;
            yield { event: { case: "started", value: { ...e.value, sessionId, agentId: agent.agentId } } };
          }
          else if (e.case === "data") {
            await recorder.output(e.value).catch((err: unknown) => end((err as Error).message));
            if (!abort.signal.aborted) yield { event: e };
          } else if (e.case === "exit") {
            exit = e.value;
            yield { event: e };
          }
        }
        if (!exit) throw new ConnectError(`agent ${agent.agentId} ended the shell's stream without saying how it ended`, Code.Internal);
        await finish(sessionId, { endedAt: new Date(), outcome: "exited", exitCode: exit.exitCode, signal: exit.signal || null, durationMs: exit.durationMs, outputBytes: recorder.bytes, error: exit.reason === "exited" ? null : `ended: ${exit.reason}` });
      } catch (err) {
        const ce = endedBy ? new ConnectError(endedBy, endedBy.includes("recording") ? Code.ResourceExhausted : Code.Canceled) : ConnectError.from(err);
        const mapped = [Code.InvalidArgument, Code.PermissionDenied, Code.FailedPrecondition, Code.NotFound, Code.ResourceExhausted].includes(ce.code) || endedBy
          ? new ConnectError(ce.rawMessage, ce.code)
          : started
            ? // The agent's end of a running session broke (it stopped, restarted, or the network went): say it as that.
              new ConnectError(`agent ${agent.agentId} went away during the session (${ce.rawMessage}); the shell ended with it`, Code.Unavailable)
            : agentError(err, agent);
        await finish(sessionId, { endedAt: new Date(), outcome: mapped.code === Code.PermissionDenied ? "refused" : "failed", exitCode: null, signal: null, durationMs: Date.now() - startedAt.getTime(), outputBytes: recorder.bytes, error: mapped.rawMessage.slice(0, 500) });
        throw mapped;
      } finally {
        ctx.signal.removeEventListener("abort", onGone);
        sessions.delete(sessionId);
        await recorder.close();
      }
    },

    async sendShellInput(req, ctx) {
      const s = ownSession(req.sessionId, ctx);
      if (req.data.length > shellLimits.maxInputBytes) throw new ConnectError(`data: at most ${shellLimits.maxInputBytes} bytes a call, got ${req.data.length}`, Code.InvalidArgument);
      // Recorded before it is typed: input that cannot be recorded ends the session instead.
      try {
        await s.recorder.input(req.data);
      } catch (err) {
        s.end((err as Error).message);
        throw new ConnectError((err as Error).message, Code.ResourceExhausted);
      }
      await s.client.sendShellInput({ sessionId: req.sessionId, data: req.data }, { timeoutMs: 15_000 });
      return {};
    },

    async resizeShell(req, ctx) {
      const s = ownSession(req.sessionId, ctx);
      let size: ReturnType<typeof checkTerminalSize>;
      try {
        size = checkTerminalSize(req.cols, req.rows);
      } catch (err) {
        throw new ConnectError((err as Error).message, Code.InvalidArgument);
      }
      await s.recorder.resize(size.cols, size.rows).catch(() => undefined);
      await s.client.resizeShell({ sessionId: req.sessionId, ...size }, { timeoutMs: 15_000 });
      return {};
    },

    async getShellRecording(req) {
      const row = sessionIdPattern.test(req.sessionId) ? await deps.store.read((c) => getExec(c, req.sessionId)) : null;
      if (!row || row.kind !== "shell" || !row.recording) throw new ConnectError(`no recorded shell session ${JSON.stringify(req.sessionId.slice(0, 40))} (coral audit exec lists them)`, Code.NotFound);
      const text = await readFile(row.recording, "utf8").catch((err: NodeJS.ErrnoException) => {
        throw new ConnectError(`the recording of ${req.sessionId} cannot be read: ${err.code ?? err.message}`, Code.NotFound);
      });
      return { asciicast: text, truncated: false };
    },
  };
}
