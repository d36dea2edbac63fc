// coral audit exec: who ran which command beside which service, when, and how
// it ended (the colony's exec records). Needs an admin or exec token.
//   coral audit exec [--service api] [--limit 50] [--json]
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ExecService, type ExecRecord } from "@coral/proto/gen/coral/colony/v1/exec_pb";
import { ShellService } from "@coral/proto/gen/coral/colony/v1/shell_pb";
import { Command, InvalidArgumentError, Option } from "commander";
import { intOption } from "./options.ts";
import { unaryClient } from "./read-client.ts";
import { useColor } from "./read.ts";
import { explainError, resolveTarget, withRemoteOptions, type RemoteOptions } from "./remote.ts";
import { formatExecRecords } from "../format/audit.ts";

interface ExecListOptions extends RemoteOptions {
  service?: string;
  limit: number;
}

export function execRecordJson(r: ExecRecord) {
  return {
    exec_id: r.execId,
    kind: r.kind,
    started_at: r.startedAt ? timestampDate(r.startedAt).toISOString() : null,
    ended_at: r.endedAt ? timestampDate(r.endedAt).toISOString() : null,
    actor: r.actor,
    service: r.serviceName,
    agent_id: r.agentId || null,
    argv: r.argv,
    where: r.host ? "host" : "namespaces",
    outcome: r.outcome,
    exit_code: r.outcome === "exited" || r.outcome === "timed_out" || r.outcome === "truncated" ? r.exitCode : null,
    signal: r.signal || null,
    duration_ms: r.durationMs,
    output_bytes: Number(r.outputBytes),
    error: r.error || null,
  };
}

export function auditCommand(): Command {
  const audit = new Command("audit").description("what was done through the colony that needs a record: coral exec and coral shell sessions");
  audit.addCommand(
    withRemoteOptions(new Command("exec").description("list the commands run with coral exec, newest first: who, when, which service, the command, how it ended"))
      .option("--service <name>", "only this component")
      .addOption(new Option("--limit <n>", "at most this many (1-1000)").argParser(intOption(1, 1000)).default(50))
      .action(async (opts: ExecListOptions) => {
        const target = await resolveTarget(opts);
        try {
          const res = await unaryClient(ExecService, target).listExecs({ limit: opts.limit, serviceName: opts.service ?? "" });
          if (opts.json) console.log(JSON.stringify(res.execs.map(execRecordJson), null, 2));
          else console.log(formatExecRecords(res.execs, { color: useColor() }));
        } catch (err) {
          throw explainError(err, target);
        }
      }),
  );
  audit.addCommand(
    withRemoteOptions(new Command("replay").description("play a recorded coral shell session back in this terminal (or print its asciicast v2 file with --raw)"))
      .argument("<id>", "the session id, as coral shell and coral audit exec show it")
      .option("--raw", "print the recording (asciicast v2: plays with asciinema play)")
      .addOption(new Option("--speed <factor>", "play faster (2) or slower (0.5)").argParser(speedOption).default(1))
      .option("--input", "also show what was typed (the output already echoes most of it)")
      .action(async (id: string, opts: RemoteOptions & { raw?: boolean; speed: number; input?: boolean }) => {
        const target = await resolveTarget(opts);
        let cast: string;
        try {
          cast = (await unaryClient(ShellService, target).getShellRecording({ sessionId: id })).asciicast;
        } catch (err) {
          throw explainError(err, target);
        }
        if (opts.raw) {
          process.stdout.write(cast);
          return;
        }
        await replay(cast, { speed: opts.speed, input: opts.input ?? false });
      }),
  );
  return audit;
}

function speedOption(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0.1 || n > 100) throw new InvalidArgumentError("must be a number from 0.1 to 100");
  return n;
}

/** Longest pause played back: a session left idle for minutes replays in seconds. */
const maxPauseMs = 2000;

async function replay(cast: string, options: { speed: number; input: boolean }): Promise<void> {
  const [, ...lines] = cast.split("\n").filter((l) => l.trim() !== "");
  let last = 0;
  for (const line of lines) {
    const [at, code, text] = JSON.parse(line) as [number, string, string];
    const pause = Math.min((at - last) * 1000, maxPauseMs) / options.speed;
    last = at;
    if (pause > 1) await new Promise((r) => setTimeout(r, pause));
    if (code === "o") process.stdout.write(text);
    else if (code === "i" && options.input) process.stdout.write(`\u001b[2m${text}\u001b[22m`);
  }
  process.stdout.write("\r\n");
}
