// Issue 17, Low: "malformed protobuf answers internal instead of
// invalid_argument", as the attack on a real colony: bodies that are not the
// method's message get invalid_argument (HTTP 400) with a message naming
// what was expected, on every kind of method, and the colony serves on.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gzipSync } from "node:zlib";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import type { RunningColony } from "@coral/colony";

let project: TestProject;
let colony: RunningColony;

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
});
afterAll(async () => {
  await project?.[Symbol.asyncDispose]();
});

// A field 1 of wire type 2 (length-delimited) that promises 100 bytes and has 2.
const truncated = new Uint8Array([0x0a, 0x64, 0x41, 0x41]);
// Wire type 7 does not exist.
const badWireType = new Uint8Array([0x0f, 0x01]);

async function post(path: string, body: Uint8Array | string, headers: Record<string, string>) {
  const res = await fetch(`${colony.url}${path}`, { method: "POST", body: typeof body === "string" ? body : new Uint8Array(body), headers: { "connect-protocol-version": "1", ...headers } });
  return { status: res.status, type: res.headers.get("content-type"), body: Buffer.from(await res.arrayBuffer()) };
}

describe("malformed request bodies", () => {
  it.each([
    ["a token service (ColonyService.QueryEvents)", "/coral.colony.v1.ColonyService/QueryEvents", "coral.colony.v1.QueryEventsRequest", true],
    ["the unauthenticated MeshService.Register", "/coral.mesh.v1.MeshService/Register", "coral.mesh.v1.RegisterRequest", false],
  ])("%s answers invalid_argument, not internal", async (_what, path, type, withToken) => {
    const auth: Record<string, string> = withToken ? { authorization: `Bearer ${project.localToken}` } : {};
    for (const body of [truncated, badWireType]) {
      const res = await post(path, body, { "content-type": "application/proto", ...auth });
      expect(res.status).toBe(400);
      const error = JSON.parse(res.body.toString()) as { code: string; message: string };
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(new RegExp(`^body: is not a valid ${type.replace(/\./g, "\\.")} in protobuf binary \\(`));
    }
  });

  it("checks a gzip-compressed body after decompressing it (under the cap)", async () => {
    const res = await post("/coral.colony.v1.ColonyService/QueryEvents", gzipSync(truncated), {
      "content-type": "application/proto",
      "content-encoding": "gzip",
      authorization: `Bearer ${project.localToken}`,
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString())).toMatchObject({ code: "invalid_argument" });
    // A gzip bomb: 64 MiB of zeros in about 64 KiB.
    const bomb = await post("/coral.colony.v1.ColonyService/QueryEvents", gzipSync(Buffer.alloc(64 * 1024 * 1024)), {
      "content-type": "application/proto",
      "content-encoding": "gzip",
      authorization: `Bearer ${project.localToken}`,
    });
    expect(bomb.status).toBe(429);
    expect(JSON.parse(bomb.body.toString())).toEqual({ code: "resource_exhausted", message: "request body is more than 1048576 bytes once decompressed" });
  });

  it("answers malformed JSON invalid_argument too", async () => {
    const res = await post("/coral.colony.v1.ColonyService/QueryEvents", '{"limit": "many"', {
      "content-type": "application/json",
      authorization: `Bearer ${project.localToken}`,
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString())).toMatchObject({ code: "invalid_argument" });
  });

  it("answers a streaming method's malformed envelope in the stream's end", async () => {
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, truncated.byteLength]), truncated]);
    const res = await post("/coral.colony.v1.DebugService/StreamUprobeEvents", envelope, {
      "content-type": "application/connect+proto",
      authorization: `Bearer ${project.localToken}`,
    });
    expect(res.status).toBe(200);
    expect(res.body[0]).toBe(0b10);
    const end = JSON.parse(res.body.subarray(5).toString()) as { error: { code: string; message: string } };
    expect(end.error.code).toBe("invalid_argument");
    expect(end.error.message).toMatch(/^body: is not a valid coral\.colony\.v1\.StreamUprobeEventsRequest in protobuf binary/);
  });

  it("keeps serving", async () => {
    expect((await colonyApi(colony.url, project.localToken).getStatus({})).colonyId).toBe(project.colonyId);
  });
});
