// Property-based fuzzing of the SDK's request decoding (issue 17: every
// decoder at a trust boundary), against a real app using the SDK: whatever
// arrives, the answer is a Connect error with a 4xx status or a real answer,
// never a 5xx, and the app keeps serving.
import { create, toBinary } from "@bufbuild/protobuf";
import { FeatureFlagControlService, SyncFlagsRequestSchema } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { CoralAppService } from "@coral/proto/gen/coral/sdk/v1/sdk_pb";
import { findAnnouncement } from "@coral/sdk";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plainEnv, sharedTmp, startSdkApp, type SdkApp } from "../control/sdk-harness.ts";

const connectCodes = new Set([
  "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied",
  "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "unavailable", "data_loss", "unauthenticated",
]);
const paths = [
  ...[CoralAppService, FeatureFlagControlService, RollbackControlService].flatMap((s) => s.methods.map((m) => `/${s.typeName}/${m.name}`)),
  "/",
  "/coral.sdk.v1.CoralAppService/",
  "/coral.sdk.v1.CoralAppService/GetInfo/",
  "/coral.sdk.v1.CoralAppService/../GetInfo",
];

let app: SdkApp;
let token: string;

beforeAll(async () => {
  // The fuzzed rollbacks reach the app's handler; mode "throw" keeps it from switching versions.
  app = await startSdkApp({ env: plainEnv(await sharedTmp()), mode: "throw" });
  token = findAnnouncement(app.pid).announcement!.token;
});
afterAll(async () => {
  await app?.stop();
});

/** JSON values, including deep and odd ones, as request bodies. */
const jsonBody = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v));
/** Values shaped like the SDK's messages, with wrong types and extremes mixed in. */
const messageLike = fc
  .record(
    {
      component: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
      service: fc.oneof(fc.string(), fc.constant("checkout")),
      flags: fc.oneof(
        fc.array(fc.record({ name: fc.string(), enabled: fc.oneof(fc.boolean(), fc.string()), rolloutPercentage: fc.oneof(fc.integer(), fc.double()), userIds: fc.array(fc.string()) }, { requiredKeys: [] }), { maxLength: 5 }),
        fc.string(),
      ),
      generatedAt: fc.oneof(fc.string(), fc.constant("9999-12-31T23:59:59Z"), fc.constant("0001-01-01T00:00:00Z"), fc.integer()),
      rollbackId: fc.oneof(fc.string({ maxLength: 300 }), fc.integer()),
      targetVersion: fc.string(),
    },
    { requiredKeys: [] },
  )
  .map((v) => JSON.stringify(v));
const binaryBody = fc.oneof(
  fc.uint8Array({ maxLength: 512 }),
  // Valid messages with random bytes appended or cut short.
  fc.tuple(fc.array(fc.string(), { maxLength: 4 }), fc.uint8Array({ maxLength: 16 }), fc.nat(64)).map(([names, tail, cut]) => {
    const valid = toBinary(SyncFlagsRequestSchema, create(SyncFlagsRequestSchema, { flags: names.map((name) => ({ name, enabled: true, rolloutPercentage: 50 })) }));
    const joined = new Uint8Array([...valid, ...tail]);
    return joined.subarray(0, Math.max(0, joined.length - cut));
  }),
);
const request = fc.record({
  path: fc.oneof(fc.constantFrom(...paths), fc.webPath()),
  method: fc.constantFrom("POST", "POST", "POST", "GET", "PUT"),
  contentType: fc.constantFrom("application/json", "application/proto", "application/connect+json", "application/grpc", "text/plain", "application/json; charset=utf-8", ""),
  body: fc.oneof(jsonBody, messageLike, binaryBody, fc.string()),
  protocolVersion: fc.constantFrom(undefined, "1", "2"),
  timeout: fc.constantFrom(undefined, "100", "-1", "abc", "99999999999"),
});

type Req = { path: string; method: string; contentType: string; body: string | Uint8Array; protocolVersion?: string; timeout?: string };

async function send(r: Req, withToken: boolean): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = {};
  if (r.contentType) headers["content-type"] = r.contentType;
  if (r.protocolVersion) headers["connect-protocol-version"] = r.protocolVersion;
  if (r.timeout) headers["connect-timeout-ms"] = r.timeout;
  if (withToken) headers["x-coral-sdk-token"] = token;
  const res = await fetch(`http://127.0.0.1:${app.ready.sdkPort}${r.path.startsWith("/") ? r.path : `/${r.path}`}`, {
    method: r.method,
    headers,
    body: r.method === "GET" ? undefined : typeof r.body === "string" ? r.body : new Uint8Array(r.body),
  });
  return { status: res.status, text: await res.text() };
}

function expectClearAnswer(answer: { status: number; text: string }): void {
  expect(answer.status).toBeLessThan(500);
  if (answer.status === 200) return;
  expect(answer.status).toBeGreaterThanOrEqual(400);
  const body = JSON.parse(answer.text) as { code: string; message: string };
  expect(connectCodes.has(body.code)).toBe(true);
  expect(body.message.length).toBeGreaterThan(0);
}

describe("fuzzing the SDK's request decoding", () => {
  it("answers any request with the token with a clear 4xx Connect error or a real answer, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        expectClearAnswer(await send(r, true));
      }),
      { numRuns: 1000 },
    );
    // Still up and answering.
    expect((await send({ path: "/coral.sdk.v1.CoralAppService/GetInfo", method: "POST", contentType: "application/json", body: "{}" }, true)).status).toBe(200);
  }, 180_000);

  it("answers any request without the token unauthenticated, whatever its body", async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const answer = await send(r, false);
        expect(answer.status).toBe(401);
        expect(JSON.parse(answer.text)).toMatchObject({ code: "unauthenticated" });
      }),
      { numRuns: 300 },
    );
  }, 180_000);
});
