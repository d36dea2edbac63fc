// A debug session's state in words a person understands. The colony keeps the
// machine's state names (requested … completed | expired | failed) in its
// store and API `state`; this is what the CLI, the API's `outcome` and the MCP
// tools show, so all three say the same.

export interface DebugSessionLike {
  state: string;
  reason?: string;
  summary?: { stopReason?: string } | null;
}

/** "finished (duration reached)", "stopped by user", "stopped (event limit)", "stopped on the agent", "failed", or the state. */
export function debugSessionOutcome(s: DebugSessionLike): string {
  const reason = s.reason ?? "";
  switch (s.state) {
    // "expired" is what earlier colonies stored for a session that ran its whole duration.
    case "expired":
    case "finished":
      return s.summary?.stopReason === "max_events" ? "stopped (event limit)" : "finished (duration reached)";
    // "completed": ended before its duration, by a person or on the agent.
    case "completed":
    case "stopped":
      if (s.summary?.stopReason === "max_events" || /\(max_events\)/.test(reason)) return "stopped (event limit)";
      // Ended in error on the agent (colonies before this stored such sessions as completed).
      if (s.summary?.stopReason === "error" || /^collector stopped on the agent \(error\)/.test(reason)) return "failed";
      if (/^detached by /.test(reason)) return "stopped by user";
      if (/^collector stopped on the agent/.test(reason)) return "stopped on the agent";
      return "stopped";
    case "failed":
      return "failed";
    default:
      return s.state || "unknown";
  }
}
