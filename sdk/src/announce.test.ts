// Where the SDK announces itself, and what it accepts as an announcement.
import { chmod, chown, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AnnounceDirError, currentUid, parseAnnouncement, sdkAnnounceDir, writeAnnouncement } from "./announce.ts";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "coral-announce-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("sdkAnnounceDir", () => {
  it("prefers CORAL_SDK_DIR, then a private XDG_RUNTIME_DIR of our own, then <tmpdir>/coral-sdk-<uid>", async () => {
    const uid = currentUid();
    expect(sdkAnnounceDir({ CORAL_SDK_DIR: "/x", XDG_RUNTIME_DIR: root }, uid)).toBe("/x");
    await chmod(root, 0o700);
    expect(sdkAnnounceDir({ XDG_RUNTIME_DIR: root }, uid)).toBe(join(root, "coral-sdk"));
    await chmod(root, 0o755);
    expect(sdkAnnounceDir({ XDG_RUNTIME_DIR: root, TMPDIR: "/var/tmp/" }, uid)).toBe(`/var/tmp/coral-sdk-${uid}`);
    // Someone else's runtime folder (kept by sudo, say) is not ours.
    await chmod(root, 0o700);
    expect(sdkAnnounceDir({ XDG_RUNTIME_DIR: root }, uid + 1)).toBe(`/tmp/coral-sdk-${uid + 1}`);
    expect(sdkAnnounceDir({ XDG_RUNTIME_DIR: "relative/dir" }, uid)).toBe(`/tmp/coral-sdk-${uid}`);
  });
});

describe("writeAnnouncement", () => {
  it("creates the folder 0700 and the file 0600, leaving no temporary file", async () => {
    const dir = join(root, "coral-sdk-test");
    const path = writeAnnouncement({ pid: 42, port: 1234, token: "t".repeat(32), serviceName: "api" }, dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(["42.json"]);
  });

  it.runIf(currentUid() === 0)("refuses a folder owned by another user", async () => {
    const dir = join(root, "squatted");
    writeAnnouncement({ pid: 1, port: 1, token: "t".repeat(32), serviceName: "" }, dir);
    await chown(dir, 65534, 65534);
    expect(() => writeAnnouncement({ pid: 2, port: 1, token: "t".repeat(32), serviceName: "" }, dir)).toThrow(AnnounceDirError);
  });
});

describe("parseAnnouncement", () => {
  it("accepts only a well-formed announcement for the pid asked about", () => {
    const good = { pid: 7, port: 8080, token: "a".repeat(32), serviceName: "api" };
    expect(parseAnnouncement(JSON.stringify(good), 7)).toEqual(good);
    expect(parseAnnouncement(JSON.stringify(good), 8)).toBeNull();
    for (const bad of [{ ...good, port: 0 }, { ...good, port: 70000 }, { ...good, port: 1.5 }, { ...good, token: "short" }, { ...good, token: 5 }])
      expect(parseAnnouncement(JSON.stringify(bad), 7)).toBeNull();
    expect(parseAnnouncement("not json", 7)).toBeNull();
    expect(parseAnnouncement("null", 7)).toBeNull();
    expect(parseAnnouncement(JSON.stringify({ ...good, serviceName: 3 }), 7)).toEqual({ ...good, serviceName: "" });
  });
});
