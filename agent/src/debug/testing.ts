// Test helpers: compile the C target, spawn copies, poll with deadlines.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pollUntil } from "@coral/common/async";

export const TARGET_SRC = fileURLToPath(new URL("./testdata/validate_card.c", import.meta.url));

export function onPath(bin: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => {
    try {
      accessSync(join(d, bin), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Reason the bpftrace tests cannot run here, or undefined. */
export function bpfSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "not root";
  if (!onPath("bpftrace")) return "bpftrace not installed (apt-get install -y --no-install-recommends bpftrace)";
  if (!onPath("gcc")) return "gcc not installed";
  return undefined;
}

export function compileTarget(): string {
  const dir = mkdtempSync(join(tmpdir(), "coral-debug-"));
  const out = join(dir, "validate_card");
  execFileSync("gcc", ["-O0", "-g", "-fno-inline", "-o", out, TARGET_SRC]);
  return out;
}

/** Polls `fn` (every 20 ms) until it returns a truthy value; a throw counts as "not yet". */
export function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  return pollUntil(async () => (await fn()) || undefined, { what, timeoutMs, intervalMs: 20 });
}

export function spawnTarget(bin: string, children: ChildProcess[]): ChildProcess {
  const c = spawn(bin, [], { stdio: "ignore" });
  children.push(c);
  return c;
}
