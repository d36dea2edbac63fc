// Issue 17, "every listening port rejects oversized bodies before reading
// them and checks the caller before the body", written as the attacks on a
// real colony's API port (real DuckDB, real nats-server).
import { once } from "node:events";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { connectError, endStreamError, rawRequest } from "./api-harness.ts";
import type { RunningColony } from "@coral/colony";

const getStatus = "/coral.colony.v1.ColonyService/GetStatus";
const createToken = "/coral.colony.v1.ColonyService/CreateToken";
const register = "/coral.mesh.v1.MeshService/Register";
const streamEvents = "/coral.colony.v1.DebugService/StreamUprobeEvents";
const proto = { "content-type": "application/proto", "connect-protocol-version": "1" };

let project: TestProject;
let colony: RunningColony;
let local: Record<string, string>;

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
  local = { authorization: `Bearer ${project.localToken}` };
});
afterAll(async () => {
  await project?.[Symbol.asyncDispose]();
});

async function stillServes(): Promise<void> {
  const status = await colonyApi(colony.url, project.localToken).getStatus({});
  expect(status.colonyId).toBe(project.colonyId);
}

describe("the colony API refuses oversized bodies before reading them", () => {
  it("answers a declared 300 MiB body at once, without its bytes, and closes the connection", async () => {
    const answer = await rawRequest(colony.url, { path: getStatus, headers: { ...proto, ...local, "content-length": String(300 * 1024 * 1024) } });
    expect(answer.status).toBe(429);
    expect(connectError(answer)).toEqual({ code: "resource_exhausted", message: "request body is 314572800 bytes; GetStatus takes at most 1048576 bytes" });
    // Not drained: the connection ends, so the 300 MiB are never read.
    expect(answer.closedByServer).toBe(true);
    expect(answer.elapsedMs).toBeLessThan(5_000);
    await stillServes();
  });

  it("gives the unauthenticated MeshService a smaller cap (256 KiB)", async () => {
    const answer = await rawRequest(colony.url, { path: register, headers: { ...proto, "content-length": String(512 * 1024) } });
    expect(answer.status).toBe(429);
    expect(connectError(answer).code).toBe("resource_exhausted");
    expect(connectError(answer).message).toMatch(/takes at most 262144 bytes/);
    expect(answer.closedByServer).toBe(true);
  });

  it("stops a chunked body without end at the cap: the colony takes a few MiB of 128, its memory stays flat", async () => {
    const before = process.memoryUsage().rss;
    const answer = await rawRequest(colony.url, {
      path: getStatus,
      headers: { ...proto, ...local, "transfer-encoding": "chunked" },
      flood: { chunkBytes: 64 * 1024, maxBytes: 128 * 1024 * 1024 },
      timeoutMs: 30_000,
    });
    expect(answer.status).toBe(429);
    expect(connectError(answer)).toEqual({ code: "resource_exhausted", message: "request body is more than 1048576 bytes; GetStatus takes at most 1048576 bytes" });
    expect(answer.closedByServer).toBe(true);
    // 1 MiB cap plus what the kernel buffers on loopback: far from the 128 MiB offered.
    expect(answer.bodyBytesWritten).toBeLessThan(32 * 1024 * 1024);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
    await stillServes();
  });
});

describe("callers that misbehave on the wire", () => {
  it("a caller hanging up mid-body, or sending a garbled Host, leaves the colony serving", async () => {
    const { hostname, port } = new URL(colony.url);
    const socket = connect({ host: hostname, port: Number(port) });
    await once(socket, "connect");
    socket.write(`POST ${getStatus} HTTP/1.1\r\nHost: x\r\ncontent-type: application/proto\r\nauthorization: Bearer ${project.localToken}\r\ncontent-length: 1000\r\n\r\n0123456789`);
    socket.destroy();
    const garbled = await rawRequest(colony.url, { path: getStatus, headers: { ...proto, ...local, host: "a b:c", "content-length": "0" }, closeWaitMs: 0 });
    expect(garbled.status).toBeLessThan(500);
    await stillServes();
  });
});

describe("the colony API checks the caller before the body", () => {
  it("refuses a caller without a token without reading a body (one never sent is waited for a second at most)", async () => {
    const answer = await rawRequest(colony.url, { path: getStatus, headers: { ...proto, "content-length": String(100 * 1024) } });
    expect(answer.status).toBe(401);
    expect(connectError(answer).code).toBe("unauthenticated");
    expect(connectError(answer).message).toMatch(/this colony needs a token for remote calls/);
    expect(answer.closedByServer).toBe(true);
  });

  it("refuses an unknown token before the body, and never invites it with 100 Continue", async () => {
    const answer = await rawRequest(colony.url, {
      path: createToken,
      headers: { ...proto, authorization: "Bearer coral_not-a-token", expect: "100-continue", "content-length": String(64 * 1024) },
    });
    expect(answer.statusLines).toEqual(["HTTP/1.1 401 Unauthorized"]);
    expect(connectError(answer)).toEqual({ code: "unauthenticated", message: "token is not valid for this colony" });
  });

  it("refuses a read token calling an admin method before the body", async () => {
    const read = await colonyApi(colony.url, project.localToken).createToken({ name: "reader", scope: 1 });
    const answer = await rawRequest(colony.url, { path: createToken, headers: { ...proto, authorization: `Bearer ${read.token}`, "content-length": "1000" } });
    expect(answer.status).toBe(403);
    expect(connectError(answer)).toEqual({ code: "permission_denied", message: 'CreateToken needs an admin token; "reader" has scope read' });
  });

  it("invites the body with 100 Continue only after the checks pass", async () => {
    const answer = await rawRequest(colony.url, { path: getStatus, headers: { ...proto, ...local, expect: "100-continue", "content-length": "0" }, closeWaitMs: 0 });
    expect(answer.statusLines).toEqual(["HTTP/1.1 100 Continue", "HTTP/1.1 200 OK"]);
  });

  it("answers a streaming method's refusal as a Connect stream end, so clients see the code and message", async () => {
    const answer = await rawRequest(colony.url, {
      path: streamEvents,
      headers: { "content-type": "application/connect+proto", "connect-protocol-version": "1", "content-length": "1000" },
    });
    expect(answer.status).toBe(200);
    expect(endStreamError(answer)).toMatchObject({ code: "unauthenticated" });
  });
});
