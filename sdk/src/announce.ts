// How an agent finds the SDK of the process it observes: the SDK writes
// <dir>/<pid>.json (dir: CORAL_SDK_DIR, else <tmpdir>/coral-sdk, mode 0700)
// with its port and a random token, removed on shutdown. The token guards
// the calls that change the app (flags, rollbacks); reading the file needs
// the app's user (or root), like reading its /proc entries.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SdkAnnouncement {
  pid: number;
  port: number;
  token: string;
  serviceName: string;
}

export function sdkAnnounceDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.CORAL_SDK_DIR || join(tmpdir(), "coral-sdk");
}

export function writeAnnouncement(a: SdkAnnouncement, dir = sdkAnnounceDir()): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${a.pid}.json`);
  writeFileSync(path, JSON.stringify(a) + "\n", { mode: 0o600 });
  return path;
}

export function removeAnnouncement(path: string): void {
  rmSync(path, { force: true });
}

/** The announcement of `pid`, or null when it has none (or it is unreadable). */
export function readAnnouncement(pid: number, dir = sdkAnnounceDir()): SdkAnnouncement | null {
  try {
    const parsed = JSON.parse(readFileSync(join(dir, `${pid}.json`), "utf8")) as Partial<SdkAnnouncement>;
    if (typeof parsed.port !== "number" || typeof parsed.token !== "string" || parsed.pid !== pid) return null;
    return { pid, port: parsed.port, token: parsed.token, serviceName: String(parsed.serviceName ?? "") };
  } catch {
    return null;
  }
}

export const sdkTokenHeader = "x-coral-sdk-token";
