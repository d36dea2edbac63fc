// The colony's edge checks of an attach: function sessions as before, logpoints and snapshots (Node lines).
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { checkAttach } from "./sessions.ts";

const refused = (req: Parameters<typeof checkAttach>[0]) => {
  try {
    checkAttach(req);
  } catch (err) {
    return err as ConnectError;
  }
  throw new Error("accepted");
};

describe("checkAttach", () => {
  it("a function session: the options as before, no line fields", () => {
    expect(checkAttach({ serviceName: "api", functionName: "handle" })).toEqual({ durationMs: 60_000, captureArgs: 0, captureReturn: false, sampleRate: 1, maxEvents: 10_000, slowThresholdMs: 100 });
    expect(refused({ serviceName: "api", functionName: "handle", expression: "x" }).rawMessage).toBe("expression, condition and snapshot_count are for logpoints and snapshots (kind)");
  });

  it("a logpoint: file:line and an expression; a snapshot: its count is its event limit", () => {
    expect(checkAttach({ serviceName: "api", functionName: "src/app.ts:12", kind: "logpoint", expression: "a + b", condition: "a > 1", durationMs: 5000 })).toEqual({
      durationMs: 5000,
      captureArgs: 0,
      captureReturn: false,
      sampleRate: 1,
      maxEvents: 10_000,
      slowThresholdMs: 100,
      kind: "logpoint",
      expression: "a + b",
      condition: "a > 1",
      snapshotCount: 0,
    });
    expect(checkAttach({ serviceName: "api", functionName: "app.js:3", kind: "snapshot", snapshotCount: 5 })).toMatchObject({ kind: "snapshot", snapshotCount: 5, maxEvents: 5 });
    expect(checkAttach({ serviceName: "api", functionName: "app.js:3", kind: "snapshot" })).toMatchObject({ snapshotCount: 1, maxEvents: 1 });
  });

  it("refuses what a line session cannot take, with the field named", () => {
    const cases: [Parameters<typeof checkAttach>[0], string, Code][] = [
      [{ serviceName: "api", functionName: "app.js:3", kind: "watch" }, 'kind: must be function, logpoint or snapshot (got "watch")', Code.InvalidArgument],
      [{ serviceName: "api", functionName: "handle", kind: "logpoint", expression: "x" }, 'function_name: a logpoint takes file:line, e.g. src/server.ts:42 (got "handle")', Code.InvalidArgument],
      [{ serviceName: "api", functionName: "app.js:3", kind: "logpoint", expression: "  " }, "expression: is required for a logpoint (what to record each time the line runs)", Code.InvalidArgument],
      [{ serviceName: "api", functionName: "app.js:3", kind: "snapshot", expression: "x" }, "expression: a snapshot takes none (it captures the arguments and locals)", Code.InvalidArgument],
      [{ serviceName: "api", functionName: "app.js:3", kind: "snapshot", snapshotCount: 51 }, "snapshot_count: at most 50 (got 51)", Code.ResourceExhausted],
      [{ serviceName: "api", functionName: "app.js:3", kind: "logpoint", expression: "x".repeat(2001) }, "expression: at most 2000 characters (got 2001)", Code.InvalidArgument],
      [{ serviceName: "api", functionName: "app.js:3", kind: "logpoint", expression: "x", captureArgs: 2 }, "capture_args, capture_return and sample_rate are for function sessions, not a logpoint", Code.InvalidArgument],
    ];
    for (const [req, message, code] of cases) {
      const err = refused(req);
      expect([err.rawMessage, err.code]).toEqual([message, code]);
    }
  });
});
