// Test helpers for this folder's tests (not exported from index.ts).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pollUntil } from "@coral/common/async";
import { openAgentStore } from "./store.ts";
import type { AgentStore, OpenAgentStoreOptions } from "./types.ts";

/** A temp directory and the stores opened in it; dispose closes them and deletes the directory. */
export async function tempStores(): Promise<{
  dir: string;
  open(name?: string, options?: OpenAgentStoreOptions): Promise<AgentStore>;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), "agent-storage-"));
  const stores: AgentStore[] = [];
  return {
    dir,
    async open(name = "agent.sqlite", options = {}) {
      const s = await openAgentStore(join(dir, name), options);
      stores.push(s);
      return s;
    },
    async [Symbol.asyncDispose]() {
      for (const s of stores) await s.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` (every 10 ms) until it returns a truthy value or the deadline passes. */
export function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000): Promise<NonNullable<T>> {
  return pollUntil(async () => (await check()) || undefined, { what, timeoutMs, intervalMs: 10 }) as Promise<NonNullable<T>>;
}

export const T0 = new Date("2024-05-01T10:00:00.000Z");
export const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);
