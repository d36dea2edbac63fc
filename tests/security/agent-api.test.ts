// Attacks on an agent's API, as a stranger on the network (or any join token
// holder) would make them, against a real agent process enrolled with a real
// colony. Each request also carries the old colony-secret proof every join
// token held, so the agent before colony signatures would have obeyed it.
import http from "node:http";
import { create, toBinary } from "@bufbuild/protobuf";
import { AgentService, QueryMetricsRequestSchema } from "@coral/proto/gen/coral/agent/v1/agent_pb";
import { AgentExecService, ExecRequestSchema } from "@coral/proto/gen/coral/agent/v1/exec_pb";
import { existsSync } from "node:fs";
import { generateIdentityKey } from "@coral/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { colonyCallHeader, colonySigned, generatedBody, memoryOf, oldSecretProof, projectSecret, rawPost, startAgentProcess, type AgentProcess } from "./agent-harness.ts";

const MiB = 1024 * 1024;
const queryMetrics = `/${AgentService.typeName}/QueryMetrics`;
const getEvents = `/${AgentService.typeName}/GetEvents`;
const json = { "content-type": "application/json" };

describe("the agent API against attackers", () => {
  let project: TestProject & AsyncDisposable;
  let colonyUrl: string;
  let agent: AgentProcess;
  let secret: string;
  const oldProof = () => ({ "x-coral-proof": oldSecretProof(secret, agent.agentId) });

  beforeAll(async () => {
    project = await createTestProject();
    colonyUrl = (await project.start()).url;
    secret = projectSecret(project);
    agent = await startAgentProcess(project, colonyUrl, { service: "api", port: await freePort() });
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    await project?.[Symbol.asyncDispose]();
  });

  /** The colony asking the agent for raw metrics: the signed call every test ends with. */
  async function colonyStillServed(): Promise<void> {
    expect(agent.child.exitCode).toBeNull();
    const res = await colonyApi(colonyUrl, project.localToken).queryMetrics({ service: "api", raw: true, metricName: "health_up" });
    expect(res.unavailable).toEqual([]);
  }

  it("a 300 MiB unauthenticated POST gets 413 at once; the agent's memory stays flat and it still serves its colony", async () => {
    const before = memoryOf(agent.child.pid!);
    const announced = generatedBody(300 * MiB);
    const big = await rawPost(agent.apiUrl + queryMetrics, { ...json, ...oldProof(), "content-length": String(300 * MiB) }, announced.stream);
    expect({ status: big.status, body: JSON.parse(big.body) as unknown }).toEqual({
      status: 413,
      body: { code: "resource_exhausted", message: `request body of ${300 * MiB} bytes is over this agent's limit of ${MiB} bytes` },
    });
    expect(big.ms).toBeLessThan(5_000);
    // The agent never read it: only what socket buffers hold left the client.
    expect(announced.sent()).toBeLessThan(32 * MiB);

    // The same without a length (chunked): refused on its missing signature, also unread.
    const chunked = generatedBody(300 * MiB);
    const unsigned = await rawPost(agent.apiUrl + queryMetrics, { ...json, ...oldProof() }, chunked.stream);
    expect(unsigned.status).toBe(401);
    expect(chunked.sent()).toBeLessThan(32 * MiB);

    const after = memoryOf(agent.child.pid!);
    expect(after.rss - before.rss).toBeLessThan(50 * MiB);
    expect(after.peak - before.peak).toBeLessThan(50 * MiB);
    await colonyStillServed();
  }, 120_000);

  it.each([
    ["no signature", async () => ({})],
    ["a signature by another key", async () => ({ [colonyCallHeader]: await colonySigned(await generateIdentityKey(), agent.agentId, queryMetrics, new Uint8Array()) })],
    ["the colony's signature for another agent", async () => ({ [colonyCallHeader]: await colonySigned(project.colonyKey, "api-000000", queryMetrics, new Uint8Array()) })],
    ["a malformed signature", async () => ({ [colonyCallHeader]: "v1.1.2.3.4" })],
  ])("%s: 401 while the client is still sending an endless body", async (_, header) => {
    const endless = generatedBody();
    const answer = await rawPost(agent.apiUrl + queryMetrics, { ...json, ...oldProof(), ...(await header()) }, endless.stream);
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body)).toMatchObject({ code: "unauthenticated" });
    expect(endless.ended()).toBe(false);
    endless.stream.destroy();
    await colonyStillServed();
  }, 60_000);

  it("a client that waits for 100 Continue is refused before it sends a byte; the colony's gets its Continue", async () => {
    const post = (headers: Record<string, string>, body: Uint8Array) =>
      new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
        const req = http.request(agent.apiUrl + queryMetrics, { method: "POST", headers: { ...headers, expect: "100-continue", "content-length": String(body.length) } });
        let continued = false;
        req.on("continue", () => {
          continued = true;
          req.end(body);
        });
        req.on("response", (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode ?? 0, continued }));
        });
        req.on("error", reject);
        req.flushHeaders();
      });
    expect(await post({ "content-type": "application/proto", ...oldProof() }, new Uint8Array(512 * 1024))).toEqual({ status: 401, continued: false });
    const empty = new Uint8Array();
    expect(await post({ "content-type": "application/proto", [colonyCallHeader]: await colonySigned(project.colonyKey, agent.agentId, queryMetrics, empty) }, empty)).toEqual({
      status: 200,
      continued: true,
    });
  });

  it("a colony signature works once, for its method and body only", async () => {
    const cpu = toBinary(QueryMetricsRequestSchema, create(QueryMetricsRequestSchema, { metricName: "cpu_percent" }));
    const memory = toBinary(QueryMetricsRequestSchema, create(QueryMetricsRequestSchema, { metricName: "memory_bytes" }));
    const send = (path: string, signature: string, body: Uint8Array, binary = true) =>
      rawPost(
        agent.apiUrl + path,
        { "content-type": binary ? "application/proto" : "application/json", [colonyCallHeader]: signature, ...oldProof() },
        binary ? body : JSON.stringify({ metricName: path === queryMetrics ? "cpu_percent" : "" }),
      );

    // The colony's own call works, binary or JSON (the signature is over the message, not its encoding).
    const signed = await colonySigned(project.colonyKey, agent.agentId, queryMetrics, cpu);
    expect((await send(queryMetrics, signed, cpu)).status).toBe(200);
    expect((await send(queryMetrics, await colonySigned(project.colonyKey, agent.agentId, queryMetrics, cpu), cpu, false)).status).toBe(200);

    // Replayed as it was: refused.
    const replay = await send(queryMetrics, signed, cpu);
    expect([replay.status, JSON.parse(replay.body)]).toEqual([401, { code: "unauthenticated", message: "this signature was already used: each colony call is signed afresh" }]);

    // A fresh signature on another method: refused.
    const elsewhere = await send(getEvents, await colonySigned(project.colonyKey, agent.agentId, queryMetrics, cpu), cpu);
    expect([elsewhere.status, JSON.parse(elsewhere.body)]).toEqual([
      401,
      { code: "unauthenticated", message: `the ${colonyCallHeader} signature is not this agent's colony's for this agent and method` },
    ]);

    // A fresh signature with another body: refused once the body is read.
    const swapped = await send(queryMetrics, await colonySigned(project.colonyKey, agent.agentId, queryMetrics, cpu), memory);
    expect([swapped.status, JSON.parse(swapped.body)]).toEqual([401, { code: "unauthenticated", message: "the request body does not match the colony's signature" }]);

    // Signed by another Ed25519 key, and signed six minutes ago: refused.
    expect((await send(queryMetrics, await colonySigned(await generateIdentityKey(), agent.agentId, queryMetrics, cpu), cpu)).status).toBe(401);
    const stale = await send(queryMetrics, await colonySigned(project.colonyKey, agent.agentId, queryMetrics, cpu, { timestampMs: Date.now() - 6 * 60_000 }), cpu);
    expect([stale.status, JSON.parse(stale.body)]).toEqual([401, { code: "unauthenticated", message: expect.stringContaining("check the clocks of both machines") }]);
    await colonyStillServed();
  }, 60_000);

  it("a malformed body the colony signed answers invalid_argument, not internal", async () => {
    const garbage = new Uint8Array([0xff, 0xff, 0xff]);
    const answer = await rawPost(
      agent.apiUrl + queryMetrics,
      { "content-type": "application/proto", [colonyCallHeader]: await colonySigned(project.colonyKey, agent.agentId, queryMetrics, garbage) },
      garbage,
    );
    expect([answer.status, JSON.parse(answer.body)]).toEqual([
      400,
      { code: "invalid_argument", message: expect.stringContaining("the request body is not a coral.agent.v1.QueryMetricsRequest in protobuf binary") },
    ]);
    const badJson = "{not json";
    const jsonAnswer = await rawPost(agent.apiUrl + queryMetrics, { ...json, [colonyCallHeader]: await colonySigned(project.colonyKey, agent.agentId, queryMetrics, new Uint8Array()) }, badJson);
    expect([jsonAnswer.status, (JSON.parse(jsonAnswer.body) as { code: string }).code]).toEqual([400, "invalid_argument"]);
  });

  it("an exec the colony signed for one command cannot be made to run another, nor be replayed", async () => {
    const execPath = `/${AgentExecService.typeName}/Exec`;
    const marker = `/tmp/coral-exec-attack-${process.pid}`;
    const signedFor = toBinary(ExecRequestSchema, create(ExecRequestSchema, { argv: ["true"], host: true }));
    const swappedIn = toBinary(ExecRequestSchema, create(ExecRequestSchema, { argv: ["sh", "-c", `touch ${marker}`], host: true }));
    // Connect's streaming framing: one envelope (flags 0, big-endian length, the message).
    const envelope = (message: Uint8Array) => Buffer.concat([Buffer.from([0, ...new Uint8Array(new Uint32Array([message.length]).buffer).reverse()]), message]);
    const post = async (signature: string, body: Uint8Array) => {
      const answer = await rawPost(agent.apiUrl + execPath, { "content-type": "application/connect+proto", [colonyCallHeader]: signature }, envelope(body));
      return { status: answer.status, text: answer.body };
    };
    const swapped = await post(await colonySigned(project.colonyKey, agent.agentId, execPath, signedFor), swappedIn);
    expect(swapped.text).toContain("the request body does not match the colony's signature");
    expect(existsSync(marker)).toBe(false);

    const signature = await colonySigned(project.colonyKey, agent.agentId, execPath, signedFor);
    const first = await post(signature, signedFor);
    expect(first.status).toBe(200);
    expect(first.text).not.toContain("unauthenticated");
    const replayed = await post(signature, signedFor);
    expect(replayed.text).toContain("this signature was already used");
    await colonyStillServed();
  });
});
