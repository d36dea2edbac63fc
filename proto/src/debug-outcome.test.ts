import { describe, expect, it } from "vitest";
import { debugSessionOutcome } from "./debug-outcome.ts";

describe("debugSessionOutcome: a session's state in words", () => {
  it.each([
    [{ state: "expired", reason: "session expired" }, "finished (duration reached)"],
    [{ state: "completed", reason: "detached by local" }, "stopped by user"],
    [{ state: "completed", reason: "detached by local; stopped on the agent when it came back" }, "stopped by user"],
    [{ state: "completed", reason: "collector stopped on the agent (max_events)" }, "stopped (event limit)"],
    [{ state: "completed", reason: "detached by ci", summary: { stopReason: "max_events" } }, "stopped (event limit)"],
    [{ state: "expired", reason: "session expired", summary: { stopReason: "max_events" } }, "stopped (event limit)"],
    [{ state: "completed", reason: "collector stopped on the agent (resume_failed): could not resume" }, "stopped on the agent"],
    [{ state: "failed", reason: "no such function" }, "failed"],
    [{ state: "failed", reason: "the expression has side effects: x++", summary: { stopReason: "error" } }, "failed"],
    [{ state: "completed", reason: "collector stopped on the agent (error): the expression throws at a.js:3" }, "failed"],
    [{ state: "active", reason: "collector c1 running on pid 7" }, "active"],
    [{ state: "" }, "unknown"],
  ])("%j → %s", (session, words) => {
    expect(debugSessionOutcome(session)).toBe(words);
  });
});
