// Test helpers: temporary folders and a temporary $CORAL_HOME.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function tempDir(prefix = "coral-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Points CORAL_HOME at a new temporary folder; the returned function restores it and removes the folders. */
export async function useTempCoralHome(): Promise<{ home: string; restore: () => Promise<void> }> {
  const previous = process.env.CORAL_HOME;
  const home = await tempDir("coral-home-");
  process.env.CORAL_HOME = home;
  return {
    home,
    restore: async () => {
      if (previous === undefined) delete process.env.CORAL_HOME;
      else process.env.CORAL_HOME = previous;
      await rm(home, { recursive: true, force: true });
    },
  };
}
