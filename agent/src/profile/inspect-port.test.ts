// SIGUSR1 cannot open a Node process's inspector when its inspect port is
// already held (here by a second, real process listening on it): the error
// names the port, the holder and what to do, and the process keeps running.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { inspectPortFromArgs } from "./inspect-port.ts";
import { openInspector } from "./inspector.ts";

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
});

/** Starts `node -e code [args]` and resolves once it printed its first line. */
function startNode(flags: string[], code: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...flags, "-e", code], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.once("data", () => resolve(child));
    child.once("exit", (c) => reject(new Error(`exited (${c}) before it was ready`)));
  });
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

describe("inspect port held", () => {
  it("reads the port from --inspect-port, --inspect=host:port and the default", () => {
    expect(inspectPortFromArgs(["node", "app.js"])).toBe(9229);
    expect(inspectPortFromArgs(["--inspect-port=9333", "node", "app.js"])).toBe(9333);
    expect(inspectPortFromArgs(["node", "--inspect=127.0.0.1:9444", "app.js"])).toBe(9444);
    expect(inspectPortFromArgs(["node", "--inspect-port=0", "app.js"])).toBe(0);
    expect(inspectPortFromArgs(["node", "--inspect=[::1]:9555", "app.js"])).toBe(9555);
  });

  it("says which process holds the port and what to do; the target keeps running", async () => {
    const port = await freePort();
    const holder = await startNode([], `require("net").createServer().listen(${port}, "127.0.0.1", () => console.log("up"))`);
    const app = await startNode([`--inspect-port=${port}`], `setInterval(() => {}, 1000); console.log("ready")`);
    const err = await openInspector(app.pid!, { openTimeoutMs: 2000 }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`its inspect port ${port} is already held by process ${holder.pid} (`);
    expect((err as Error).message).toContain("--inspect-port=0");
    expect(app.exitCode).toBeNull();
    expect(() => process.kill(app.pid!, 0)).not.toThrow();
  });
});
