import { describe, expect, it } from "vitest";
import { parseBootTime, parseProcStat, parseStatusRssBytes, socketInodeFromLink } from "./procfs.ts";
import { cpuPercent } from "./sample.ts";

// 52 fields, as a 6.x kernel prints them; only a few matter to us.
const statLine = (comm: string, overrides: Record<number, string> = {}): string => {
  const fields: string[] = [];
  for (let n = 3; n <= 52; n++) fields.push(String(n * 10));
  fields[0] = "S";
  for (const [n, v] of Object.entries(overrides)) fields[Number(n) - 3] = v;
  return `4242 (${comm}) ${fields.join(" ")}\n`;
};

describe("parseProcStat", () => {
  it.each([
    ["plain name", "node"],
    ["name with spaces", "my app worker"],
    ["name with parentheses", "a) (b) c"],
    ["empty name", ""],
  ])("%s", (_label, comm) => {
    const stat = parseProcStat(statLine(comm, { 3: "R", 4: "1", 14: "1500", 15: "250", 20: "11", 22: "987654" }));
    expect(stat).toEqual({ pid: 4242, comm, state: "R", ppid: 1, utime: 1500, stime: 250, numThreads: 11, startTicks: 987654 });
  });

  it.each([
    ["empty", ""],
    ["no parentheses", "4242 node S 1 2 3"],
    ["truncated", "4242 (node) S 1 2 3"],
    ["non-numeric pid", statLine("x").replace("4242", "abc")],
    ["non-numeric field", statLine("x", { 14: "lots" })],
  ])("returns null for %s", (_label, text) => {
    expect(parseProcStat(text)).toBeNull();
  });
});

describe("parseStatusRssBytes", () => {
  it.each([
    ["Name:\tnode\nVmRSS:\t   51234 kB\nThreads:\t7\n", 51234 * 1024],
    ["VmRSS: 0 kB\n", 0],
    ["Name:\tkthreadd\nThreads:\t1\n", 0],
  ])("%j → %d", (text, bytes) => {
    expect(parseStatusRssBytes(text)).toBe(bytes);
  });
});

describe("parseBootTime", () => {
  it("reads btime", () => {
    expect(parseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n")).toBe(1_700_000_000);
    expect(parseBootTime("cpu 1 2 3\n")).toBeNull();
  });
});

describe("socketInodeFromLink", () => {
  it.each([
    ["socket:[12345]", 12345],
    ["pipe:[12345]", null],
    ["/dev/null", null],
    ["anon_inode:[eventpoll]", null],
    ["socket:[]", null],
  ])("%s → %s", (link, inode) => {
    expect(socketInodeFromLink(link)).toBe(inode);
  });
});

describe("cpuPercent", () => {
  it.each([
    [100, 1000, 100, 100], // one full core for a second
    [50, 1000, 100, 50],
    [400, 2000, 100, 200], // two cores busy
    [10, 1000, 250, 4], // a 250 Hz USER_HZ
    [0, 1000, 100, 0],
    [-5, 1000, 100, 0], // never negative
    [10, 0, 100, 0], // no interval
  ])("%d ticks over %d ms at %d Hz → %d%%", (ticks, ms, hz, want) => {
    expect(cpuPercent(ticks, ms, hz)).toBeCloseTo(want, 10);
  });
});
