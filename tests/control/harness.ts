// Real processes for the control-plane tests: an app using the Coral SDK
// (sdk-app.ts), `coral connect` beside it, and a colony in a temp project.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
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

export async function startSdkApp(port: number, version: string, mode: "switch" | "throw" | "slow", announceDir: string, service = "checkout"): Promise<Proc> {
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
