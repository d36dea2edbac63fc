// The sender of a loopback connection from /proc/net/tcp{,6} rows (IPv4,
// IPv6, IPv4-mapped IPv6 on either side) and its pid: the observed
// processes first, then a bounded scan of the others.
import { describe, expect, it } from "vitest";
import { parseProcNetTcp } from "../observe/procnet.ts";
import { isLoopback, plainIp, senderInode, SenderPids, type OtlpPeer } from "./sender.ts";

const row = (local: string, remote: string, state: string, inode: number, uid = 1000) =>
  `  1: ${local} ${remote} ${state} 00000000:00000000 00:00000000 00000000  ${uid}        0 ${inode} 1 0000000000000000 100 0 0 10 0`;
const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
const v4 = "0100007F"; // 127.0.0.1, little-endian words
const v6loop = "00000000000000000000000001000000"; // ::1
const v6mapped = "0000000000000000FFFF00000100007F"; // ::ffff:127.0.0.1
// The receiver on 4318 (0x10DE); senders on 45678 (0xB26E), 45679, 45680, 45681.
const tcp = [
  header,
  row(`${v4}:10DE`, "00000000:0000", "0A", 100), // the receiver's listener
  row(`${v4}:10DE`, `${v4}:B26E`, "01", 111), // the receiver's end of the IPv4 connection
  row(`${v4}:B26E`, `${v4}:10DE`, "01", 222), // the sender's end
  row(`${v4}:B271`, `${v4}:10DE`, "06", 0, 0), // a closed one (TIME_WAIT): no inode
  row(`${v4}:B272`, `${v4}:1F90`, "01", 555), // the same local end, to another port
].join("\n");
const tcp6 = [
  header,
  row(`${v6loop}:10DE`, `${v6loop}:B26F`, "01", 311),
  row(`${v6loop}:B26F`, `${v6loop}:10DE`, "01", 333), // an IPv6 sender to [::1]:4318
  row(`${v6mapped}:B270`, `${v6mapped}:10DE`, "01", 444), // an IPv6 socket connected to 127.0.0.1
].join("\n");
const rows = [...parseProcNetTcp(tcp, true), ...parseProcNetTcp(tcp6, true)];
const peer = (remoteAddress: string, remotePort: number, localAddress = remoteAddress, localPort = 4318): OtlpPeer => ({ remoteAddress, remotePort, localAddress, localPort });

describe("the sender's end in /proc/net/tcp{,6}", () => {
  it.each([
    ["IPv4", peer("127.0.0.1", 45678), 222],
    ["IPv4 as a dual-stack listener sees it (::ffff:)", peer("::ffff:127.0.0.1", 45678), 222],
    ["IPv6 ::1", peer("::1", 45679), 333],
    ["an IPv4-mapped IPv6 sender, seen as IPv4", peer("127.0.0.1", 45680), 444],
    ["an IPv4-mapped IPv6 sender, seen as mapped", peer("::FFFF:127.0.0.1", 45680), 444],
    ["a closed sender (no inode)", peer("127.0.0.1", 45681), undefined],
    ["an end connected elsewhere (another local port)", peer("127.0.0.1", 45682, "127.0.0.1", 4318), undefined],
    ["no such port", peer("127.0.0.1", 40000), undefined],
    ["no remote end", {}, undefined],
  ])("%s", (_name, p, inode) => {
    expect(senderInode(rows, p)).toBe(inode);
  });

  it("matches the remote end too: same local address:port, other peer → none", () => {
    expect(senderInode(rows, peer("127.0.0.1", 45678, "127.0.0.1", 9999))).toBeUndefined();
  });

  it.each([
    ["127.0.0.1", true],
    ["127.8.9.10", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["10.0.0.2", false],
    ["::ffff:10.0.0.2", false],
    ["fe80::1", false],
    [undefined, false],
  ])("loopback %s: %s", (ip, yes) => {
    expect(isLoopback(ip)).toBe(yes);
  });

  it("plainIp drops the IPv4-mapped prefix only", () => {
    expect(plainIp("::FFFF:127.0.0.1")).toBe("127.0.0.1");
    expect(plainIp("::ffff:7f00:1")).toBe("::ffff:7f00:1");
    expect(plainIp("2001:DB8::1")).toBe("2001:db8::1");
  });
});

describe("SenderPids", () => {
  const held = new Map<number, number[]>([
    [10, [1, 2]],
    [20, [222]],
    [30, [333]],
  ]);
  const fake = (over: Partial<ConstructorParameters<typeof SenderPids>[0]> = {}) => {
    const looked: number[] = [];
    const senders = new SenderPids({
      readTables: async () => rows,
      listPids: async () => [1, 2, 3, 10, 20, 30],
      uidOf: () => 1000,
      socketInodes: async (pid) => {
        looked.push(pid);
        if (pid === 2) throw Object.assign(new Error("EACCES"), { code: "EACCES" });
        return new Set(held.get(pid) ?? []);
      },
      ...over,
    });
    return { senders, looked };
  };

  it("looks at the observed processes first", async () => {
    const { senders, looked } = fake({ candidates: () => [10, 20] });
    expect(await senders.pidOf(peer("127.0.0.1", 45678))).toBe(20);
    expect(looked).toEqual([10, 20]);
    expect(senders.stats()).toMatchObject({ lookups: 1, foundObserved: 1, foundScanned: 0 });
  });

  it("then scans the others (skipping unreadable ones and those seen), within the bound", async () => {
    const { senders, looked } = fake({ candidates: () => [10] });
    expect(await senders.pidOf(peer("::1", 45679))).toBe(30);
    expect(looked).toEqual([10, 1, 2, 3, 20, 30]);
    const bounded = fake({ maxScan: 3 });
    expect(await bounded.senders.pidOf(peer("::1", 45679))).toBeUndefined();
    expect(bounded.looked).toEqual([1, 2, 3]);
    expect(bounded.senders.stats()).toMatchObject({ lookups: 1, notFound: 1 });
  });

  it("skips processes of other users than the socket's", async () => {
    const { senders, looked } = fake({ uidOf: (pid) => (pid === 20 ? 1000 : 0) });
    expect(await senders.pidOf(peer("127.0.0.1", 45678))).toBe(20);
    expect(looked).toEqual([20]);
  });

  it("does not look up other hosts' connections, nor fail when /proc cannot be read", async () => {
    const { senders, looked } = fake();
    expect(await senders.pidOf(peer("10.0.0.2", 45678))).toBeUndefined();
    expect(looked).toEqual([]);
    const broken = fake({ readTables: () => Promise.reject(new Error("EIO")) });
    expect(await broken.senders.pidOf(peer("127.0.0.1", 45678))).toBeUndefined();
    expect(senders.stats().notLoopback).toBe(1);
    expect(broken.senders.stats().notFound).toBe(1);
  });
});
