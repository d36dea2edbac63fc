// The agent's link to a real SDK server (CoralSdk in this process, so the
// observed pid is our own): found through the announcement in a private
// folder, called with its token; an announcement in a folder others can
// write is ignored, and said so once.
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoralSdk } from "@coral/sdk";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SdkLink } from "./sdk-link.ts";

let root: string;
let sdk: CoralSdk;
const warnings: string[] = [];
const logger = { info: () => undefined, debug: () => undefined, warn: (obj: object) => void warnings.push(JSON.stringify(obj)) };

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "coral-sdk-link-"));
  warnings.length = 0;
  sdk = new CoralSdk();
});
afterEach(async () => {
  await sdk.shutdown();
  await rm(root, { recursive: true, force: true });
});

describe("SdkLink", () => {
  it("finds the SDK from its announcement and calls it with the announced token", async () => {
    const dir = join(root, "private");
    process.env.CORAL_SDK_DIR = dir;
    try {
      const init = await sdk.init({ serviceName: "api", version: "1.2.3", announce: true });
      expect(init.announcement).toBe(join(dir, `${process.pid}.json`));
    } finally {
      delete process.env.CORAL_SDK_DIR;
    }
    const link = new SdkLink({ announceDir: dir, logger });
    const report = await link.poll(process.pid);
    expect(report?.info).toMatchObject({ serviceName: "api", serviceVersion: "1.2.3", pid: process.pid });
    expect(warnings).toEqual([]);
  });

  it("ignores an announcement in a folder others can write, and warns once", async () => {
    const dir = join(root, "open");
    process.env.CORAL_SDK_DIR = dir;
    try {
      await sdk.init({ serviceName: "api", version: "1.2.3" });
    } finally {
      delete process.env.CORAL_SDK_DIR;
    }
    // Opened up after the SDK wrote it, as a careless chmod would.
    await chmod(dir, 0o777);
    const link = new SdkLink({ announceDir: dir, logger });
    expect(await link.poll(process.pid)).toBeNull();
    expect(await link.poll(process.pid)).toBeNull();
    expect(warnings).toEqual([JSON.stringify({ pid: process.pid, reason: `${dir} is open to other users (mode 0777)` })]);
  });
});
