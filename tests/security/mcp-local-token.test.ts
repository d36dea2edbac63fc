// Issue 17, Low "the MCP HTTP server relays the loopback-only local token",
// written as the attack: `coral mcp server --transport http` listening
// beyond loopback, a real colony behind it, and a caller on another address
// who holds the colony's local token. The colony accepts that token from
// loopback only, and the MCP server calls the colony from loopback.
import http from "node:http";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { networkInterfaces } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { startHttpServer, type HttpServerProcess } from "../mcp/helpers.ts";

const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "attacker", version: "1" } } };

/** This machine's address on a real interface: a caller from it is not on loopback. */
function outsideAddress(): string {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
  if (!address) throw new Error("this test needs a non-loopback IPv4 interface to call from");
  return address;
}

let project: TestProject;
let server: HttpServerProcess;
let port: number;
let colonyUrl: string;

beforeAll(async () => {
  project = await createTestProject();
  const colony = await project.start();
  colonyUrl = colony.url;
  port = await freePort();
  server = await startHttpServer(
    { cwd: project.dir, env: { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port } },
    port,
    { extraArgs: ["--host", "0.0.0.0"], fromSource: true },
  );
}, 180_000);
afterAll(async () => {
  await server?.[Symbol.asyncDispose]();
  await project?.[Symbol.asyncDispose]();
});

function post(host: string, token: string | undefined, body = JSON.stringify(initialize)) {
  return fetch(`http://${host}:${port}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });
}

describe("coral mcp server over HTTP, beyond loopback", () => {
  it("does not relay the colony's local token for a remote caller", async () => {
    const remote = await post(outsideAddress(), project.localToken);
    expect(remote.status).toBe(403);
    expect(((await remote.json()) as { error: { message: string } }).error.message).toBe(
      "the colony's local token works only on the colony's machine, not through this MCP server for a remote caller: " +
        "create a token for the assistant with: coral token create --name assistant --scope read",
    );
    // On the machine itself it still works, as it does against the colony directly.
    expect((await post("127.0.0.1", project.localToken)).status).toBe(200);
    expect(server.stderr()).toMatch(/listening on 0\.0\.0\.0, beyond loopback: callers need a colony token of their own/);
  });

  it("started with --colony-url from a folder without that colony (so it cannot know the local token), it still gets the token refused for a remote caller", async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), "coral-mcp-elsewhere-"));
    const otherPort = await freePort();
    await using relay = await startHttpServer({ cwd: elsewhere, env: { CORAL_HOME: join(elsewhere, "home") } }, otherPort, {
      extraArgs: ["--host", "0.0.0.0", "--colony-url", colonyUrl],
      fromSource: true,
    });
    const call = (host: string) =>
      fetch(`http://${host}:${otherPort}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${project.localToken}` },
        body: JSON.stringify(initialize),
      });
    const remote = await call(outsideAddress());
    // The relay names the remote caller (x-coral-relayed-for); the colony refuses its local token.
    const answer = await remote.text();
    expect(answer).toMatch(/the local token only works on the colony's own machine/);
    expect(remote.status).toBe(401);
    // From the machine itself the relay adds nothing, and the colony accepts it as before.
    expect((await call("127.0.0.1")).status).toBe(200);
    expect(relay.stderr()).not.toContain(project.localToken);
  });

  it("serves a remote caller with a token of its own, in that token's scope", async () => {
    const { token } = await colonyApi(colonyUrl, project.localToken).createToken({ name: "assistant", scope: 1 });
    const remote = await post(outsideAddress(), token);
    expect(remote.status).toBe(200);
    const call = await post(
      outsideAddress(),
      token,
      JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "coral_debug_detach", arguments: { session: "none" } } }),
    );
    // A read token cannot do what the local token could: the colony refuses the admin call.
    expect(JSON.stringify(await call.json())).toMatch(/DetachUprobe needs an admin token/);
  });

  it("checks the caller, then the declared size, before reading a body", async () => {
    const headersOnly = (token: string | undefined, bytes: number) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request({
          host: outsideAddress(),
          port,
          method: "POST",
          path: "/mcp",
          headers: { "content-type": "application/json", "content-length": String(bytes), ...(token ? { authorization: `Bearer ${token}` } : {}) },
        });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.setTimeout(20_000, () => req.destroy(new Error("no answer before the body: the server waited to read it")));
        req.flushHeaders();
      });
    expect(await headersOnly(undefined, 512 * 1024)).toBe(401);
    expect(await headersOnly(project.localToken, 512 * 1024)).toBe(403);
    const { token } = await colonyApi(colonyUrl, project.localToken).createToken({ name: "big", scope: 1 });
    expect(await headersOnly(token, 64 * 1024 * 1024)).toBe(413);
  });
});
