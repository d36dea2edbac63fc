// Runs the real `coral` CLI as a child process, as a user would.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

export const coralBin = fileURLToPath(new URL("../../cli/bin/coral.js", import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCoral(args: string[], options: { cwd?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [coralBin, ...args],
      { cwd: options.cwd, env: { ...process.env, NO_COLOR: "1", ...options.env }, timeout: options.timeoutMs ?? 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
