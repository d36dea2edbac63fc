// Property-based fuzzing of the colony's API (issue 17: every decoder at a
// trust boundary), against a real colony: for every method of every service
// on the API port, random bytes, broken messages, valid messages with
// extreme field values and random JSON. Whatever arrives, the answer is a
// Connect error the caller caused or a real answer: never internal or a 5xx,
// never a crash, and the colony keeps serving.
import { create, ScalarType, toBinary, type DescField, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { IdentityService } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { MeshService } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { MeshAdminService } from "@coral/proto/gen/coral/mesh/v1/peers_pb";
import type { RunningColony } from "@coral/colony";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";

const services: DescService[] = [ColonyService, DebugService, IdentityService, ControlService, MeshService, MeshAdminService];
const methods = services.flatMap((s) => s.methods);
/** Codes that say the colony failed, not the caller. */
const serverFault = new Set(["internal", "unknown", "data_loss"]);

let project: TestProject;
let colony: RunningColony;

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
});
afterAll(async () => {
  await project?.[Symbol.asyncDispose]();
});

const int32s = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, -1, 2 ** 31 - 1, -(2 ** 31)));
const uint32s = fc.oneof(fc.nat({ max: 2 ** 32 - 1 }), fc.constantFrom(0, 2 ** 32 - 1));
const int64s = fc.oneof(fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n), fc.constantFrom(0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 253402300800n));
const uint64s = fc.oneof(fc.bigInt(0n, 2n ** 64n - 1n), fc.constantFrom(0n, 2n ** 64n - 1n, 2n ** 53n + 1n));
const strings = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom("", "api", "../../etc/passwd", "a".repeat(300), "\u0000", "😀", "{not json", "null", "1h", "-5m", "999999999999d", "DROP TABLE api_tokens;--"),
);

function scalar(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return strings;
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 32 });
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(fc.double(), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1, 1e308));
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return int64s;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return uint64s;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return uint32s;
    default:
      return int32s;
  }
}

function enumValue(values: readonly { number: number }[]): fc.Arbitrary<number> {
  return fc.oneof(fc.constantFrom(...values.map((v) => v.number)), fc.integer({ min: -3, max: 50 }));
}

/** A valid message of `desc` with random, often extreme, field values (nested up to `depth`). */
function message(desc: DescMessage, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const fields = desc.fields.filter((f) => depth > 0 || (f.fieldKind !== "message" && !(f.fieldKind === "list" && f.listKind === "message") && !(f.fieldKind === "map" && f.mapKind === "message")));
  const entries = fields.map((f) => [f, fieldValue(f, depth - 1)] as const);
  return fc.tuple(...entries.map(([, a]) => fc.option(a, { nil: undefined, freq: 3 }))).map((values) => {
    const msg = create(desc) as unknown as Record<string, unknown>;
    values.forEach((value, i) => {
      const field = entries[i]![0];
      if (value === undefined) return;
      if (field.oneof) msg[field.oneof.localName] = { case: field.localName, value };
      else msg[field.localName] = value;
    });
    return msg;
  });
}

function fieldValue(f: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (f.fieldKind) {
    case "scalar":
      return scalar(f.scalar);
    case "enum":
      return enumValue(f.enum.values);
    case "message":
      return message(f.message, depth);
    case "list":
      return fc.array(f.listKind === "scalar" ? scalar(f.scalar) : f.listKind === "enum" ? enumValue(f.enum.values) : message(f.message, depth), { maxLength: 4 });
    case "map": {
      const value = f.mapKind === "scalar" ? scalar(f.scalar) : f.mapKind === "enum" ? enumValue(f.enum.values) : message(f.message, depth);
      return fc.dictionary(fc.string({ maxLength: 12 }), value, { maxKeys: 4 }).map((d) => Object.fromEntries(Object.entries(d)));
    }
  }
}

type Body = { type: "proto" | "json"; bytes: Uint8Array };

function bodies(method: DescMethod): fc.Arbitrary<Body> {
  const valid = message(method.input, 2).map((m) => toBinary(method.input, m as never));
  return fc.oneof(
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 256 }).map((bytes) => ({ type: "proto" as const, bytes })) },
    // Valid messages cut short or with bytes appended.
    {
      weight: 2,
      arbitrary: fc.tuple(valid, fc.uint8Array({ maxLength: 8 }), fc.nat(16)).map(([v, tail, cut]) => {
        const joined = new Uint8Array([...v, ...tail]);
        return { type: "proto" as const, bytes: joined.subarray(0, Math.max(0, joined.length - cut)) };
      }),
    },
    { weight: 4, arbitrary: valid.map((bytes) => ({ type: "proto" as const, bytes })) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => ({ type: "json" as const, bytes: Buffer.from(JSON.stringify(v)) })) },
  );
}

interface Outcome {
  status: number;
  code: string | undefined;
  message: string | undefined;
}

/** Sends one request the way Connect frames it for the method's kind; reads the answer's status and error. */
async function call(method: DescMethod, body: Body): Promise<Outcome> {
  const streaming = method.methodKind !== "unary";
  const headers: Record<string, string> = { "connect-protocol-version": "1", authorization: `Bearer ${project.localToken}` };
  let payload = body.bytes;
  if (streaming) {
    headers["content-type"] = `application/connect+${body.type}`;
    const envelope = Buffer.alloc(5 + payload.byteLength);
    envelope.writeUInt32BE(payload.byteLength, 1);
    envelope.set(payload, 5);
    payload = envelope;
  } else headers["content-type"] = `application/${body.type}`;
  const res = await fetch(`${colony.url}/${method.parent.typeName}/${method.name}`, { method: "POST", headers, body: new Uint8Array(payload), signal: AbortSignal.timeout(20_000) });
  if (!streaming) {
    if (res.status === 200) return { status: 200, code: undefined, message: undefined };
    const error = (await res.json()) as { code: string; message: string };
    return { status: res.status, code: error.code, message: error.message };
  }
  // A stream: its end carries the outcome. A stream that runs (a real session) is not a fault: stop reading.
  const bytes = Buffer.from(await res.arrayBuffer());
  for (let offset = 0; offset + 5 <= bytes.byteLength; ) {
    const length = bytes.readUInt32BE(offset + 1);
    if (bytes[offset]! & 0b10) {
      const end = JSON.parse(bytes.subarray(offset + 5, offset + 5 + length).toString()) as { error?: { code: string; message: string } };
      return { status: res.status, code: end.error?.code, message: end.error?.message };
    }
    offset += 5 + length;
  }
  return { status: res.status, code: undefined, message: undefined };
}

describe("fuzzing every method of the colony API", () => {
  it.each(methods.map((m) => [`${m.parent.name}.${m.name}`, m] as const))("%s: never internal, never 5xx", { timeout: 180_000 }, async (_name, method) => {
    await fc.assert(
      fc.asyncProperty(bodies(method), async (body) => {
        const outcome = await call(method, body);
        expect(outcome.status, JSON.stringify(outcome)).toBeLessThan(500);
        expect(serverFault.has(outcome.code ?? ""), JSON.stringify(outcome)).toBe(false);
      }),
      { numRuns: Number(process.env.CORAL_FUZZ_RUNS ?? 40) },
    );
  });

  it("serves afterwards", async () => {
    expect((await colonyApi(colony.url, project.localToken).getStatus({})).colonyId).toBe(project.colonyId);
  });
});
