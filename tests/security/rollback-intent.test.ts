// A rollback request can no longer make an agent run the systemctl/kubectl
// arguments of the sender's choice: the colony sends intents, and the agent
// builds the commands from its own configuration. systemctl and kubectl
// cannot run here: STAND-IN executables first on the agent's PATH record
// each call (tests/control/harness.ts), so the test sees exactly what ran.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { ExecuteRollbackRequestSchema, ExecuteRollbackResponseSchema, RollbackControlService, RollbackStrategy } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { standInTools, type StandInTools } from "../control/harness.ts";
import { createTestProject, serviceApi, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { colonyCallHeader, colonySigned, oldSecretProof, projectSecret, rawPost, startAgentProcess, type AgentProcess } from "./agent-harness.ts";

const execute = `/${RollbackControlService.typeName}/ExecuteRollback`;

/** An ExecuteRollbackRequest as the colony used to send it: with the argv lists (fields 6, 8 and 9) the agent ran. */
function oldStyleRequest(id: string, argv: { commands: string[][]; undo: string[][]; record: string[] }): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).string(id);
  w.tag(2, WireType.LengthDelimited).string("api");
  w.tag(3, WireType.LengthDelimited).string("1.9.0");
  w.tag(4, WireType.LengthDelimited).string("2.0.0");
  w.tag(5, WireType.Varint).int32(RollbackStrategy.SYSTEMD);
  w.tag(7, WireType.Varint).uint32(60);
  const command = (field: number, words: string[]) => {
    w.tag(field, WireType.LengthDelimited).fork();
    for (const word of words) w.tag(1, WireType.LengthDelimited).string(word);
    w.join();
  };
  for (const c of argv.commands) command(6, c);
  for (const c of argv.undo) command(8, c);
  command(9, argv.record);
  // As the message re-encodes (unknown fields last): the bytes the colony would sign.
  return toBinary(ExecuteRollbackRequestSchema, fromBinary(ExecuteRollbackRequestSchema, w.finish()));
}

describe("rollbacks are intents", () => {
  let project: TestProject & AsyncDisposable;
  let colonyUrl: string;
  let agent: AgentProcess;
  let tools: StandInTools;

  beforeAll(async () => {
    project = await createTestProject();
    colonyUrl = (await project.start()).url;
    tools = await standInTools();
    agent = await startAgentProcess(project, colonyUrl, {
      service: "api",
      port: await freePort(),
      version: "2.0.0",
      // The agent's own configuration: the one unit it may stop and start.
      rollback: { systemd: { unit: "api@{version}.service" } },
      path: `${tools.bin}:${process.env.PATH}`,
    });
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    await project?.[Symbol.asyncDispose]();
  });

  it("the old command lines in a request run nothing: a join token holder is refused, and even the colony's own request runs only the configured unit", async () => {
    const body = oldStyleRequest("rb-attack-1", {
      record: ["systemctl", "poweroff"],
      commands: [["systemctl", "--host=attacker.example", "start", "evil.service"]],
      undo: [["kubectl", "delete", "namespace", "prod"]],
    });
    const proof = { "x-coral-proof": oldSecretProof(projectSecret(project), agent.agentId) };

    // Holding a join token (the colony secret) is no longer enough to be heard.
    const stranger = await rawPost(agent.apiUrl + execute, { "content-type": "application/proto", ...proof }, body);
    expect(stranger.status).toBe(401);
    expect(await tools.calls()).toEqual([]);

    // Signed by the colony: the argv lists are ignored; the agent plans from its unit.
    const signed = await rawPost(
      agent.apiUrl + execute,
      { "content-type": "application/proto", [colonyCallHeader]: await colonySigned(project.colonyKey, agent.agentId, execute, body), ...proof },
      body,
    );
    expect(signed.status).toBe(200);
    const res = fromBinary(ExecuteRollbackResponseSchema, signed.bytes);
    expect({ success: res.success, steps: res.steps }).toEqual({
      success: true,
      steps: ["systemctl stop api@2.0.0.service → ok", "systemctl start api@1.9.0.service → ok"],
    });
    expect(await tools.calls()).toEqual(["systemctl stop api@2.0.0.service", "systemctl start api@1.9.0.service"]);
  });

  it.each([
    ["an option as target version", { targetVersion: "--host=attacker.example" }, Code.InvalidArgument, 'target_version: "--host=attacker.example" is not a version'],
    ["a second argument in the version", { targetVersion: "1.9.0 --now" }, Code.InvalidArgument, "target_version"],
    ["a shell word in the current version", { currentVersion: "2.0.0;reboot" }, Code.InvalidArgument, "current_version"],
    ["an option as revision", { strategy: RollbackStrategy.KUBERNETES, targetRevision: "7 --server=evil" }, Code.InvalidArgument, "target_revision"],
    ["a strategy the agent was not started for", { strategy: RollbackStrategy.KUBERNETES }, Code.FailedPrecondition, "this agent is not configured for the kubernetes strategy (start it with coral connect api"],
    ["another service's rollback", { service: "payments" }, Code.InvalidArgument, 'this agent observes api, not "payments"'],
  ])("an intent with %s is refused by the agent and runs nothing", async (_, change, code, message) => {
    const before = await tools.calls();
    const req = create(ExecuteRollbackRequestSchema, {
      rollbackId: `rb-${Math.random().toString(16).slice(2, 10)}`,
      service: "api",
      targetVersion: "1.9.0",
      currentVersion: "2.0.0",
      strategy: RollbackStrategy.SYSTEMD,
      timeoutSeconds: 60,
      ...change,
    });
    const body = toBinary(ExecuteRollbackRequestSchema, req);
    const answer = await rawPost(agent.apiUrl + execute, { "content-type": "application/proto", [colonyCallHeader]: await colonySigned(project.colonyKey, agent.agentId, execute, body) }, body);
    const error = JSON.parse(answer.body) as { code: string; message: string };
    expect([error.code, error.message]).toEqual([Code[code].replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase()), expect.stringContaining(message)]);
    expect(await tools.calls()).toEqual(before);
  });

  it("through the colony: a hostile target is refused by the agent's plan before anything starts", async () => {
    const before = await tools.calls();
    const control = serviceApi(ControlService, colonyUrl, project.localToken);
    const refused = await control.startRollback({ service: "api", targetVersion: "--host=attacker.example", strategy: RollbackStrategy.SYSTEMD }).catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect([(refused as ConnectError).code, (refused as ConnectError).rawMessage]).toEqual([Code.InvalidArgument, expect.stringContaining('target_version: "--host=attacker.example" is not a version')]);
    const dry = await control.startRollback({ service: "api", targetVersion: "1.9.0", strategy: RollbackStrategy.SYSTEMD, dryRun: true });
    expect(dry.rollback?.plan).toEqual(["systemctl stop api@2.0.0.service", "systemctl start api@1.9.0.service"]);
    expect((await control.listRollbacks({})).rollbacks).toEqual([]);
    expect(await tools.calls()).toEqual(before);
  });
});
