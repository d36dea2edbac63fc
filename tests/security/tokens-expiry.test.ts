// Issue 17, Low: "API tokens never expire", as the attack: a token that
// leaked (an old laptop, a CI log) keeps working forever. Now every CLI token
// has an expiry (90 days unless asked), checked on every call before the
// body is read; only `--ttl never` makes one that does not expire, and it
// says so.
import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import type { RunningColony } from "@coral/colony";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { runCoral } from "../helpers/cli.ts";
import { connectError, rawRequest } from "./api-harness.ts";

let project: TestProject;
let colony: RunningColony;

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
});
afterAll(async () => {
  await project?.[Symbol.asyncDispose]();
});

const day = 86_400_000;

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call was accepted");
}

describe("CLI tokens expire", () => {
  it("refuses a token past its expiry, before reading the body, saying when it expired", async () => {
    const token = "coral_leaked-from-an-old-ci-log";
    const expiresAt = new Date(Date.now() - day);
    await colony.store.createToken({
      name: "old-ci",
      scope: "admin",
      tokenHash: createHash("sha256").update(token).digest("hex"),
      createdAt: new Date(Date.now() - 91 * day),
      lastUsedAt: null,
      revokedAt: null,
      expiresAt,
    });
    const err = await refusal(colonyApi(colony.url, token).getStatus({}));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe(`token "old-ci" expired at ${expiresAt.toISOString()}; create a new one (coral token create --name <name> --ttl 90d)`);
    // The head alone is refused: the body is never sent.
    const raw = await rawRequest(colony.url, {
      path: "/coral.colony.v1.ColonyService/CreateToken",
      headers: { "content-type": "application/proto", authorization: `Bearer ${token}`, "content-length": "4096" },
    });
    expect(raw.status).toBe(401);
    expect(connectError(raw).message).toMatch(/^token "old-ci" expired at /);
    // As a person sees it.
    const cli = await runCoral(["status", "--colony-url", colony.url, "--token", token], { env: { CORAL_HOME: project.home } });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(`not authenticated: token "old-ci" expired at ${expiresAt.toISOString()}; create a new one`);
    const listed = (await colonyApi(colony.url, project.localToken).listTokens({})).tokens.find((t) => t.name === "old-ci")!;
    expect(listed).toMatchObject({ expired: true, neverExpires: false, revoked: false });
    expect(timestampDate(listed.expiresAt!).toISOString()).toBe(expiresAt.toISOString());
  });

  it("gives a new token 90 days unless asked otherwise; `never` is explicit and shown", async () => {
    const admin = colonyApi(colony.url, project.localToken);
    const before = Date.now();
    const standard = await admin.createToken({ name: "laptop", scope: TokenScope.READ });
    const short = await admin.createToken({ name: "ci-run", scope: TokenScope.READ, ttlSeconds: 3600n });
    const forever = await admin.createToken({ name: "kiosk", scope: TokenScope.READ, neverExpires: true });
    const after = Date.now();
    const at = (t: typeof standard) => timestampDate(t.expiresAt!).getTime();
    expect(at(standard)).toBeGreaterThanOrEqual(before + 90 * day);
    expect(at(standard)).toBeLessThanOrEqual(after + 90 * day);
    expect(at(short)).toBeGreaterThanOrEqual(before + 3_600_000);
    expect(at(short)).toBeLessThanOrEqual(after + 3_600_000);
    expect(forever.expiresAt).toBeUndefined();
    // A fresh token works.
    expect((await colonyApi(colony.url, short.token).getStatus({})).colonyId).toBe(project.colonyId);

    const listed = new Map((await admin.listTokens({})).tokens.map((t) => [t.name, t]));
    expect(listed.get("laptop")).toMatchObject({ expired: false, neverExpires: false });
    expect(listed.get("kiosk")).toMatchObject({ expired: false, neverExpires: true });
    expect(listed.get("kiosk")!.expiresAt).toBeUndefined();
  });

  it("answers a lifetime it cannot give with invalid_argument", async () => {
    const admin = colonyApi(colony.url, project.localToken);
    const tooShort = await refusal(admin.createToken({ name: "blink", scope: TokenScope.READ, ttlSeconds: 10n }));
    expect(tooShort.code).toBe(Code.InvalidArgument);
    expect(tooShort.rawMessage).toMatch(/^ttl_seconds: must be from 60 \(1m\) to 315360000 \(3650d\), got 10/);
    const both = await refusal(admin.createToken({ name: "both", scope: TokenScope.READ, ttlSeconds: 3600n, neverExpires: true }));
    expect(both.code).toBe(Code.InvalidArgument);
    expect(both.rawMessage).toMatch(/^ttl_seconds: must be 0 with never_expires/);
    const huge = await refusal(admin.createToken({ name: "huge", scope: TokenScope.READ, ttlSeconds: 2n ** 64n - 1n }));
    expect(huge.code).toBe(Code.InvalidArgument);
  });

  it("keeps the local token working (it never expires, and works from this machine only)", async () => {
    expect((await colonyApi(colony.url, project.localToken).getStatus({})).colonyId).toBe(project.colonyId);
  });
});
