import { describe, expect, it } from "vitest";
import { controlSectionSchema } from "./control-schema.ts";

describe("control section", () => {
  it("keeps the version → revision map the colony sends with a kubernetes intent", () => {
    const parsed = controlSectionSchema.parse({ services: { api: { kubernetes: { revisions: { "1.9.0": 7 } } } } });
    expect(parsed.services.api?.kubernetes?.revisions).toEqual({ "1.9.0": 7 });
  });

  it.each([
    [{ systemd: { unit: "api.service" } }, ["api", "systemd"], "--rollback-systemd-unit UNIT"],
    [{ kubernetes: { deployment: "api" } }, ["api", "kubernetes", "deployment"], "--rollback-k8s-deployment NAME"],
    [{ kubernetes: { namespace: "shop" } }, ["api", "kubernetes", "namespace"], "--rollback-k8s-namespace NS"],
  ])("refuses %j: what agents run is their own configuration", (service, path, flag) => {
    const result = controlSectionSchema.safeParse({ services: { api: service } });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => [i.path, i.message])).toEqual([
      [["services", ...path], `agents now run only what their own configuration names: remove this and start the service's agent with coral connect <service> ${flag}`],
    ]);
  });
});
