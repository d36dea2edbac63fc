import { describe, expect, it } from "vitest";
import { agentPermissions, renderServerConfig } from "./server-config.ts";
import { decodeTelemetryMessage } from "./ingestion.ts";
import { agentInboxPrefix, agentSubjectPrefix, deadLetterSubject, parseTelemetrySubject, streamName, streamSubjects, telemetrySubject } from "./subjects.ts";
import { encodeBatch, makeBatch } from "./testing.ts";

describe("telemetry subjects", () => {
  it.each([
    ["shop-dev", "api-1", "coral.shop-dev.agent.api-1.telemetry"],
    ["c", "A_b-9", "coral.c.agent.A_b-9.telemetry"],
  ])("telemetrySubject(%s, %s) is %s and parses back", (colony, agent, subject) => {
    expect(telemetrySubject(colony, agent)).toBe(subject);
    expect(parseTelemetrySubject(colony, subject)).toEqual({ agentId: agent });
    expect(subject.startsWith(`${agentSubjectPrefix(colony, agent)}.`)).toBe(true);
  });

  it.each([["a.b"], ["*"], [">"], [""], ["with space"], ["x".repeat(129)]])("refuses agent id %j", (agent) => {
    expect(() => telemetrySubject("c", agent)).toThrow(/agent id/);
  });

  it.each([
    ["coral.c.agent.a.events", /is not coral/],
    ["coral.c.agent.a.b.telemetry", /is not coral/],
    ["coral.other.agent.a.telemetry", /belongs to colony "other"/],
    ["nats.c.agent.a.telemetry", /is not coral/],
    ["coral.c.agent.a%.telemetry", /agent id in subject/],
  ])("parseTelemetrySubject rejects %s", (subject, why) => {
    const parsed = parseTelemetrySubject("c", subject);
    expect("error" in parsed && parsed.error).toMatch(why);
  });

  it.each([
    ["shop-dev", "CORAL_SHOP_DEV"],
    ["a1_b2", "CORAL_A1_B2"],
  ])("streamName(%s) is %s", (colony, name) => {
    expect(streamName(colony)).toBe(name);
  });

  it("captures only agents' telemetry and the dead-letter subject in the stream", () => {
    expect(streamSubjects("c")).toEqual(["coral.c.agent.*.telemetry", "coral.c.deadletter"]);
    expect(deadLetterSubject("c")).toBe("coral.c.deadletter");
    expect(parseTelemetrySubject("c", deadLetterSubject("c"))).toHaveProperty("error");
  });

  it("gives each agent its own inbox prefix: one subject token, apart per colony and per agent", () => {
    const a = agentInboxPrefix("shop-dev", "api-1");
    expect(a).toMatch(/^_INBOX_[0-9a-f]{8}_api-1$/);
    expect(a).not.toContain(".");
    expect(agentInboxPrefix("shop-dev", "api-1")).toBe(a);
    expect(agentInboxPrefix("shop-prod", "api-1")).not.toBe(a);
    expect(agentInboxPrefix("shop-dev", "api-2")).not.toBe(a);
    expect(() => agentInboxPrefix("shop-dev", "a.b")).toThrow(/agent id/);
  });
});

describe("decodeTelemetryMessage", () => {
  const subject = telemetrySubject("c", "a1");
  it("accepts a batch from the subject's agent", () => {
    const decoded = decodeTelemetryMessage("c", subject, encodeBatch(makeBatch("a1", "b1")));
    expect("batch" in decoded && decoded.batch.batchId).toBe("b1");
  });
  it.each([
    ["undecodable bytes", subject, new Uint8Array([0x0a, 0xff, 0x01]), /not a protobuf TelemetryBatch/],
    ["another agent's batch", subject, encodeBatch(makeBatch("a2", "b1")), /does not match/],
    ["a batch without id", subject, encodeBatch(makeBatch("a1", "")), /batch_id is empty/],
    ["a foreign subject", "coral.c.agent.a1.logs", encodeBatch(makeBatch("a1", "b1")), /is not coral/],
  ])("calls %s poison", (_what, subj, data, why) => {
    const decoded = decodeTelemetryMessage("c", subj, data);
    expect("error" in decoded && decoded.error).toMatch(why);
  });
});

describe("server config", () => {
  it("gives agents only their own telemetry subject to publish and their own inbox to subscribe", () => {
    const inbox = agentInboxPrefix("c", "a1");
    expect(agentPermissions("coral.c.agent.a1", inbox)).toEqual({ publish: { allow: ["coral.c.agent.a1.telemetry"] }, subscribe: { allow: [`${inbox}.>`] } });
    const text = renderServerConfig({
      host: "127.0.0.1",
      port: 4333,
      storeDir: "/data/.coral/nats",
      pidFile: "/data/.coral/nats-server.pid",
      colony: { user: "colony", password: "pw-colony" },
      agents: [{ agentId: "a1", user: "agent-a1", password: "pw-a1", subjectPrefix: "coral.c.agent.a1", createdAt: "", inboxPrefix: inbox }],
    });
    expect(text).toContain("max_payload: 1048576");
    expect(text).toContain('listen: "127.0.0.1:4333"');
    expect(text).toContain('store_dir: "/data/.coral/nats"');
    expect(text).toContain('{ user: "colony", password: "pw-colony" }');
    expect(text).toContain(
      `{ user: "agent-a1", password: "pw-a1", permissions: { publish: { allow: ["coral.c.agent.a1.telemetry"] }, subscribe: { allow: ["${inbox}.>"] } } }`,
    );
  });
});
