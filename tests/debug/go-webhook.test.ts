// A third-party stripped Go server as a distribution ships it: Debian's
// webhook (/usr/bin/webhook: Go, cgo, dynamically linked, stripped by the
// packaging). Optional: runs when the package is installed
// (apt-get install -y --no-install-recommends webhook).
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseElf } from "@coral/agent/debug";
import { bpfSkipReason, startObservedTarget, type ObservedTarget } from "./helpers.ts";

const WEBHOOK = "/usr/bin/webhook";
const skip = bpfSkipReason(["objdump", "unshare"]) ?? (existsSync(WEBHOOK) ? undefined : "Debian's webhook is not installed (apt-get install -y --no-install-recommends webhook)");
if (skip) console.log(`go-webhook.test: SKIPPING the stripped third-party Go server test: ${skip}`);

describe.skipIf(skip !== undefined)("live debugging Debian's stripped webhook server", () => {
  let fixture: ObservedTarget | undefined;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-webhook-"));
    writeFileSync(join(dir, "hooks.json"), JSON.stringify([{ id: "ping", "execute-command": "/bin/true", "response-message": "pong" }]));
    // The fixture passes the port as the first argument; webhook takes flags. exec keeps the pid.
    const launcher = join(dir, "webhook.sh");
    writeFileSync(launcher, `#!/bin/sh\nexec ${WEBHOOK} -ip 127.0.0.1 -port "$1" -hooks ${join(dir, "hooks.json")}\n`, { mode: 0o755 });
    fixture = await startObservedTarget(launcher, "webhook", { pattern: "main.hookHandler" });
  }, 180_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  it("is stripped, and still lists its main.* functions", async () => {
    expect(parseElf(readFileSync(WEBHOOK)).sections.map((s) => s.name)).not.toContain(".symtab");
    const list = await fixture!.api.listFunctions({ serviceName: "webhook", pattern: "main.", limit: 10_000 });
    expect(list.isGo).toBe(true);
    expect(list.functions.map((f) => f.name)).toEqual(expect.arrayContaining(["main.main", "main.hookHandler", "main.handleHook"]));
  });

  it("counts every request through main.hookHandler, entries and returns", async () => {
    const { api, port, target } = fixture!;
    const attached = await api.attachUprobe({ serviceName: "webhook", functionName: "main.hookHandler", durationMs: 120_000 });
    const K = 15;
    for (let i = 0; i < K; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/hooks/ping`);
      expect((await res.text()).trim()).toBe("pong");
    }
    const detached = await api.detachUprobe({ sessionId: attached.session!.sessionId });
    expect(Number(detached.session?.summary?.calls)).toBe(K);
    const { events } = await api.queryUprobeEvents({ sessionId: attached.session!.sessionId, limit: 1000 });
    expect(events.filter((e) => e.type === "entry")).toHaveLength(K);
    expect(events.filter((e) => e.type === "return")).toHaveLength(K);
    expect(target.exitCode).toBeNull();
  }, 180_000);
});
