// Issue 17, Low: "`coral debug attach` writes under a directory named by the
// server's answer", as the attack: a hostile colony (or anything answering at
// --colony-url) names the session "../../…" so events.json lands outside the
// output folder. The real CLI must refuse to write and stop the session.
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { sessionDir } from "@coral/cli/testing";
import { describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";

/** The attacker: a Connect server that answers AttachUprobe with a session id that climbs out. */
async function hostileColony(sessionId: string) {
  const detached: string[] = [];
  const session = { sessionId, serviceName: "api", functionName: "main.handle", state: "active", durationMs: 1000, sampleRate: 1 };
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(DebugService, {
        attachUprobe: () => ({ session }),
        async *streamUprobeEvents() {
          yield { session: { ...session, state: "completed" }, events: [], done: true };
        },
        detachUprobe: (req) => {
          detached.push(req.sessionId);
          return { session: { ...session, state: "completed" } };
        },
      }),
  });
  const server = http.createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    detached,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

describe("coral debug attach and the session id in its answer", () => {
  it("refuses to write outside --output-dir, and detaches the session it cannot save", { timeout: 60_000 }, async () => {
    const work = await mkdtemp(join(tmpdir(), "coral-debug-path-"));
    const out = join(work, "a", "b", "out");
    const colony = await hostileColony("../../../escaped");
    try {
      const run = await runCoral(["debug", "attach", "api", "-f", "main.handle", "--colony-url", colony.url, "--token", "t", "--output-dir", out], { cwd: work });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('the colony answered with a session id that is not a safe folder name ("../../../escaped"); nothing was written');
      expect(existsSync(join(work, "escaped"))).toBe(false);
      expect(existsSync(out)).toBe(false);
      expect(await readdir(work)).toEqual([]);
      expect(colony.detached).toEqual(["../../../escaped"]);
    } finally {
      await colony.close();
      await rm(work, { recursive: true, force: true });
    }
  });

  it.each(["..", ".", "/etc", "a/b", "dbg-1\u0000", "", "x".repeat(81), "DBG-1"])("sessionDir refuses %j", (id) => {
    expect(() => sessionDir("/tmp/out", id)).toThrow(/not a safe folder name/);
  });

  it("sessionDir keeps a real session id inside the output folder", () => {
    expect(sessionDir("out", "dbg-1a2b3c4d5e")).toBe(resolve("out", "dbg-1a2b3c4d5e"));
  });
});
