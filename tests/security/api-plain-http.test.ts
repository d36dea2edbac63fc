// Issue 17, Low: "no warning when the API listens off loopback without TLS".
// A real colony started on 0.0.0.0 without TLS logs a warning with the fix;
// on loopback it does not.
import { startColony } from "@coral/colony";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { createTestProject } from "../helpers/colony.ts";

const warning = /^The API listens beyond this machine without TLS: tokens and data cross the network in clear\. Set colony\.api\.tls/;

async function startLogged(projectDir: string): Promise<{ lines: Array<{ level: number; msg: string }>; close(): Promise<void> }> {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  const colony = await startColony({ projectDir, logger, apiPort: 0, natsPort: 0 });
  return { lines, close: () => colony.close() };
}

describe("the colony's start-up warning about plain HTTP", () => {
  it("warns with the fix when the API listens on 0.0.0.0 without TLS, and not on loopback", { timeout: 120_000 }, async () => {
    await using project = await createTestProject();
    const quiet = await startLogged(project.dir);
    await quiet.close();
    expect(quiet.lines.filter((l) => warning.test(l.msg))).toEqual([]);

    await project.setConfig(["colony", "api", "host"], "0.0.0.0");
    const open = await startLogged(project.dir);
    await open.close();
    const warned = open.lines.filter((l) => warning.test(l.msg));
    expect(warned).toHaveLength(1);
    expect(warned[0]!.level).toBe(40);
    expect(warned[0]!.msg).toContain("or listen on 127.0.0.1 behind a TLS proxy (coral doctor checks this)");
  });
});
