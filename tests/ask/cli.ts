// Runs `coral ask ...` as a process, as a user would, through the real `coral` binary.
import { spawn } from "node:child_process";
import { coralBin, type CliResult } from "../helpers/cli.ts";
import { coralSourceArgs } from "../mcp/helpers.ts";


export function runAskCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string | undefined>; input?: string; timeoutMs?: number; fromSource?: boolean } = {},
): Promise<CliResult> {
  // fromSource: the TypeScript sources as they are in the checkout (tests/mcp/coral-source.ts).
  const argv = options.fromSource ? coralSourceArgs(args) : [coralBin, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      cwd: options.cwd,
      env: { ...process.env, NO_COLOR: "1", ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}
