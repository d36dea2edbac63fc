// coral exec: run a command beside a service, in the namespaces of its
// process (mount, pid, net, uts, ipc, cgroup: what it sees), or with --host on
// its agent's host; output as it comes; the command's exit code. Needs a
// token with the exec scope; recorded by the colony (coral audit exec).
//   coral exec <service> [--host] [--timeout 30s] [--max-output 1MiB] -- <command> [args...]
import { Code, ConnectError } from "@connectrpc/connect";
import { ExecService } from "@coral/proto/gen/coral/colony/v1/exec_pb";
import { execLimits } from "@coral/common/exec-limits";
import { Command, InvalidArgumentError, Option } from "commander";
import { durationRangeOption } from "./options.ts";
import { explainError, resolveTarget, serviceClient, withRemoteOptions, type RemoteOptions } from "./remote.ts";

interface ExecOptions extends RemoteOptions {
  host?: boolean;
  timeout: number;
  maxOutput: number;
}

/** coral's own failure to run the command (not the command's): 125, as docker run says it. */
export class ExecFailedError extends Error {
  readonly exitCode = 125;
}

const units: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2 };

function sizeOption(value: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? units[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidArgumentError("must be a size like 65536, 512KiB or 4MiB");
  const bytes = Number(m[1]) * unit;
  if (bytes < 1 || bytes > execLimits.maxOutputBytes) throw new InvalidArgumentError("must be from 1 byte to 16MiB");
  return bytes;
}

const mib = (n: number) => (n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`);

export function execCommand(): Command {
  return withRemoteOptions(new Command("exec").description("run a command beside a component: in its process's namespaces (or --host on its agent's host); exits with the command's code; needs an exec token, recorded"))
    .argument("<service>", "component name, e.g. api")
    .argument("<command...>", "the command and its arguments, after --: coral exec api -- ps aux")
    .option("--host", "run on the agent's host instead of in the service's namespaces")
    .addOption(
      new Option("--timeout <duration>", "stop the command (and everything it started) after this long (1s-10m)")
        .argParser(durationRangeOption(execLimits.maxTimeoutMs, "must be from 1s to 10m", "30s or 5m"))
        .default(execLimits.defaultTimeoutMs, "30s"),
    )
    .addOption(new Option("--max-output <size>", "stop the command once it has printed this much (stdout and stderr together, up to 16MiB)").argParser(sizeOption).default(execLimits.defaultOutputBytes, "1MiB"))
    .addHelpText(
      "after",
      `
Exit codes: the command's own; 124 when it timed out; 125 when coral could not run it
(no exec scope, exec disabled on the agent, agent unreachable); 127 when it does not exist.

Examples:
  coral exec api -- ps aux
  coral exec api -- sh -c 'ss -tnp | head'
  coral exec api --host -- df -h`,
    )
    .action(async (service: string, argv: string[], opts: ExecOptions) => {
      const target = await resolveTarget(opts);
      const client = serviceClient(ExecService, target);
      const abort = new AbortController();
      // Ctrl+C ends the command on the agent too (the colony and the agent see the call go away).
      const onSigint = () => abort.abort();
      process.once("SIGINT", onSigint);
      try {
        for await (const res of client.exec({ serviceName: service, argv, host: opts.host ?? false, timeoutMs: opts.timeout, maxOutputBytes: BigInt(opts.maxOutput) }, { signal: abort.signal })) {
          const e = res.event;
          if (e.case === "stdout") process.stdout.write(e.value);
          else if (e.case === "stderr") process.stderr.write(e.value);
          else if (e.case === "exit") {
            if (e.value.timedOut) process.stderr.write(`coral exec: timed out after ${opts.timeout / 1000}s; the command was stopped\n`);
            if (e.value.outputTruncated) process.stderr.write(`coral exec: output cut at ${mib(opts.maxOutput)}; the command was stopped\n`);
            process.exitCode = e.value.exitCode;
          }
        }
      } catch (err) {
        if (abort.signal.aborted) {
          process.exitCode = 130;
          return;
        }
        const ce = err instanceof ConnectError ? err : undefined;
        if (ce && [Code.PermissionDenied, Code.InvalidArgument, Code.FailedPrecondition, Code.Unavailable, Code.NotFound].includes(ce.code)) throw new ExecFailedError(ce.rawMessage);
        const explained = explainError(err, target);
        throw new ExecFailedError(explained.message);
      } finally {
        process.off("SIGINT", onSigint);
      }
    });
}
