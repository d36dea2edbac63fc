// Real processes for the control-plane tests: an app using the Coral SDK
// (sdk-app.ts), `coral connect` beside it, and a colony in a temp project.
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { coralBin } from "../helpers/cli.ts";
import { waitFor } from "../helpers/wait.ts";

const appScript = fileURLToPath(new URL("./sdk-app.ts", import.meta.url));

export interface Proc {
  child: ChildProcess;
  output(): string;
  /** JSON lines the app printed. */
  events(): Array<Record<string, unknown> & { event: string; at: number }>;
  stop(): Promise<void>;
}

function track(child: ChildProcess): Proc {
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return {
    child,
    output: () => out,
    events: () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown> & { event: string; at: number }];
          } catch {
            return [];
          }
        }),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** A unique folder where the app's SDK announces itself and the agent looks. */
export function sdkDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "coral-sdk-test-"));
}

export async function startSdkApp(port: number, version: string, mode: "switch" | "throw" | "slow" | "revert", announceDir: string, service = "checkout"): Promise<Proc> {
  const child = spawn(process.execPath, ["--import", "tsx", appScript, String(port), version, mode, service], {
    env: { ...process.env, CORAL_SDK_DIR: announceDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = track(child);
  await waitFor("the SDK app to start", () => proc.events().some((e) => e.event === "ready"), { timeoutMs: 60_000 });
  return proc;
}

export async function startConnect(projectDir: string, env: Record<string, string>, service: string, port: number, extra: string[] = []): Promise<Proc> {
  const child = spawn(process.execPath, [coralBin, "connect", service, "--port", String(port), "--sample-interval", "250ms", ...extra], {
    cwd: projectDir,
    env: { ...process.env, ...env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = track(child);
  await waitFor("the agent to connect", () => proc.output().includes(`✓ Connected: ${service}`), { timeoutMs: 60_000 });
  return proc;
}

export interface StandInTools {
  /** Put first on the agent's PATH. */
  bin: string;
  /** Every call so far, as "<tool> <args>", in order. */
  calls(): Promise<string[]>;
  /** Each line makes the next call that is exactly that line fail (exit 3), once per listing. */
  failNext(lines: string[]): Promise<void>;
}

/**
 * STAND-INS for systemctl and kubectl (the real ones cannot run here): each
 * call appends "<tool> <args>" to calls.log and succeeds, printing a line,
 * unless fail.txt lists it. `kubectl get` prints 9, as the live revision.
 */
export async function standInTools(): Promise<StandInTools> {
  const bin = await mkdtemp(join(tmpdir(), "coral-standin-bin-"));
  const [log, fail] = [join(bin, "calls.log"), join(bin, "fail.txt")];
  for (const tool of ["systemctl", "kubectl"]) {
    const script = [
      "#!/bin/sh",
      `line="${tool} $*"`,
      `printf '%s\\n' "$line" >> "${log}"`,
      `if [ -f "${fail}" ] && grep -qxF -- "$line" "${fail}"; then`,
      // Strike this listing (the first matching line) so a second listing fails the next call.
      `  L="$line" awk '!struck && $0 == ENVIRON["L"] { struck = 1; next } { print }' "${fail}" > "${fail}.tmp" && mv "${fail}.tmp" "${fail}"`,
      `  echo "${tool} stand-in: failing as told" >&2`,
      "  exit 3",
      "fi",
      tool === "kubectl" ? `case "$1" in get) printf 9 ;; *) echo "${tool} stand-in: ok" ;; esac` : `echo "${tool} stand-in: ok"`,
      "",
    ].join("\n");
    await writeFile(join(bin, tool), script);
    await chmod(join(bin, tool), 0o755);
  }
  return {
    bin,
    calls: async () => (await readFile(log, "utf8").catch(() => "")).split("\n").filter(Boolean),
    failNext: (lines) => writeFile(fail, lines.map((l) => `${l}\n`).join("")),
  };
}
