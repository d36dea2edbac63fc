// What the colony shows of a debug session: the actor's context and state.
import type { DebugSessionContext, DebugSessionState } from "./session-machine.ts";

export interface DebugSessionView extends Omit<DebugSessionContext, "agentUrl" | "deadlineMs" | "endAs"> {
  state: DebugSessionState;
}

export function viewOf(context: DebugSessionContext, state: DebugSessionState): DebugSessionView {
  const { agentUrl: _url, deadlineMs: _deadline, endAs: _endAs, ...rest } = context;
  return { ...rest, state };
}
