import { describe, expect, it } from "vitest";
import { createServer } from "node:net";
import { decodeHexIp, formatEndpoint, formatIpv6, parseProcNetTcp, parseProcNetTcpLine, recentTcpTables } from "./procnet.ts";

const TAIL = "00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0";
const line = (local: string, remote: string, st: string, inode = "12345", uid = "1000"): string =>
  `   7: ${local} ${remote} ${st} 00000000:00000000 00:00000000 00000000  ${uid}        0 ${inode} 1 0000000000000000 100 0 0 10 0`;

describe("decodeHexIp (little-endian host)", () => {
  it.each([
    ["0100007F", "127.0.0.1"],
    ["00000000", "0.0.0.0"],
    ["0302010A", "10.1.2.3"],
    ["FFFFFFFF", "255.255.255.255"],
    ["00000000000000000000000000000000", "::"],
    ["00000000000000000000000001000000", "::1"],
    ["0000000000000000FFFF00000100007F", "127.0.0.1"], // ::ffff:127.0.0.1, IPv4-mapped
    ["0000000000000000FFFF00000302010A", "10.1.2.3"],
    ["000080FE000000000000000001000000", "fe80::1"],
    ["B80D0120000000002E8A000034737003", "2001:db8::8a2e:370:7334"],
    ["b80d0120000000002e8a000034737003", "2001:db8::8a2e:370:7334"],
  ])("%s → %s", (hex, ip) => {
    expect(decodeHexIp(hex, true)).toBe(ip);
  });

  it.each([[""], ["0100007"], ["0100007F00"], ["ZZ00007F"], ["0100007F:1F90"]])("rejects %j", (hex) => {
    expect(decodeHexIp(hex, true)).toBeNull();
  });

  it("reads big-endian hosts' words as written", () => {
    expect(decodeHexIp("7F000001", false)).toBe("127.0.0.1");
    expect(decodeHexIp("00000000000000000000000000000001", false)).toBe("::1");
  });
});

describe("formatIpv6", () => {
  it.each([
    [[0, 0, 0, 0, 0, 0, 0, 0], "::"],
    [[0, 0, 0, 0, 0, 0, 0, 1], "::1"],
    [[1, 0, 0, 0, 0, 0, 0, 0], "1::"],
    [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], "2001:db8::1:0:0:1"],
    [[0x2001, 0xdb8, 0, 1, 0, 0, 0, 1], "2001:db8:0:1::1"],
    [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], "2001:db8:0:1:1:1:1:1"],
    [[1, 0, 2, 0, 3, 0, 4, 0], "1:0:2:0:3:0:4:0"],
    [[0xfe80, 0, 0, 0, 0xabcd, 0xef, 0x12, 0x3456], "fe80::abcd:ef:12:3456"],
  ])("%j → %s", (groups, text) => {
    expect(formatIpv6(groups)).toBe(text);
  });
});

describe("formatEndpoint", () => {
  it.each([
    ["127.0.0.1", 80, "127.0.0.1:80"],
    ["::1", 8080, "[::1]:8080"],
    ["::", 0, "[::]:0"],
  ])("%s %d → %s", (ip, port, text) => {
    expect(formatEndpoint(ip, port)).toBe(text);
  });
});

describe("parseProcNetTcpLine", () => {
  it.each([
    {
      name: "IPv4 listener",
      line: line("0100007F:1F90", "00000000:0000", "0A"),
      want: { family: 4, localIp: "127.0.0.1", localPort: 8080, remoteIp: "0.0.0.0", remotePort: 0, stateCode: 10, state: "LISTEN", uid: 1000, inode: 12345 },
    },
    {
      name: "IPv4 established",
      line: line("0100007F:C350", "0302010A:01BB", "01", "987654321"),
      want: { family: 4, localIp: "127.0.0.1", localPort: 50000, remoteIp: "10.1.2.3", remotePort: 443, state: "ESTABLISHED", inode: 987654321 },
    },
    {
      name: "IPv4 TIME_WAIT without inode",
      line: line("0100007F:C351", "0100007F:1F90", "06", "0", "0"),
      want: { state: "TIME_WAIT", stateCode: 6, inode: 0, uid: 0 },
    },
    {
      name: "IPv6 any-address listener",
      line: line("00000000000000000000000000000000:0BB8", "00000000000000000000000000000000:0000", "0A"),
      want: { family: 6, localIp: "::", localPort: 3000, remoteIp: "::", state: "LISTEN" },
    },
    {
      name: "IPv6 loopback close-wait",
      line: line("00000000000000000000000001000000:1F90", "00000000000000000000000001000000:D431", "08"),
      want: { family: 6, localIp: "::1", remoteIp: "::1", remotePort: 54321, state: "CLOSE_WAIT" },
    },
    {
      name: "IPv4-mapped connection on a dual-stack socket",
      line: line("0000000000000000FFFF00000100007F:1F90", "0000000000000000FFFF00000100007F:C350", "01"),
      want: { family: 6, localIp: "127.0.0.1", localPort: 8080, remoteIp: "127.0.0.1", remotePort: 50000, state: "ESTABLISHED" },
    },
    {
      name: "NEW_SYN_RECV (0C)",
      line: line("0100007F:0001", "0100007F:0002", "0C"),
      want: { state: "NEW_SYN_RECV" },
    },
    { name: "unknown state code", line: line("0100007F:0001", "0100007F:0002", "FF"), want: { state: "UNKNOWN", stateCode: 255 } },
  ])("$name", ({ line: l, want }) => {
    expect(parseProcNetTcpLine(l, true)).toMatchObject(want);
  });

  it.each([
    ["header", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"],
    ["empty", ""],
    ["garbage", "hello world"],
    ["too few fields", "   0: 0100007F:1F90 00000000:0000 0A"],
    ["bad address hex", line("ZZ00007F:1F90", "00000000:0000", "0A")],
    ["bad port", line("0100007F:1F9G", "00000000:0000", "0A")],
    ["port too long", line("0100007F:11F90", "00000000:0000", "0A")],
    ["mixed families", line("0100007F:1F90", "00000000000000000000000000000000:0000", "0A")],
    ["bad state", line("0100007F:1F90", "00000000:0000", "X")],
    ["non-numeric inode", line("0100007F:1F90", "00000000:0000", "0A", "abc")],
    ["no slot number", `0100007F:1F90 00000000:0000 0A ${TAIL}`],
  ])("returns null for %s", (_name, l) => {
    expect(parseProcNetTcpLine(l, true)).toBeNull();
  });
});

describe("parseProcNetTcp", () => {
  it("skips the header and malformed lines", () => {
    const text = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      line("0100007F:1F90", "00000000:0000", "0A", "1"),
      "garbage",
      line("0100007F:C350", "0100007F:1F90", "01", "2"),
      "",
    ].join("\n");
    const rows = parseProcNetTcp(text, true);
    expect(rows.map((r) => [r.inode, r.state, formatEndpoint(r.localIp, r.localPort)])).toEqual([
      [1, "LISTEN", "127.0.0.1:8080"],
      [2, "ESTABLISHED", "127.0.0.1:50000"],
    ]);
  });
});

describe("recentTcpTables", () => {
  it("reads a namespace's tables once per window for every caller, then again", async () => {
    const server = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const { port } = server.address() as { port: number };
    const t0 = 1_000_000;
    // This process and its parent share a network namespace: one read serves both.
    const first = (await recentTcpTables(process.pid, 500, t0)).entries;
    expect(await recentTcpTables(process.ppid, 500, t0 + 499)).toEqual({ entries: first, readAt: t0 });
    expect(first.some((e) => e.localPort === port && e.state === "LISTEN")).toBe(true);
    server.close();
    const later = (await recentTcpTables(process.pid, 500, t0 + 500)).entries;
    expect(later).not.toBe(first);
    expect(later.some((e) => e.localPort === port && e.state === "LISTEN")).toBe(false);
  });

  it("throws ENOENT for a process that is gone, like readTcpTables", async () => {
    await expect(recentTcpTables(2 ** 22 + 7)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
