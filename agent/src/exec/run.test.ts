import { spawn } from "node:child_process";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { pollUntil } from "@coral/common/async";
import { runExec, type ExecEvent, type ExecCommand } from "./run.ts";

async function run(cmd: ExecCommand): Promise<{ events: ExecEvent[]; stdout: string; stderr: string; exit: Extract<ExecEvent, { kind: "exit" }> }> {
  const events: ExecEvent[] = [];
  for await (const e of runExec(cmd)) events.push(e);
  const text = (kind: "stdout" | "stderr") => Buffer.concat(events.flatMap((e) => (e.kind === kind ? [Buffer.from(e.data)] : []))).toString();
  const exit = events.at(-1);
  if (exit?.kind !== "exit") throw new Error("the last event is not the exit");
  return { events, stdout: text("stdout"), stderr: text("stderr"), exit };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("coral exec on the agent's host", () => {
  it("streams stdout and stderr and ends with the command's exit code", async () => {
    const r = await run({ argv: ["sh", "-c", "echo out; echo err >&2; exit 3"], timeoutMs: 10_000, maxOutputBytes: 1 << 20 });
    expect(r.events[0]).toMatchObject({ kind: "started", mode: "host", targetPid: 0 });
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    expect(r.exit).toMatchObject({ exitCode: 3, timedOut: false, outputTruncated: false, outputBytes: 8 });
  });

  it("gives the command a clean environment: the agent's secrets stay in the agent", async () => {
    process.env.CORAL_JOIN_TEST_SECRET = "s3cr3t-join-token";
    try {
      const r = await run({ argv: ["env"], timeoutMs: 10_000, maxOutputBytes: 1 << 20 });
      expect(r.stdout).not.toContain("s3cr3t-join-token");
      expect(r.stdout).toContain("PATH=/usr/local/sbin:");
    } finally {
      delete process.env.CORAL_JOIN_TEST_SECRET;
    }
  });

  it("says when a command does not exist (exit 127)", async () => {
    const r = await run({ argv: ["no-such-command-coral"], timeoutMs: 10_000, maxOutputBytes: 1 << 20 });
    expect(r.exit.exitCode).toBe(127);
    expect(r.stderr).toBe("coral exec: no-such-command-coral: command not found on the agent's host\n");
  });

  it("stops a command that never ends at the timeout, with everything it started (exit 124)", async () => {
    const t = Date.now();
    const r = await run({ argv: ["sh", "-c", "sleep 60 & echo $!; wait"], timeoutMs: 500, maxOutputBytes: 1 << 20, killGraceMs: 500 });
    expect(r.exit).toMatchObject({ exitCode: 124, timedOut: true });
    expect(Date.now() - t).toBeLessThan(20_000);
    const background = Number(r.stdout.trim());
    expect(background).toBeGreaterThan(1);
    await pollUntil(() => (alive(background) ? undefined : true), { what: "the background sleep to be gone", timeoutMs: 10_000, intervalMs: 50 });
  });

  it("cuts a flood of output at the cap and stops the command", async () => {
    const r = await run({ argv: ["yes", "coral"], timeoutMs: 30_000, maxOutputBytes: 10_000 });
    expect(r.exit).toMatchObject({ outputTruncated: true, outputBytes: 10_000, signal: "SIGKILL" });
    expect(r.stdout.length).toBe(10_000);
    expect(r.stdout.startsWith("coral\ncoral\n")).toBe(true);
  });

  it("stops the command when the caller goes away", async () => {
    const abort = new AbortController();
    const events: ExecEvent[] = [];
    let pid = 0;
    for await (const e of runExec({ argv: ["sleep", "60"], timeoutMs: 60_000, maxOutputBytes: 1 << 20, signal: abort.signal })) {
      events.push(e);
      if (e.kind === "started") {
        pid = e.pid;
        abort.abort();
      }
    }
    expect(events.at(-1)).toMatchObject({ kind: "exit", signal: "SIGKILL", timedOut: false });
    expect(alive(pid)).toBe(false);
  });
});

// Entering namespaces needs root (CAP_SYS_ADMIN) and util-linux's unshare/nsenter.
const root = process.getuid?.() === 0 && existsSync("/usr/bin/nsenter") && existsSync("/usr/bin/unshare");
const targets: number[] = [];
afterAll(() => {
  for (const pid of targets) if (alive(pid)) process.kill(pid, "SIGKILL");
});

describe.skipIf(!root)("coral exec in the namespaces of the service's process (needs root: skipped otherwise)", () => {
  it("sees the process's own mount and network namespaces, its root and its working directory", async () => {
    // The "service": its own mount namespace with a tmpfs only it sees, its own network namespace (only lo), cwd /mnt.
    const target = spawn("unshare", ["--mount", "--net", "--propagation", "private", "--fork", "sh", "-c", "mount -t tmpfs coral-test /mnt && echo inside > /mnt/marker && cd /mnt && exec sleep 120"], { stdio: "ignore" });
    targets.push(target.pid!);
    const servicePid = await pollUntil(
      () => {
        const children = readFileSync(`/proc/${target.pid}/task/${target.pid}/children`, "utf8").trim();
        const pid = Number(children.split(/\s+/)[0]);
        return pid > 0 && readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("sleep") ? pid : undefined;
      },
      { what: "the service process in its namespaces", timeoutMs: 10_000, intervalMs: 50 },
    );
    targets.push(servicePid);
    expect(existsSync("/mnt/marker")).toBe(false);

    const r = await run({ argv: ["sh", "-c", "cat marker; pwd; readlink /proc/self/ns/net /proc/self/ns/mnt; awk -F: 'NR > 2 { gsub(/ /, \"\", $1); print $1 }' /proc/self/net/dev"], targetPid: servicePid, timeoutMs: 15_000, maxOutputBytes: 1 << 20 });
    expect(r.events[0]).toMatchObject({ kind: "started", mode: "namespaces", targetPid: servicePid });
    expect(r.exit.exitCode).toBe(0);
    const [marker, cwd, netNs, mntNs, ...links] = r.stdout.trim().split("\n");
    expect(marker).toBe("inside");
    expect(cwd).toBe("/mnt");
    expect(netNs).toBe(readlinkSync(`/proc/${servicePid}/ns/net`));
    expect(netNs).not.toBe(readlinkSync("/proc/self/ns/net"));
    expect(mntNs).toBe(readlinkSync(`/proc/${servicePid}/ns/mnt`));
    expect(links).toEqual(["lo"]);
  });
});

describe("what a command leaves behind", () => {
  it("ends when the command does: a background job holding the output open is stopped with it", async () => {
    const t = Date.now();
    const r = await run({ argv: ["sh", "-c", "sleep 120 & echo bg=$!"], timeoutMs: 60_000, maxOutputBytes: 1 << 20 });
    expect(Date.now() - t).toBeLessThan(20_000);
    expect(r.exit).toMatchObject({ exitCode: 0, timedOut: false });
    const pid = Number(/bg=(\d+)/.exec(r.stdout)?.[1]);
    await pollUntil(() => (alive(pid) ? undefined : true), { what: "the background job to be gone", timeoutMs: 10_000, intervalMs: 50 });
  });
});

describe("whether this agent may enter namespaces", () => {
  it("reads CAP_SYS_ADMIN from the effective capabilities", async () => {
    const { canEnterNamespaces } = await import("./run.ts");
    expect(canEnterNamespaces("Name:\tnode\nCapEff:\t000001ffffffffff\n")).toBe(true);
    expect(canEnterNamespaces("Name:\tnode\nCapEff:\t0000000000000000\n")).toBe(false);
    // CAP_SYS_ADMIN (bit 21) alone, as a capability-only agent has it.
    expect(canEnterNamespaces("CapEff:\t0000000000200000\n")).toBe(true);
    expect(canEnterNamespaces("nothing here")).toBe(false);
    expect(canEnterNamespaces()).toBe(process.getuid?.() === 0);
  });
});
