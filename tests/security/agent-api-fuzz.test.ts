// Property-based fuzzing (fast-check) of a real agent's API: random paths,
// headers and bodies from strangers, and random messages of every method the
// agent serves, signed by its colony (so they reach the handlers). Whatever
// comes in, the answer is never a 5xx or an internal error, and the agent
// keeps serving its colony.
import { create, toBinary, toJsonString, ScalarType, type DescField, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { AgentService } from "@coral/proto/gen/coral/agent/v1/agent_pb";
import { AgentDebugService } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import { AgentProfileService } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { FeatureFlagControlService } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService, RollbackPlanService } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { colonyCallHeader, colonySigned, rawPost, startAgentProcess, type AgentProcess, type RawAnswer } from "./agent-harness.ts";

const services: DescService[] = [AgentService, AgentDebugService, AgentProfileService, FeatureFlagControlService, RollbackControlService, RollbackPlanService];
const methods = services.flatMap((s) => s.methods.map((m) => ({ path: `/${s.typeName}/${m.name}`, input: m.input })));

const text = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom("", "api", "--host=evil", "../../etc/passwd", "a b;c", "\u0000", "🙂", "x".repeat(3000)));

function scalar(t: ScalarType): fc.Arbitrary<unknown> {
  switch (t) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.double();
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 2000 }));
    default:
      return fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
  }
}

/** Any message of `desc`: every field random, nested messages to a small depth (oneofs left unset). */
function message(desc: DescMessage, depth = 2): fc.Arbitrary<Record<string, unknown>> {
  const field = (f: DescField): fc.Arbitrary<unknown> | undefined => {
    const one = (kind: "scalar" | "enum" | "message", s?: ScalarType, m?: DescMessage): fc.Arbitrary<unknown> | undefined =>
      kind === "scalar" ? scalar(s!) : kind === "enum" ? fc.integer({ min: -1, max: 6 }) : depth > 0 ? message(m!, depth - 1) : undefined;
    switch (f.fieldKind) {
      case "scalar":
        return scalar(f.scalar);
      case "enum":
        return one("enum");
      case "message":
        return one("message", undefined, f.message);
      case "list": {
        const item = one(f.listKind, f.scalar, f.message);
        return item && fc.array(item, { maxLength: 3 });
      }
      case "map": {
        const value = one(f.mapKind, f.scalar, f.message);
        return value && fc.dictionary(fc.string({ maxLength: 10 }), value, { maxKeys: 3 });
      }
    }
  };
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of desc.fields) {
    const arb = f.oneof ? undefined : field(f);
    if (arb) shape[f.localName] = arb;
  }
  return fc.record(shape, { requiredKeys: [] });
}

/** The message as JSON, or binary when it has no JSON form (a Timestamp out of range). */
function jsonOrBinary(desc: DescMessage, msg: Parameters<typeof toBinary>[1]): string | Uint8Array {
  try {
    return toJsonString(desc, msg);
  } catch {
    return toBinary(desc, msg);
  }
}

/** A Connect error code from an answer, or "" for a success. */
function codeOf(answer: RawAnswer): string {
  if (answer.status === 200) return "";
  try {
    return (JSON.parse(answer.body) as { code?: string }).code ?? `http ${answer.status}`;
  } catch {
    return `http ${answer.status}`;
  }
}

describe("fuzzing the agent API", () => {
  let project: TestProject & AsyncDisposable;
  let colonyUrl: string;
  let agent: AgentProcess;

  beforeAll(async () => {
    project = await createTestProject();
    colonyUrl = (await project.start()).url;
    agent = await startAgentProcess(project, colonyUrl, { service: "api", port: await freePort() });
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    await project?.[Symbol.asyncDispose]();
  });

  async function stillServesItsColony(): Promise<void> {
    expect(agent.child.exitCode).toBeNull();
    const res = await colonyApi(colonyUrl, project.localToken).queryMetrics({ service: "api", raw: true, metricName: "cpu_percent" });
    expect(res.unavailable).toEqual([]);
  }

  it("random paths, headers and bodies: never a 5xx, never internal", async () => {
    const seen = new Set<string>();
    const request = fc.record({
      path: fc.oneof(fc.constantFrom(...methods.map((m) => m.path), "/", "/coral.agent.v1.AgentService/Nope"), fc.string({ maxLength: 30 }).map((s) => `/${encodeURIComponent(s)}`)),
      contentType: fc.constantFrom("application/json", "application/proto", "application/connect+proto", "text/plain", "application/json; charset=utf-8", "application/proto; x=1"),
      body: fc.oneof(fc.uint8Array({ maxLength: 4096 }), fc.json().map((j) => new TextEncoder().encode(j)), fc.constant(new Uint8Array())),
      // none, garbage, or the colony's real signature over the raw bytes (so the body reaches the parser)
      auth: fc.oneof(fc.constant("none"), fc.constant("signed"), fc.string({ maxLength: 120 }).filter((s) => /^[\x21-\x7e]*$/.test(s))),
      // Connect's own headers, with odd values (no tiny timeouts: a deadline the caller sets may pass).
      extra: fc.record(
        {
          "content-encoding": fc.constantFrom("gzip", "br", "identity", "x"),
          "accept-encoding": fc.constantFrom("gzip", "br", "x"),
          "connect-protocol-version": fc.constantFrom("1", "2", "x"),
          "connect-timeout-ms": fc.constantFrom("-1", "x", "99999999999", "60000"),
        },
        { requiredKeys: [] },
      ),
    });
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers: Record<string, string> = { ...r.extra, "content-type": r.contentType };
        if (r.auth === "signed") headers[colonyCallHeader] = await colonySigned(project.colonyKey, agent.agentId, r.path, r.body);
        else if (r.auth !== "none") headers[colonyCallHeader] = r.auth;
        const answer = await rawPost(agent.apiUrl + r.path, headers, r.body);
        seen.add(codeOf(answer));
        expect(answer.status).toBeLessThan(500);
        expect(["internal", "unknown"]).not.toContain(codeOf(answer));
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 300) },
    );
    // The fuzz went past the front door too.
    expect([...seen]).toEqual(expect.arrayContaining(["unauthenticated", "invalid_argument"]));
    await stillServesItsColony();
  }, 300_000);

  it("random messages of every method, signed by the colony: never a 5xx, never internal", async () => {
    const seen = new Set<string>();
    const call = fc.oneof(...methods.map((m) => fc.record({ path: fc.constant(m.path), input: fc.constant(m.input), init: message(m.input), json: fc.boolean() })));
    await fc.assert(
      fc.asyncProperty(call, async ({ path, input, init, json }) => {
        // A valid profile runs for its whole duration (0 = 30 s): keep those short, out-of-range ones as they are.
        if (path.startsWith("/coral.agent.v1.AgentProfileService/")) {
          const d = typeof init.durationMs === "number" ? init.durationMs : 0;
          if (d <= 300_000) init.durationMs = 1 + (d % 300);
        }
        const msg = create(input, init as never);
        const binary = toBinary(input, msg);
        const body = json ? jsonOrBinary(input, msg) : binary;
        const headers = { "content-type": typeof body === "string" ? "application/json" : "application/proto", [colonyCallHeader]: await colonySigned(project.colonyKey, agent.agentId, path, binary) };
        const answer = await rawPost(agent.apiUrl + path, headers, body);
        seen.add(codeOf(answer));
        expect(answer.status, `${path} ${answer.body}`).toBeLessThan(500);
        expect(["internal", "unknown"], `${path} ${answer.body}`).not.toContain(codeOf(answer));
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 400) },
    );
    // Handlers answered (not just the signature check): successes and their own refusals.
    expect([...seen]).toEqual(expect.arrayContaining(["", "invalid_argument"]));
    expect(seen.has("unauthenticated")).toBe(false);
    await stillServesItsColony();
  }, 300_000);
});
