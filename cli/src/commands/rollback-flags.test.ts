import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { rollbackConfigFrom, withRollbackOptions, type RollbackFlags } from "./rollback-flags.ts";

function parse(args: string[]): RollbackFlags {
  const command = withRollbackOptions(new Command("connect")).exitOverride();
  command.parse(args, { from: "user" });
  return command.opts<RollbackFlags>();
}

describe("coral connect --rollback-* flags", () => {
  it.each([
    [[], undefined],
    [["--rollback-systemd-unit", "api@{version}.service"], { systemd: { unit: "api@{version}.service" } }],
    [["--rollback-k8s-deployment", "api"], { kubernetes: { deployment: "api", namespace: "default", context: undefined } }],
    [
      ["--rollback-k8s-deployment", "api", "--rollback-k8s-namespace", "shop", "--rollback-k8s-context", "kind-dev"],
      { kubernetes: { deployment: "api", namespace: "shop", context: "kind-dev" } },
    ],
  ])("%j → %j", (args, config) => {
    expect(rollbackConfigFrom(parse(args))).toEqual(config);
  });

  it.each([
    [["--rollback-systemd-unit", "--now"], "--rollback-systemd-unit"],
    [["--rollback-k8s-deployment", "API"], "--rollback-k8s-deployment"],
    [["--rollback-k8s-namespace", "shop"], "need --rollback-k8s-deployment NAME"],
  ])("refuses %j, naming the flag", (args, message) => {
    expect(() => rollbackConfigFrom(parse(args))).toThrow(message);
  });
});
