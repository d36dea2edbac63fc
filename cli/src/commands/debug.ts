// coral debug attach|logpoint|snapshot|sessions|events|detach|functions:
// live debugging with eBPF uprobes on a component's functions (V8 inspector
// breakpoints on a Node service's), through the colony. logpoint and
// snapshot (Node only) are in debug-line.ts.
import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { UprobeEvent } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import {
  DebugService,
  DebugSessionSchema,
  ListDebugSessionsResponseSchema,
  ListFunctionsResponseSchema,
  QueryUprobeEventsResponseSchema,
  type DebugSession,
} from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { Command, InvalidArgumentError, Option } from "commander";
import { parseDuration } from "@coral/colony";
import { eventStats, formatEventLine, formatFunctions, formatLineSummary, formatSessions, formatSummary, sessionOutcome, sessionTarget } from "../format/index.ts";
import { printJson, sinceOption, useColor } from "./read.ts";
import { durationRangeOption, intOption } from "./options.ts";
import { lineCommands, LineSessionFailed } from "./debug-line.ts";
import { followSession, sessionIdPattern } from "./debug-stream.ts";
import { explainError, resolveTarget, serviceClient, withRemoteOptions, type ColonyTarget, type RemoteOptions } from "./remote.ts";

type DebugClient = Client<typeof DebugService>;

function debugClient(target: ColonyTarget): DebugClient {
  return serviceClient(DebugService, target);
}

/** The colony's answer, or the agent's passed through it, as something to act on. */
export function explainDebugError(err: unknown, target: ColonyTarget): Error {
  if (err instanceof LineSessionFailed) return err;
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unavailable && /^(agent |the agent )/.test(ce.rawMessage)) return new Error(ce.rawMessage);
  if (ce.code === Code.ResourceExhausted) return new Error(`limit reached: ${ce.rawMessage}`);
  if (ce.code === Code.PermissionDenied && /eBPF|BPF|root/.test(ce.rawMessage)) return new Error(`no BPF permission on the agent: ${ce.rawMessage}`);
  return explainError(err, target);
}

async function withDebug<T>(options: RemoteOptions, run: (client: DebugClient, target: ColonyTarget) => Promise<T>): Promise<T> {
  const target = await resolveTarget(options);
  try {
    return await run(debugClient(target), target);
  } catch (err) {
    throw explainDebugError(err, target);
  }
}

const durationMsOption = durationRangeOption(600_000, "must be from 1s to 10m (the agent's hard limit)", "30s, 5m");

function sessionId(value: string): string {
  if (!sessionIdPattern.test(value)) throw new InvalidArgumentError("must be a session id as coral debug sessions shows it, e.g. dbg-1a2b3c4d5e");
  return value;
}

interface AttachOptions extends RemoteOptions {
  function: string;
  duration: number;
  captureArgs?: boolean | number;
  captureReturn?: boolean;
  sampleRate: number;
  maxEvents: number;
  slow: number;
  outputDir: string;
  utc?: boolean;
}

function captureLine(o: AttachOptions): string {
  const parts = [];
  if (o.captureArgs) parts.push(typeof o.captureArgs === "number" ? `${o.captureArgs} argument(s)` : "arguments");
  if (o.captureReturn) parts.push("return values");
  return parts.length ? parts.join(", ") : "timings only";
}

async function attach(service: string, opts: AttachOptions): Promise<void> {
  await withDebug(opts, async (client) => {
    const color = useColor() && !opts.json;
    const res = await client.attachUprobe({
      serviceName: service,
      functionName: opts.function,
      durationMs: opts.duration,
      captureArgs: opts.captureArgs === true ? 6 : opts.captureArgs || 0,
      captureReturn: opts.captureReturn ?? false,
      sampleRate: opts.sampleRate,
      maxEvents: opts.maxEvents,
      slowThresholdMs: opts.slow,
    });
    const { session, events, file } = await followSession(client, res.session!, {
      outputDir: opts.outputDir,
      started: (session) => {
        if (opts.json) return;
        console.log(`🔍 Debug session started (session: ${session.sessionId})`);
        console.log(`📊 Function: ${session.functionName} in ${session.serviceName} (pid ${session.pid}${session.isGo ? ", Go" : ""})`);
        console.log(`⏱️  Duration: ${Math.round(session.durationMs / 1000)}s`);
        console.log(`🎯 Capturing: ${captureLine(opts)}${session.sampleRate > 1 ? `, every ${session.sampleRate}th call` : ""}`);
        console.log("\nStreaming events... (Ctrl+C detaches)\n");
      },
      print: (e, session) => {
        if (!opts.json) for (const line of formatEventLine(e, session, { color, utc: opts.utc })) console.log(line);
      },
    });
    const stats = eventStats(events, session.slowThresholdMs, session.runtime);
    if (opts.json) {
      console.log(JSON.stringify({ session: toJson(DebugSessionSchema, session), stats, eventsFile: file }, null, 2));
      return;
    }
    const how = `Session ${sessionOutcome(session)}`;
    console.log(`\n✓ ${how}. Collected ${events.length.toLocaleString("en-US")} events.${session.reason ? ` (${session.reason})` : ""}`);
    console.log(`📄 Events saved to: ${file}\n`);
    console.log(formatSummary(session, stats, { color }));
  });
}

export function debugCommand(): Command {
  const debug = new Command("debug").description("live debugging: eBPF uprobes on a component's functions (V8 breakpoints, logpoints and snapshots on a Node service's), without a redeploy");

  debug.addCommand(
    withRemoteOptions(new Command("attach").description("trace every call of a function of a component for a while (needs an admin token)"))
      .argument("<service>", "the component, as coral status names it")
      .requiredOption("-f, --function <symbol>", "the function's symbol, e.g. validate_card or main.ValidateCard (see coral debug functions)")
      .addOption(new Option("--duration <time>", "how long to trace, at most 10m").argParser(durationMsOption).default(60_000, "1m"))
      .addOption(new Option("--capture-args [n]", "capture the first n integer arguments (all 6 when no n)").argParser(intOption(0, 6)))
      .option("--capture-return", "capture the return value (C, Go: a negative value counts as an error; Node: each return's value, an async function's settled one, depth- and size-limited)")
      .option("--sample-rate <n>", "record every nth call", intOption(1, 1_000_000), 1)
      .option("--max-events <n>", "stop after this many events", intOption(1, 1_000_000), 10_000)
      .addOption(new Option("--slow <time>", "calls slower than this are marked SLOW").argParser((v) => {
        const p = parseDuration(v);
        if ("error" in p || p.ms < 1) throw new InvalidArgumentError("must be a duration like 100ms or 1s");
        return p.ms;
      }).default(100, "100ms"))
      .option("--output-dir <dir>", "where events.json is saved", "./debug-sessions")
      .option("--utc", "show times in UTC")
      .action((service: string, opts: AttachOptions) => attach(service, opts)),
  );

  for (const c of lineCommands(withDebug)) debug.addCommand(c);

  debug.addCommand(
    withRemoteOptions(new Command("sessions").description("list debug sessions, newest first"))
      .option("--state <state>", "only sessions in this state: active, finished (duration reached), stopped (before it), failed, …")
      .option("--service <name>", "only sessions of this component")
      .option("--limit <n>", "at most this many", intOption(1, 1000), 50)
      .action(async (opts: RemoteOptions & { state?: string; service?: string; limit: number }) => {
        await withDebug(opts, async (client) => {
          const res = await client.listDebugSessions({ state: opts.state ?? "", serviceName: opts.service ?? "", limit: opts.limit });
          if (opts.json) printJson(ListDebugSessionsResponseSchema, res);
          else console.log(formatSessions(res.sessions, { color: useColor() }));
        });
      }),
  );

  debug.addCommand(
    withRemoteOptions(new Command("events").description("show a session's events (from the agent's store)"))
      .argument("<session>", "session id, from coral debug sessions", sessionId)
      .option("--since <duration>", "only events from this long ago, e.g. 5m", sinceOption)
      .option("--limit <n>", "at most this many events", intOption(1, 100_000), 10_000)
      .option("--utc", "show times in UTC")
      .action(async (id: string, opts: RemoteOptions & { since?: number; limit: number; utc?: boolean }) => {
        await withDebug(opts, async (client) => {
          const events: UprobeEvent[] = [];
          let after = 0n;
          let session: DebugSession | undefined;
          const since = opts.since === undefined ? undefined : timestampFromDate(new Date(Date.now() - opts.since));
          for (;;) {
            const res = await client.queryUprobeEvents({ sessionId: id, since, afterSeq: after, limit: Math.min(10_000, opts.limit - events.length) });
            events.push(...res.events);
            session = res.session;
            after = res.nextAfterSeq;
            if (!res.hasMore || events.length >= opts.limit) break;
          }
          if (opts.json) {
            printJson(QueryUprobeEventsResponseSchema, create(QueryUprobeEventsResponseSchema, { events, hasMore: false, nextAfterSeq: after, session }));
            return;
          }
          const color = useColor();
          console.log(`Showing ${events.length.toLocaleString("en-US")} events of ${id} (${session ? sessionTarget(session) : ""} in ${session?.serviceName})${opts.since ? " from the given window" : ""}...`);
          for (const e of events) for (const line of formatEventLine(e, session!, { color, utc: opts.utc })) console.log(line);
          if (session?.kind === "logpoint" || session?.kind === "snapshot") console.log("\n" + formatLineSummary(session, events.length, { color }));
          else if (session) console.log("\n" + formatSummary(session, eventStats(events, session.slowThresholdMs, session.runtime), { color }));
        });
      }),
  );

  debug.addCommand(
    withRemoteOptions(new Command("detach").description("stop a debug session now (needs an admin token)"))
      .argument("<session>", "session id, from coral debug sessions", sessionId)
      .action(async (id: string, opts: RemoteOptions) => {
        await withDebug(opts, async (client) => {
          const res = await client.detachUprobe({ sessionId: id });
          const s = res.session!;
          if (opts.json) printJson(DebugSessionSchema, s);
          else console.log(`✓ Debug session ${id}: ${sessionOutcome(s)}${s.summary ? `, ${s.summary.calls} calls` : ""}`);
        });
      }),
  );

  debug.addCommand(
    withRemoteOptions(new Command("functions").description("list the functions of a component that can be traced"))
      .argument("<service>", "the component, as coral status names it")
      .option("--pattern <text>", "only names containing this (case-insensitive)")
      .option("--limit <n>", "at most this many", intOption(1, 10_000), 200)
      .option("--all", "Node: also the functions of other packages (dependencies, node_modules)")
      .action(async (service: string, opts: RemoteOptions & { pattern?: string; limit: number; all?: boolean }) => {
        await withDebug(opts, async (client) => {
          const res = await client.listFunctions({ serviceName: service, pattern: opts.pattern ?? "", limit: opts.limit, all: opts.all ?? false });
          if (opts.json) printJson(ListFunctionsResponseSchema, res);
          else console.log(formatFunctions(res.functions, { total: res.total, pid: res.pid, isGo: res.isGo, service, runtime: res.runtime }, { color: useColor() }));
        });
      }),
  );
  return debug;
}
