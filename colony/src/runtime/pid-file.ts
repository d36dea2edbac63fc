// The colony's pid file (.coral/colony.pid): how `coral colony stop|status`
// and the CLI's local commands find a running colony. Light on purpose: the
// CLI reads it without loading the colony runtime.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

export interface PidFile {
  pid: number;
  url: string;
  colony_id: string;
  started_at: string;
  /** "wireguard" when the API listens on the mesh address only. */
  mesh_mode?: string;
}

export function pidFilePath(projectDir: string): string {
  return join(projectDir, ".coral", "colony.pid");
}

export async function readPidFile(projectDir: string): Promise<PidFile | null> {
  const path = pidFilePath(projectDir);
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(await readFile(path, "utf8")) as PidFile;
  } catch {
    return null;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

