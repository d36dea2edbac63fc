// coral debug logpoint|snapshot: a Node service's line, without pausing it
// (past one check of about a millisecond on the first hit): a logpoint
// prints an expression's value each time the line runs; a snapshot prints
// the arguments and locals in scope the first N times. Same sessions as
// coral debug attach (limits, audit, expiry, coral debug sessions/events).
import { toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { DebugSessionSchema, type DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import type { Client } from "@connectrpc/connect";
import { Command, InvalidArgumentError, Option } from "commander";
import { formatLineSummary, formatLogLine, formatSnapshot, sessionOutcome, snapshotValues } from "../format/index.ts";
import { useColor } from "./read.ts";
import { durationRangeOption, intOption } from "./options.ts";
import { followSession } from "./debug-stream.ts";
import { withRemoteOptions, type RemoteOptions } from "./remote.ts";

type DebugClient = Client<typeof DebugService>;
type WithDebug = <T>(options: RemoteOptions, run: (client: DebugClient) => Promise<T>) => Promise<T>;

export const maxSnapshotCount = 50;

interface LineOptions extends RemoteOptions {
  expr?: string;
  condition?: string;
  count?: number;
  duration: number;
  maxEvents?: number;
  outputDir: string;
  utc?: boolean;
}

/** A session that ended because the agent refused its expression (side effects, throws) or failed: the reason, as an error. */
export class LineSessionFailed extends Error {
  override name = "LineSessionFailed";
}

const fileLine = (value: string): string => {
  if (!/^\S+:[1-9]\d*$/.test(value)) throw new InvalidArgumentError("must be file:line, e.g. src/server.ts:42 (the file as coral debug functions shows it, or the end of its path)");
  return value;
};

const expression = (what: string) => (value: string): string => {
  if (!value.trim()) throw new InvalidArgumentError(`must be a non-empty JavaScript ${what}`);
  if (value.length > 2000) throw new InvalidArgumentError("must be at most 2000 characters");
  return value;
};

async function runLine(kind: "logpoint" | "snapshot", service: string, location: string, opts: LineOptions, withDebug: WithDebug): Promise<void> {
  await withDebug(opts, async (client) => {
    const color = useColor() && !opts.json;
    const res = await client.attachUprobe({
      serviceName: service,
      functionName: location,
      kind,
      expression: kind === "logpoint" ? opts.expr! : "",
      condition: opts.condition ?? "",
      snapshotCount: kind === "snapshot" ? (opts.count ?? 1) : 0,
      durationMs: opts.duration,
      maxEvents: kind === "logpoint" ? (opts.maxEvents ?? 10_000) : 0,
    });
    const { session, events, file } = await followSession(client, res.session!, {
      outputDir: opts.outputDir,
      started: (session) => {
        if (opts.json) return;
        console.log(`🔍 ${kind === "logpoint" ? "Logpoint" : "Snapshot"} set (session: ${session.sessionId})`);
        console.log(`📍 Line: ${session.functionName} in ${session.serviceName} (pid ${session.pid})`);
        if (kind === "logpoint") console.log(`🧮 Expression: ${session.expression}`);
        else console.log(`📸 Capturing: arguments and locals, the first ${session.snapshotCount} time(s) the line runs`);
        if (session.condition) console.log(`❓ Condition: ${session.condition}`);
        console.log(`⏱️  Duration: ${Math.round(session.durationMs / 1000)}s`);
        console.log(`\n${kind === "logpoint" ? "Values" : "Snapshots"} as the line runs... (Ctrl+C stops)\n`);
      },
      print: (e, _session, index) => {
        if (opts.json) return;
        if (e.type === "snapshot") for (const line of formatSnapshot(e, { color, utc: opts.utc, index })) console.log(line);
        else console.log(formatLogLine(e, { color, utc: opts.utc }));
      },
    });
    // Refused on the agent (ended failed; "completed" with the reason prefixed by colonies before that).
    const failed = session.summary?.stopReason === "error" ? session.reason.replace(/^collector stopped on the agent \(error\): /, "") : "";
    if (opts.json) {
      const records = events.map((e) => ({
        time: e.timestamp ? new Date(timestampMs(e.timestamp)).toISOString() : null,
        pid: e.pid,
        ...(e.type === "snapshot" ? { values: snapshotValues(e) } : { value: e.value }),
      }));
      console.log(JSON.stringify({ session: toJson(DebugSessionSchema, session), [kind === "snapshot" ? "snapshots" : "values"]: records, eventsFile: file, ...(failed ? { error: failed } : {}) }, null, 2));
    } else {
      console.log(`\n${failed ? "✗" : "✓"} Session ${sessionOutcome(session)}. ${events.length.toLocaleString("en-US")} ${kind === "snapshot" ? "snapshot(s)" : "value(s)"}.`);
      console.log(`📄 Events saved to: ${file}\n`);
      console.log(formatLineSummary(session, events.length, { color }));
    }
    if (failed) throw new LineSessionFailed(`${kind} refused: ${failed}`);
  });
}

export function lineCommands(withDebug: WithDebug): Command[] {
  const durationMs = durationRangeOption(600_000, "must be from 1s to 10m (the agent's hard limit)", "30s, 5m");
  const common = (c: Command) =>
    withRemoteOptions(c)
      .argument("<service>", "the component, as coral status names it (a Node service)")
      .argument("<file:line>", "the line, its file as coral debug functions shows it (or the end of its path); TypeScript sources work through source maps", fileLine)
      .option("--condition <expr>", "only when this JavaScript expression (side-effect-free) is true there", expression("expression"))
      .addOption(new Option("--duration <time>", "how long the session may run, at most 10m").argParser(durationMs).default(60_000, "1m"))
      .option("--output-dir <dir>", "where events.json is saved", "./debug-sessions")
      .option("--utc", "show times in UTC");
  const after = `
Node services only (through the V8 inspector, opened on demand). The process
never pauses, except once for about a millisecond on the first hit, where the
agent checks the expressions with V8's side-effect-free evaluation: one that
would change state (assignments, ++, calls like push()) or that throws there
ends the session with the reason, the process untouched. Needs an admin token.`;
  const logpoint = common(new Command("logpoint").description("print an expression's value each time a line of a Node service runs, without pausing it (needs an admin token)"))
    .requiredOption("--expr <expression>", "the JavaScript expression to record, e.g. 'user.id' or '`${req.method} ${req.url}`' (values depth- and size-limited)", expression("expression"))
    .option("--max-events <n>", "stop after this many values", intOption(1, 1_000_000), 10_000)
    .addHelpText("after", `${after}\n\nExample:\n  coral debug logpoint users src/users.ts:12 --expr 'id' --condition 'id > 100'`)
    .action((service: string, location: string, opts: LineOptions) => runLine("logpoint", service, location, opts, withDebug));
  const snapshot = common(new Command("snapshot").description("capture the arguments and locals at a line of a Node service the first N times it runs (needs an admin token)"))
    .option("--count <n>", `how many snapshots, 1 to ${maxSnapshotCount}; the session ends once taken`, intOption(1, maxSnapshotCount), 1)
    .addHelpText("after", `${after}\nValues are depth- and size-limited (depth 2, 200 characters, 50 names); a name\nnot yet initialised there (let/const below the line) reads <uninitialized>.\n\nExample:\n  coral debug snapshot users src/users.ts:12 --count 3 --condition 'id === 7'`)
    .action((service: string, location: string, opts: LineOptions) => runLine("snapshot", service, location, opts, withDebug));
  return [logpoint, snapshot];
}
