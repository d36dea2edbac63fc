import { describe, expect, it } from "vitest";
import { directTarget } from "./connect.ts";
import { UsageError } from "./options.ts";

describe("directTarget (a sidecar's colony from its environment)", () => {
  const secret = "cd".repeat(32);

  it("needs both CORAL_COLONY_URL and CORAL_COLONY_SECRET", () => {
    expect(directTarget({})).toBeUndefined();
    expect(directTarget({ CORAL_COLONY_URL: "http://coral-colony:9000" })).toBeUndefined();
    expect(directTarget({ CORAL_COLONY_SECRET: secret })).toBeUndefined();
  });

  it("joins the named colony and keeps its data under CORAL_HOME", () => {
    const target = directTarget({ CORAL_COLONY_URL: "http://coral-colony:9000", CORAL_COLONY_SECRET: ` ${secret}\n`, CORAL_COLONY_ID: "my-shop-prod", CORAL_HOME: "/data/agent" });
    expect(target).toMatchObject({ colonyId: "my-shop-prod", colonyUrl: "http://coral-colony:9000", secret });
    expect(target!.dataDirFor("api")).toBe("/data/agent/agents/my-shop-prod/api");
  });

  it("refuses a malformed secret or URL with a usage error", () => {
    expect(() => directTarget({ CORAL_COLONY_URL: "http://coral-colony:9000", CORAL_COLONY_SECRET: "short" })).toThrow(UsageError);
    expect(() => directTarget({ CORAL_COLONY_URL: "http://coral-colony:9000", CORAL_COLONY_SECRET: "short" })).toThrow(/64 hex characters/);
    expect(() => directTarget({ CORAL_COLONY_URL: "coral-colony:9000", CORAL_COLONY_SECRET: secret })).toThrow(/not an http\(s\) URL/);
  });
});
