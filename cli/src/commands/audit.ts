// coral audit exec: who ran which command beside which service, when, and how
// it ended (the colony's exec records). Needs an admin or exec token.
//   coral audit exec [--service api] [--limit 50] [--json]
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ExecService, type ExecRecord } from "@coral/proto/gen/coral/colony/v1/exec_pb";
import { Command, Option } from "commander";
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
  const audit = new Command("audit").description("what was done through the colony that needs a record: coral exec");
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
  return audit;
}
