// The door of coral exec and coral shell at the colony: the request is checked
// and its service's live agent found, or the refusal is recorded (an exec
// record that says why) and answered. Either way the attempt is on record.
import { Code, ConnectError } from "@connectrpc/connect";
import type { DebugSessions } from "../debug/sessions.ts";
import { finishExec, insertExec, type ColonyStore } from "../store/index.ts";

export type ExecStart = Omit<Parameters<typeof insertExec>[1], "agentId" | "outcome" | "error">;
export type AgentRef = Awaited<ReturnType<DebugSessions["agentFor"]>>;

export async function admitExec<B>(
  deps: { store: Pick<ColonyStore, "write">; debug?: Pick<DebugSessions, "agentFor"> },
  start: ExecStart,
  check: () => B,
): Promise<{ bounds: B; agent: AgentRef }> {
  const refuse = async (message: string, code: Code, outcome: "refused" | "failed" = "refused"): Promise<never> => {
    const error = message.slice(0, 500);
    await deps.store.write((c) => insertExec(c, { ...start, agentId: null, outcome, error }));
    await deps.store.write((c) => finishExec(c, start.execId, { endedAt: new Date(), outcome, exitCode: null, signal: null, durationMs: null, outputBytes: null, error })).catch(() => undefined);
    throw new ConnectError(message, code);
  };
  if (!start.serviceName) return refuse("service_name: required (a component name from coral status)", Code.InvalidArgument);
  if (start.serviceName.length > 128) return refuse("service_name: at most 128 characters", Code.InvalidArgument);
  let bounds: B;
  try {
    bounds = check();
  } catch (err) {
    return refuse((err as Error).message, Code.InvalidArgument);
  }
  if (!deps.debug) return refuse("this colony does not reach agents", Code.Unavailable, "failed");
  try {
    return { bounds, agent: await deps.debug.agentFor(start.serviceName) };
  } catch (err) {
    const ce = ConnectError.from(err);
    return refuse(ce.rawMessage, ce.code, "failed");
  }
}
