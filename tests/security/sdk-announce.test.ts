// Issue 17, Medium 6 and Low "any local user can call the SDK's health and
// info", written as the attacks: another local user (nobody) against an app
// that uses the Coral SDK, both real processes.
import { lstat, readFile } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import { findAnnouncement } from "@coral/sdk";
import { describe, expect, it } from "vitest";
import { otherUser, plainEnv, runAs, sdkCall, sharedTmp, startSdkApp } from "../control/sdk-harness.ts";

const getInfo = "/coral.sdk.v1.CoralAppService/GetInfo";
const getHealth = "/coral.sdk.v1.CoralAppService/GetHealth";
const rollback = "/coral.control.v1.RollbackControlService/ExecuteRollback";
const syncFlags = "/coral.control.v1.FeatureFlagControlService/SyncFlags";

/** As nobody: make each folder (0777) with a world-writable <pid>.json in it, as a squatter on /tmp would. */
const squat = `
const fs = require("fs"), path = require("path");
const [pid, ...dirs] = process.argv.slice(1);
const made = [];
for (const dir of dirs) {
  try { fs.mkdirSync(dir, { mode: 0o777 }); fs.chmodSync(dir, 0o777); } catch (e) { continue; }
  const file = path.join(dir, pid + ".json");
  fs.writeFileSync(file, ""); fs.chmodSync(file, 0o666);
  made.push(dir);
}
console.log(JSON.stringify(made));`;

/** As nobody: every token readable in the folders. */
const harvest = `
const fs = require("fs"), path = require("path");
const tokens = [];
for (const dir of process.argv.slice(1)) {
  let names = [];
  try { names = fs.readdirSync(dir); } catch { continue; }
  for (const n of names) {
    try { const t = JSON.parse(fs.readFileSync(path.join(dir, n), "utf8")).token; if (t) tokens.push(t); } catch {}
  }
}
console.log(JSON.stringify(tokens));`;

describe("the SDK's announcement folder", () => {
  it("another local user who pre-creates the folder gets no token; the app runs on without announcing", async () => {
    const tmp = await sharedTmp();
    // Every folder the app might announce in: the old shared one and the per-user one.
    const dirs = [join(tmp, "coral-sdk"), join(tmp, "coral-sdk-0")];
    const app = await startSdkApp({
      env: plainEnv(tmp),
      beforeStart: async (pid) => expect(await runAs<string[]>(otherUser, squat, [String(pid), ...dirs])).toEqual(dirs),
    });
    try {
      const stolen = await runAs<string[]>(otherUser, harvest, dirs);
      // With a stolen token the attacker would run the app's rollback handler and flip its flags.
      for (const token of stolen) {
        await sdkCall(app.ready.sdkPort, rollback, { rollbackId: "attacker", targetVersion: "0.0.1" }, token);
        await sdkCall(app.ready.sdkPort, syncFlags, { flags: [{ name: "new-checkout", enabled: true, rolloutPercentage: 100 }] }, token);
      }
      expect(stolen).toEqual([]);
      expect(app.output()).not.toContain('"event":"rollback"');
      expect(app.output()).not.toContain('"event":"flags"');
      // It said why, and kept running: its own server still answers (and still wants its token).
      expect(app.ready.announcement).toBeNull();
      expect(app.ready.announceError).toMatch(/coral-sdk-0 belongs to uid 65534, not uid 0; another user may have made it/);
      expect(app.output()).toMatch(/coral sdk: not announcing to the Coral agent: .*The app runs on/);
      expect((await sdkCall(app.ready.sdkPort, getInfo, {})).status).toBe(401);
      expect(app.child.exitCode).toBeNull();
    } finally {
      await app.stop();
    }
  });

  it("refuses a folder of its own that others can open", async () => {
    const tmp = await sharedTmp();
    const app = await startSdkApp({
      env: plainEnv(tmp),
      beforeStart: async () => {
        const { mkdir, chmod } = await import("node:fs/promises");
        await mkdir(join(tmp, "coral-sdk-0"));
        await chmod(join(tmp, "coral-sdk-0"), 0o755);
      },
    });
    try {
      expect(app.ready.announcement).toBeNull();
      expect(app.ready.announceError).toMatch(/coral-sdk-0 is open to other users \(mode 0755\)/);
    } finally {
      await app.stop();
    }
  });

  it("an app of another user announces in its own private folder, which root's agent trusts and other users cannot read", async () => {
    const tmp = await sharedTmp();
    const app = await startSdkApp({ env: plainEnv(tmp), user: otherUser });
    try {
      const dir = join(tmp, `coral-sdk-${otherUser.uid}`);
      expect(app.ready.announcement).toBe(join(dir, `${app.pid}.json`));
      const [dirStat, fileStat] = [await lstat(dir), await lstat(app.ready.announcement!)];
      expect([dirStat.uid, dirStat.mode & 0o777]).toEqual([otherUser.uid, 0o700]);
      expect([fileStat.uid, fileStat.mode & 0o777]).toEqual([otherUser.uid, 0o600]);
      // A third user (daemon) sees nothing.
      expect(await runAs<string[]>({ uid: 1, gid: 1 }, harvest, [dir])).toEqual([]);

      // The agent (root here) finds it through the process's uid and environment.
      const { announcement, refused } = findAnnouncement(app.pid);
      expect(refused).toEqual([]);
      expect(announcement).toMatchObject({ pid: app.pid, port: app.ready.sdkPort, serviceName: "checkout" });
      const info = await sdkCall(app.ready.sdkPort, getInfo, {}, announcement!.token);
      expect(info.status).toBe(200);
      expect(info.body).toMatchObject({ serviceName: "checkout", serviceVersion: "2.0.0", pid: app.pid });
    } finally {
      await app.stop();
    }
  });

  it("the agent ignores an announcement another user planted for the observed process", async () => {
    const tmp = await sharedTmp();
    // The attacker's stand-in SDK: it would learn every flag set and rollback the agent sends.
    const calls: string[] = [];
    const fake = http.createServer((req, res) => {
      calls.push(req.url ?? "");
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ serviceName: "evil", serviceVersion: "6.6.6" }));
    });
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
    const fakePort = (fake.address() as { port: number }).port;
    const plant = `
const fs = require("fs"), path = require("path");
const [pid, port, ...dirs] = process.argv.slice(1);
for (const dir of dirs) {
  fs.mkdirSync(dir, { mode: 0o755 }); fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, pid + ".json"), JSON.stringify({ pid: Number(pid), port: Number(port), token: "t".repeat(32), serviceName: "evil" }));
}
console.log(JSON.stringify(dirs));`;
    // The observed app runs as root, with its SDK told to announce nowhere visible (it never gets to).
    const app = await startSdkApp({
      env: plainEnv(tmp),
      beforeStart: (pid) => runAs(otherUser, plant, [String(pid), String(fakePort), join(tmp, "coral-sdk"), join(tmp, "coral-sdk-0")]).then(() => undefined),
    });
    const previousTmp = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const { announcement, refused } = findAnnouncement(app.pid);
      expect(announcement).toBeNull();
      expect(refused).toContain(`${join(tmp, "coral-sdk-0")} belongs to uid 65534, not uid 0`);
      expect(calls).toEqual([]);
      // The file the attacker planted is still theirs: the app refused the folder rather than write into it.
      expect(JSON.parse(await readFile(join(tmp, "coral-sdk-0", `${app.pid}.json`), "utf8"))).toMatchObject({ serviceName: "evil" });
    } finally {
      if (previousTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previousTmp;
      fake.close();
      await app.stop();
    }
  });
});

describe("the SDK's server", () => {
  it("answers health and info only with the token", async () => {
    const tmp = await sharedTmp();
    const app = await startSdkApp({ env: plainEnv(tmp) });
    try {
      const { announcement } = findAnnouncement(app.pid);
      expect(announcement).not.toBeNull();
      for (const path of [getInfo, getHealth]) {
        const anonymous = await sdkCall(app.ready.sdkPort, path, {});
        expect(anonymous.status).toBe(401);
        expect(anonymous.body).toEqual({ code: "unauthenticated", message: "missing or wrong x-coral-sdk-token: the token is in the SDK's announcement file" });
        expect((await sdkCall(app.ready.sdkPort, path, {}, "x".repeat(32))).status).toBe(401);
        expect((await sdkCall(app.ready.sdkPort, path, {}, announcement!.token)).status).toBe(200);
      }
    } finally {
      await app.stop();
    }
  });

  it("refuses a caller without the token, and a body over the cap, before reading any of the body", async () => {
    const tmp = await sharedTmp();
    const app = await startSdkApp({ env: plainEnv(tmp) });
    try {
      const { announcement } = findAnnouncement(app.pid);
      // Headers only: the body is promised but never sent, so only an answer given before reading it arrives.
      const promised = (bytes: number, token?: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request({
            host: "127.0.0.1",
            port: app.ready.sdkPort,
            method: "POST",
            path: getInfo,
            headers: { "content-type": "application/json", "content-length": String(bytes), ...(token ? { "x-coral-sdk-token": token } : {}) },
          });
          req.on("response", (res) => {
            let body = "";
            res.on("data", (c: Buffer) => (body += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on("error", reject);
          req.setTimeout(20_000, () => req.destroy(new Error("no answer before the body: the server waited to read it")));
          req.flushHeaders();
        });
      const anonymous = await promised(512 * 1024);
      expect(anonymous.status).toBe(401);
      const huge = await promised(64 * 1024 * 1024, announcement!.token);
      expect(huge.status).toBe(400);
      expect(JSON.parse(huge.body)).toEqual({ code: "invalid_argument", message: "request body is 67108864 bytes; the limit is 1048576 bytes" });
    } finally {
      await app.stop();
    }
  });
});
