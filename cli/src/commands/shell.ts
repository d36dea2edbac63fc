// coral shell: an interactive terminal beside a component (in its process's
// namespaces, or --host on its agent's host), through the colony, as SSH
// would give it: raw keys (Ctrl+C, Ctrl+D go to the remote terminal), resize
// follows the local terminal, the exit code is the shell's. Needs an exec
// token; the colony records the session (coral audit replay <id>).
//   coral shell <service> [--host]
import { Code, ConnectError } from "@connectrpc/connect";
import { ShellService } from "@coral/proto/gen/coral/colony/v1/shell_pb";
import { shellLimits } from "@coral/common/exec-limits";
import { Command } from "commander";
import { ExecFailedError } from "./exec.ts";
import { explainError, resolveTarget, serviceClient, withRemoteOptions, type RemoteOptions } from "./remote.ts";

interface ShellOptions extends RemoteOptions {
  host?: boolean;
}

export function shellCommand(): Command {
  return withRemoteOptions(new Command("shell").description("open an interactive terminal beside a component (its process's namespaces, or --host); needs an exec token; recorded"))
    .argument("<service>", "component name, e.g. api")
    .option("--host", "on the agent's host instead of in the service's namespaces")
    .addHelpText(
      "after",
      `
Keys go to the remote terminal as typed (Ctrl+C interrupts the remote command;
Ctrl+D or exit ends the shell). The session ends after 15 min without input or
1 h in all. The colony records it: coral audit exec lists it, coral audit replay
<id> plays it back. Exit code: the shell's; 125 when coral could not open it.`,
    )
    .action(async (service: string, opts: ShellOptions) => {
      const target = await resolveTarget(opts);
      const client = serviceClient(ShellService, target);
      const stdin = process.stdin;
      const tty = stdin.isTTY === true;
      const size = () => ({ cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 });
      let sessionId = "";
      // Input in order, one call at a time; what is typed meanwhile goes in the next call.
      let pending: Buffer[] = [];
      let sending: Promise<void> | undefined;
      let failed: unknown;
      const flush = () => {
        if (sending || !sessionId || pending.length === 0) return;
        const data = Buffer.concat(pending);
        pending = [];
        const chunks = [];
        for (let i = 0; i < data.length; i += shellLimits.maxInputBytes) chunks.push(data.subarray(i, i + shellLimits.maxInputBytes));
        sending = (async () => {
          for (const chunk of chunks) await client.sendShellInput({ sessionId, data: chunk });
        })()
          .catch((err: unknown) => void (failed ??= err))
          .finally(() => {
            sending = undefined;
            flush();
          });
      };
      const onData = (d: Buffer) => {
        pending.push(d);
        flush();
      };
      // Without a terminal (a pipe), the end of input is Ctrl+D at the remote shell.
      const onEnd = () => onData(Buffer.from([4]));
      const onResize = () => {
        if (sessionId) void client.resizeShell({ sessionId, ...size() }).catch(() => undefined);
      };
      const restore = () => {
        stdin.off("data", onData);
        stdin.off("end", onEnd);
        process.stdout.off("resize", onResize);
        if (tty) stdin.setRawMode(false);
        stdin.pause();
      };
      try {
        for await (const res of client.openShell({ serviceName: service, host: opts.host ?? false, ...size() })) {
          const e = res.event;
          if (e.case === "started") {
            sessionId = e.value.sessionId;
            if (tty) stdin.setRawMode(true);
            stdin.on("data", onData);
            stdin.on("end", onEnd);
            process.stdout.on("resize", onResize);
            stdin.resume();
          } else if (e.case === "data") process.stdout.write(e.value);
          else if (e.case === "exit") {
            restore();
            const why = { idle: "it was idle too long", max_duration: "it reached its maximum duration", closed: "it was closed" }[e.value.reason];
            if (why) process.stderr.write(`\r\ncoral shell: the session ended: ${why}\n`);
            process.stderr.write(`coral shell: session ${sessionId} recorded (coral audit replay ${sessionId})\n`);
            process.exitCode = e.value.exitCode;
          }
        }
        if (failed) throw failed;
      } catch (err) {
        restore();
        const ce = err instanceof ConnectError ? err : undefined;
        if (ce && [Code.PermissionDenied, Code.InvalidArgument, Code.FailedPrecondition, Code.Unavailable, Code.NotFound, Code.ResourceExhausted].includes(ce.code)) throw new ExecFailedError(ce.rawMessage);
        throw new ExecFailedError(explainError(err, target).message);
      } finally {
        restore();
      }
    });
}
