// What the agent-footprint bench reads about a process from /proc, and its
// TCP byte counters from `ss -tinp` (iproute2).
import { execFile } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { cpus, totalmem } from "node:os";

/** Clock ticks per second for utime/stime in /proc/<pid>/stat (`getconf CLK_TCK`; 100 on Linux). */
export const CLK_TCK = 100;

export interface MemStatus {
  vmRssKb: number;
  /** Peak RSS (high-water mark) since the process started. */
  vmHwmKb: number;
  rssAnonKb: number;
  rssFileKb: number;
  rssShmemKb: number;
  threads: number;
}

export function readStatus(pid: number): MemStatus {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(m[1]);
  };
  return {
    vmRssKb: field("VmRSS"),
    vmHwmKb: field("VmHWM"),
    rssAnonKb: field("RssAnon"),
    rssFileKb: field("RssFile"),
    rssShmemKb: field("RssShmem"),
    threads: field("Threads"),
  };
}

/** utime + stime of the process (all its threads), in clock ticks. */
export function readCpuTicks(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  // comm (field 2) may hold spaces: count fields after its closing parenthesis.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  return Number(rest[11]) + Number(rest[12]);
}

/** utime + stime per thread (tid → ticks). */
export function readThreadTicks(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
      const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
      out.set(Number(t), Number(rest[11]) + Number(rest[12]));
    } catch {
      // the thread ended
    }
  }
  return out;
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return "?";
  }
}

/** Every descendant process of `pid` (children of any of its threads, recursively). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number) => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tasks) {
      let kids = "";
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim();
      } catch {
        continue;
      }
      for (const k of kids.split(/\s+/).filter(Boolean).map(Number)) {
        out.push(k);
        visit(k);
      }
    }
  };
  visit(pid);
  return out;
}

/** Proportional set size (shared pages divided among the processes mapping them), kB, from /proc/<pid>/smaps_rollup. */
export function readPss(pid: number): { pssKb: number; pssAnonKb: number; pssFileKb: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? NaN);
  return { pssKb: field("Pss"), pssAnonKb: field("Pss_Anon"), pssFileKb: field("Pss_File") };
}

export type SmapsCategory = "node binary" | "duckdb native library" | "other shared libraries" | "[heap] (malloc brk)" | "anonymous (V8 heaps, malloc arenas, thread stacks)" | "[stack]" | "other files";

/** Resident kB per kind of mapping, from /proc/<pid>/smaps. */
export function smapsBreakdown(pid: number): Record<SmapsCategory, number> {
  const text = readFileSync(`/proc/${pid}/smaps`, "utf8");
  const out: Record<SmapsCategory, number> = {
    "node binary": 0,
    "duckdb native library": 0,
    "other shared libraries": 0,
    "[heap] (malloc brk)": 0,
    "anonymous (V8 heaps, malloc arenas, thread stacks)": 0,
    "[stack]": 0,
    "other files": 0,
  };
  let current: SmapsCategory = "other files";
  for (const line of text.split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const path = header[1] ?? "";
      if (path === "") current = "anonymous (V8 heaps, malloc arenas, thread stacks)";
      else if (path === "[heap]") current = "[heap] (malloc brk)";
      else if (path === "[stack]") current = "[stack]";
      else if (/duckdb/i.test(path)) current = "duckdb native library";
      else if (/\/node$/.test(path) || path === process.execPath) current = "node binary";
      else if (/\.so(\.|$)/.test(path)) current = "other shared libraries";
      else if (path.startsWith("[")) current = "anonymous (V8 heaps, malloc arenas, thread stacks)";
      else current = "other files";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[current] += Number(rss[1]);
  }
  return out;
}

export interface SocketReading {
  local: string;
  peer: string;
  peerPort: number;
  pid: number;
  bytesAcked: number;
  bytesSent: number;
  bytesReceived: number;
  /** Segments sent, pure ACKs and SYN/FIN included. */
  segsOut: number;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

/** TCP sockets of `pid` whose peer port is one of `peerPorts`, with their tcp_info byte counters. */
export async function readSockets(pid: number, peerPorts: number[]): Promise<SocketReading[]> {
  const filter = `( ${peerPorts.map((p) => `dport = :${p}`).join(" or ")} )`;
  const text = await run("ss", ["-tinpH", "state", "connected", filter]);
  const out: SocketReading[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (!line || /^\s/.test(line)) continue;
    // State Recv-Q Send-Q Local Peer [users:(("node",pid=N,fd=M))]; the tcp_info line follows, indented.
    const cols = line.trim().split(/\s+/);
    const owner = /pid=(\d+)/.exec(line);
    if (!owner || Number(owner[1]) !== pid) continue;
    const info = /^\s/.test(lines[i + 1] ?? "") ? (lines[i + 1] ?? "") : "";
    const num = (name: string) => Number(new RegExp(`\\b${name}:(\\d+)`).exec(info)?.[1] ?? 0);
    const local = cols[3] ?? "";
    const peer = cols[4] ?? "";
    out.push({
      local,
      peer,
      peerPort: Number(peer.slice(peer.lastIndexOf(":") + 1)),
      pid,
      bytesAcked: num("bytes_acked"),
      bytesSent: num("bytes_sent"),
      bytesReceived: num("bytes_received"),
      segsOut: num("segs_out"),
    });
  }
  return out;
}

export interface ByteTotals {
  acked: number;
  sent: number;
  received: number;
  segsOut: number;
}

/**
 * Per-socket byte counters added up over every socket ever seen. A socket that
 * closes keeps its last reading, so short-lived connections count as long as one
 * sample saw them; a reading lower than the last for the same address pair
 * means the pair was reused by a new socket.
 */
export class SocketTally {
  readonly #last = new Map<string, SocketReading>();
  readonly #retired = new Map<number, ByteTotals>();
  /** Distinct sockets seen (an address pair reused by a new socket counts again). */
  socketsSeen = 0;

  update(readings: SocketReading[]): void {
    for (const r of readings) {
      const key = `${r.local}>${r.peer}`;
      const prev = this.#last.get(key);
      if (prev && r.bytesAcked < prev.bytesAcked) {
        const t = this.#retired.get(prev.peerPort) ?? { acked: 0, sent: 0, received: 0, segsOut: 0 };
        t.acked += prev.bytesAcked;
        t.sent += prev.bytesSent;
        t.received += prev.bytesReceived;
        t.segsOut += prev.segsOut;
        this.#retired.set(prev.peerPort, t);
      }
      if (!prev || r.bytesAcked < prev.bytesAcked) this.socketsSeen++;
      this.#last.set(key, r);
    }
  }

  /** Totals per peer port over every socket seen so far. */
  totals(): Map<number, ByteTotals> {
    const out = new Map<number, ByteTotals>();
    for (const [port, t] of this.#retired) out.set(port, { ...t });
    for (const r of this.#last.values()) {
      const t = out.get(r.peerPort) ?? { acked: 0, sent: 0, received: 0, segsOut: 0 };
      t.acked += r.bytesAcked;
      t.sent += r.bytesSent;
      t.received += r.bytesReceived;
      t.segsOut += r.segsOut;
      out.set(r.peerPort, t);
    }
    return out;
  }
}

export function machineInfo() {
  let cpuModel = cpus()[0]?.model ?? "unknown";
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpuModel;
  } catch {
    // keep os.cpus()
  }
  return {
    nproc: cpus().length,
    cpuModel,
    memTotalKb: Math.round(totalmem() / 1024),
    kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    node: process.version,
  };
}

export function loadAverage(): number[] {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
}
