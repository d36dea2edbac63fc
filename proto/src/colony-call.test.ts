import { describe, expect, it } from "vitest";
import { colonyCallHeader, sha256Hex, signColonyCall, verifyColonyCall } from "./colony-call.ts";
import { generateIdentityKey } from "./signing.ts";

const colony = await generateIdentityKey();
const stranger = await generateIdentityKey();
const procedure = "/coral.agent.v1.AgentService/QueryMetrics";
const bodySha256 = await sha256Hex(new TextEncoder().encode("body"));
const now = 1_700_000_000_000;
const expect_ = { agentId: "api-1a2b3c", procedure, nowMs: now };

describe("colony call signatures", () => {
  it("verify returns what was signed: time, nonce and body hash", async () => {
    const header = await signColonyCall(colony, { agentId: "api-1a2b3c", procedure, bodySha256, timestampMs: now, nonce: "ab".repeat(16) });
    expect(header).toMatch(/^v1\.1700000000000\.(ab){16}\.[0-9a-f]{64}\.[A-Za-z0-9_-]{86}$/);
    expect(await verifyColonyCall(colony.publicKey, header, expect_)).toEqual({ timestampMs: now, nonce: "ab".repeat(16), bodySha256 });
  });

  it("sha256Hex is SHA-256 in hex", async () => {
    expect(await sha256Hex(new Uint8Array())).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  it.each([
    ["another agent", { agentId: "api-ffffff" }, "not this agent's colony's"],
    ["another method", { procedure: "/coral.control.v1.RollbackControlService/ExecuteRollback" }, "not this agent's colony's"],
    ["six minutes later", { nowMs: now + 6 * 60_000 }, "made 360s before this agent's clock"],
    ["six minutes earlier", { nowMs: now - 6 * 60_000 }, "made 360s ahead of this agent's clock"],
  ])("refuses a signature checked for %s", async (_, change, error) => {
    const header = await signColonyCall(colony, { agentId: "api-1a2b3c", procedure, bodySha256, timestampMs: now });
    expect(await verifyColonyCall(colony.publicKey, header, { ...expect_, ...change })).toEqual({ error: expect.stringContaining(error) });
  });

  it("refuses a signature by another key, and a changed body hash", async () => {
    const forged = await signColonyCall(stranger, { agentId: "api-1a2b3c", procedure, bodySha256, timestampMs: now });
    expect(await verifyColonyCall(colony.publicKey, forged, expect_)).toHaveProperty("error");
    const header = await signColonyCall(colony, { agentId: "api-1a2b3c", procedure, bodySha256, timestampMs: now });
    const otherBody = header.replace(bodySha256, await sha256Hex(new Uint8Array([1])));
    expect(await verifyColonyCall(colony.publicKey, otherBody, expect_)).toHaveProperty("error");
  });

  it.each([
    [undefined, `missing ${colonyCallHeader} header`],
    ["", `missing ${colonyCallHeader} header`],
    ["v1.1.2.3.4", `malformed ${colonyCallHeader} header`],
    [`v2.${now}.${"a".repeat(32)}.${"b".repeat(64)}.${"c".repeat(86)}`, "malformed"],
    [`v1.${now}.${"a".repeat(32)}.${"b".repeat(64)}.${"c".repeat(86)}`, "not this agent's colony's"],
  ])("refuses header %j", async (header, error) => {
    expect(await verifyColonyCall(colony.publicKey, header, expect_)).toEqual({ error: expect.stringContaining(error) });
  });

  it("refuses when the pinned key itself is not a key", async () => {
    const header = await signColonyCall(colony, { agentId: "api-1a2b3c", procedure, bodySha256, timestampMs: now });
    expect(await verifyColonyCall("bm90IGEga2V5", header, expect_)).toHaveProperty("error");
  });
});
