/**
 * Every TCP connect and accept, seen from the kernel with eBPF (bpftrace), so
 * that a client opening one short connection per request is counted even
 * though /proc snapshots almost never catch its socket established.
 *
 * One bpftrace process per agent prints one line per connection of the
 * processes it follows: the service's (the pids its `pids()` callback
 * returns) and every process they fork (a process forked per request is
 * counted too), filtered in the kernel, so connections elsewhere on the host
 * never wake the agent (bench/BENCHMARKS.md: it read every line of the
 * host before). The agent counts them per remote endpoint until taken.
 *
 *  - connect (outbound): `sock:inet_sock_set_state` CLOSE → SYN_SENT runs in
 *    tcp_v4_connect/tcp_v6_connect, in the connecting process: its pid is
 *    kept by socket; SYN_SENT → ESTABLISHED (often in softirq, where `pid` is
 *    whoever was interrupted) prints it with the addresses, then known. A
 *    connect that fails (SYN_SENT → CLOSE) is dropped.
 *  - accept (inbound): the exit of accept/accept4, in the accepting process;
 *    the new socket is found through the fd the call returned (kprobes on
 *    inet_csk_accept are not available on every kernel; syscall tracepoints
 *    are). io_uring accepts are not seen.
 *
 * Tracepoints need tracefs; where it is not mounted, bpftrace runs in a
 * private mount namespace (unshare -m) that mounts it, so the host's mounts
 * are untouched. The program is fixed text: nothing from callers goes in.
 * A tick line every 5 s shows it is alive, and makes an orphaned bpftrace end
 * (SIGPIPE) soon after the agent that started it.
 *
 * bpftrace prints "Attaching N probes" before it attaches them, so the source
 * is declared running only once it has seen a loopback connection the agent
 * opens to itself, both connected and accepted: from then on none is missed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { accessSync, closeSync, constants, existsSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { createInterface } from "node:readline";
import { backoffMs } from "@coral/common/async";
import { gatherReads } from "./gather-reads.ts";
import { isOwnConnection } from "./own-connections.ts";
import { formatEndpoint } from "./procnet.ts";

export type ConnectionSourceName = "ebpf" | "procfs";

export interface KernelConnectionEvent {
  kind: "connect" | "accept";
  /** Process (thread group) id of the process that connected or accepted. */
  pid: number;
  /** Its parent's process id. */
  ppid: number;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
}

/** Fds from here on, closed by the agent, name a pid for the program to follow (as in bpf/http-requests.bt.tmpl: one close tells both). */
export const followFdBase = 0x3000_0000;
/**
 * Closed by the agent once it has seen its attach check: from then on its own
 * connections are not printed. One fd per program: two tracers in one process
 * (two in-process agents) must not silence each other's check while it runs.
 */
const quietFdBase = 0x3ffe_0000; // below 0x3fff_fff0, the HTTP tracer's attach poke
const quietFds = 0xffff;
let nextQuietFd = 0;
const maxPid = 0x40_0000; // PID_MAX_LIMIT: 4,194,304

/**
 * The program, filled in with integers only: the processes to follow at the
 * start (`pids`) and the agent's pid. It prints the connects and accepts of
 * the processes it follows (and of processes they fork), not the host's: a
 * host with thousands of connections a second elsewhere costs the agent
 * nothing. The agent names a process to follow later by closing the invalid
 * fd followFdBase + pid; its own connections (the attach check) are printed
 * until it closes quietFd.
 */
export function kernelConnectionsProgram(opts: { pids: readonly number[]; agentPid: number; quietFd: number }): string {
  const ints = [...opts.pids, opts.agentPid];
  if (!ints.every((n) => Number.isSafeInteger(n) && n > 0 && n < maxPid)) throw new TypeError("pids and agentPid must be pids");
  const { quietFd } = opts;
  if (!Number.isSafeInteger(quietFd) || quietFd < quietFdBase || quietFd >= quietFdBase + quietFds) throw new TypeError("quietFd out of its range");
  const agent = String(opts.agentPid);
  const seed = opts.pids.map((p) => `  @svc[${p}] = 1;`).join("\n");
  return `
BEGIN
{
  @quiet = 0;
${seed}
}

tracepoint:task:task_newtask
/@svc[pid] && (args->clone_flags & 0x10000) == 0/
{
  @svc[args->pid] = 1;
  printf("F %d %d\\n", args->pid, pid);
}

tracepoint:sched:sched_process_exit
/@svc[tid]/
{
  delete(@svc[tid]);
}

tracepoint:syscalls:sys_enter_close
/pid == ${agent} && args->fd >= ${followFdBase} && args->fd < ${followFdBase + maxPid}/
{
  @svc[args->fd - ${followFdBase}] = 1;
}

tracepoint:syscalls:sys_enter_close
/pid == ${agent} && args->fd == ${quietFd}/
{
  @quiet = 1;
}

tracepoint:sock:inet_sock_set_state
/args->protocol == 6/
{
  if (args->newstate == 2) {
    if (@svc[pid] || (pid == ${agent} && @quiet == 0)) {
      @cpid[args->skaddr] = pid;
      @cppid[args->skaddr] = curtask->real_parent->tgid;
    }
  } else if (args->oldstate == 2) {
    $p = @cpid[args->skaddr];
    $pp = @cppid[args->skaddr];
    delete(@cpid[args->skaddr]);
    delete(@cppid[args->skaddr]);
    if (args->newstate == 1 && $p != 0) {
      if (args->family == 2) {
        printf("C %d %d %s %d %s %d\\n", $p, $pp, ntop(args->saddr), args->sport, ntop(args->daddr), args->dport);
      } else {
        printf("C %d %d %s %d %s %d\\n", $p, $pp, ntop(args->saddr_v6), args->sport, ntop(args->daddr_v6), args->dport);
      }
    }
  }
}

tracepoint:syscalls:sys_exit_accept4,
tracepoint:syscalls:sys_exit_accept
/args->ret >= 0 && (@svc[pid] || (pid == ${agent} && @quiet == 0))/
{
  $file = *(curtask->files->fdt->fd + args->ret);
  $sock = (struct socket *)$file->private_data;
  $sk = $sock->sk;
  $f = $sk->__sk_common.skc_family;
  if ($sk->sk_protocol == 6) {
    $d = $sk->__sk_common.skc_dport;
    $dport = (($d & 0xff) << 8) | (($d >> 8) & 0xff);
    if ($f == 2) {
      printf("A %d %d %s %d %s %d\\n", pid, curtask->real_parent->tgid, ntop($sk->__sk_common.skc_rcv_saddr), $sk->__sk_common.skc_num, ntop($sk->__sk_common.skc_daddr), $dport);
    } else if ($f == 10) {
      printf("A %d %d %s %d %s %d\\n", pid, curtask->real_parent->tgid, ntop($sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8), $sk->__sk_common.skc_num, ntop($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8), $dport);
    }
  }
}

interval:s:5
{
  printf("T\\n");
}
`;
}

const ipRe = /^[0-9a-fA-F:.]{2,45}$/;
const intRe = /^\d{1,10}$/;

function ip(text: string): string | null {
  if (!ipRe.test(text)) return null;
  const lower = text.toLowerCase();
  // IPv4-mapped IPv6 (a dual-stack socket talking IPv4) as plain IPv4, as /proc readers give it.
  return lower.startsWith("::ffff:") && lower.includes(".") ? lower.slice(7) : lower;
}

function int(text: string | undefined, max: number): number | null {
  if (text === undefined || !intRe.test(text)) return null;
  const n = Number(text);
  return n <= max ? n : null;
}

/**
 * Parses one line of the program's output: `C|A pid ppid localIp localPort
 * remoteIp remotePort`. Anything else (ticks, warnings, truncated lines)
 * gives null.
 */
export function parseKernelConnectionLine(line: string): KernelConnectionEvent | null {
  const f = line.trim().split(" ");
  if (f.length !== 7 || (f[0] !== "C" && f[0] !== "A")) return null;
  const pid = int(f[1], 2 ** 31);
  const ppid = int(f[2], 2 ** 31);
  const localIp = ip(f[3] ?? "");
  const localPort = int(f[4], 65535);
  const remoteIp = ip(f[5] ?? "");
  const remotePort = int(f[6], 65535);
  if (pid === null || pid === 0 || ppid === null || localIp === null || localPort === null || remoteIp === null || remotePort === null) return null;
  return { kind: f[0] === "C" ? "connect" : "accept", pid, ppid, localIp, localPort, remoteIp, remotePort };
}

/** Connections opened to (outbound) or from (inbound) one endpoint since the last take. */
export interface OpenedCount {
  direction: "outbound" | "inbound";
  /** Outbound: the server's "ip:port". Inbound: the client's IP (its port changes every time). */
  remote: string;
  /** The last connection's local "ip:port". */
  localAddr: string;
  opened: number;
}

/** Counts connection events per (direction, remote) until taken. */
export class OpenedCounter {
  #counts = new Map<string, OpenedCount>();

  add(e: KernelConnectionEvent): OpenedCount {
    const direction = e.kind === "connect" ? "outbound" : "inbound";
    const remote = direction === "outbound" ? formatEndpoint(e.remoteIp, e.remotePort) : e.remoteIp;
    const key = `${direction}|${remote}`;
    const localAddr = formatEndpoint(e.localIp, e.localPort);
    const prev = this.#counts.get(key);
    if (prev) {
      prev.opened++;
      prev.localAddr = localAddr;
      return prev;
    }
    const fresh: OpenedCount = { direction, remote, localAddr, opened: 1 };
    this.#counts.set(key, fresh);
    return fresh;
  }

  /** Everything counted since the last take; starts over. */
  take(): OpenedCount[] {
    const out = [...this.#counts.values()];
    this.#counts.clear();
    return out;
  }
}

/** Where bpftrace is: explicit path, CORAL_BPFTRACE, else PATH (and /usr/sbin, /usr/bin). */
export function findBpftraceBinary(explicit?: string): string | null {
  const candidates = explicit
    ? [explicit]
    : process.env.CORAL_BPFTRACE
      ? [process.env.CORAL_BPFTRACE]
      : [...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/sbin", "/usr/bin"].map((d) => `${d}/bpftrace`);
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return null;
}

/** Why the kernel source cannot run here, or null when it may. */
export function kernelConnectionsUnavailable(bpftracePath?: string): string | null {
  if (process.platform !== "linux") return "eBPF needs Linux";
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "eBPF needs root (the agent runs as an unprivileged user)";
  if (findBpftraceBinary(bpftracePath) === null) return "bpftrace is not installed (apt-get install bpftrace)";
  return null;
}

function tracefsMounted(): boolean {
  return existsSync("/sys/kernel/tracing/events/sock") || existsSync("/sys/kernel/debug/tracing/events/sock");
}

export interface KernelConnectionsOptions {
  /** The service's processes now (read on every event). */
  pids: () => Iterable<number>;
  bpftracePath?: string;
  /** Restarts after an unexpected exit: first delay (default 1 s), doubling up to maxRestartDelayMs (default 60 s). */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
  /** Restarts in a row that fail to attach before giving up (default 5). */
  maxFailedRestarts?: number;
  /** How long bpftrace may take to attach (default 60 s: it parses the kernel's BTF first). */
  attachTimeoutMs?: number;
  /** How long its output gathers after each read (default 5 ms; 0 reads it as it comes): see gather-reads.ts. */
  readPauseMs?: number;
  /** The processes the program follows in the kernel (default `pids`): the shared tracer follows every service's. */
  follow?: () => Iterable<number>;
  /** Sees every connection printed (not the agent's own) before `pids` filters: the shared tracer hands them to each service. */
  onEvent?: (event: KernelConnectionEvent) => void;
  /** A followed process forked `child` (which the program follows from then on). */
  onFork?: (child: number, parent: number) => void;
}

export interface KernelConnectionsStatus {
  /** "ebpf" while bpftrace runs or is being restarted; "procfs" when it could not run (see reason). */
  source: ConnectionSourceName;
  state: "starting" | "running" | "restarting" | "stopped" | "unavailable";
  reason?: string;
  /** Connection lines read from the kernel (of the processes followed; the agent's own left out). */
  events: number;
  /** Those of the service's processes. */
  matched: number;
  /** Of those, connects (outbound) and accepts (inbound). */
  connects: number;
  accepts: number;
  /** Lines that did not parse. */
  malformed: number;
  restarts: number;
  bpftracePid?: number;
}

export interface KernelConnectionsEvents {
  /** A connection of the service's processes (already counted). */
  connection: [event: KernelConnectionEvent, count: OpenedCount];
  /** The source changed state (running, restarting, unavailable). */
  status: [status: KernelConnectionsStatus];
}

/**
 * The bpftrace process and what it counted. start() resolves once the probes
 * are attached (source "ebpf") or it is known they cannot be (source "procfs",
 * with the reason); it never throws.
 */
export class KernelConnections extends EventEmitter<KernelConnectionsEvents> {
  readonly counter = new OpenedCounter();
  #status: KernelConnectionsStatus = { source: "ebpf", state: "stopped", events: 0, matched: 0, connects: 0, accepts: 0, malformed: 0, restarts: 0 };
  #child: ChildProcess | undefined;
  #stopped = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #failedRestarts = 0;
  /** Pids the running program follows (seeded, or named to it since). */
  #known = new Set<number>();
  #followTimer: NodeJS.Timeout | undefined;
  #forks = 0;

  constructor(private readonly options: KernelConnectionsOptions) {
    super();
  }

  status(): KernelConnectionsStatus {
    return { ...this.#status };
  }

  /** True while connections come from the kernel (bpftrace attached). */
  active(): boolean {
    return this.#status.state === "running";
  }

  /** Grows with every connection and fork of the service's processes the kernel reported; null while it does not run. */
  changes(): number | null {
    return this.active() ? this.#status.matched + this.#forks : null;
  }

  async start(): Promise<KernelConnectionsStatus> {
    const why = kernelConnectionsUnavailable(this.options.bpftracePath);
    if (why) return this.#unavailable(why);
    this.#set({ state: "starting" });
    const err = await this.#spawn();
    if (err) return this.#unavailable(err);
    return this.status();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    clearInterval(this.#followTimer);
    this.#followTimer = undefined;
    const child = this.#child;
    this.#child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      // "close": it exited and every line it printed has been read (and counted).
      const exited = new Promise<void>((r) => child.once("close", () => r()));
      child.kill("SIGINT");
      const force = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(force);
    }
    clearInterval(this.#followTimer);
    this.#followTimer = undefined;
    if (this.#status.state !== "unavailable") this.#set({ state: "stopped", bpftracePid: undefined });
  }

  #set(patch: Partial<KernelConnectionsStatus>): void {
    const before = this.#status.state;
    this.#status = { ...this.#status, ...patch };
    if (patch.state && patch.state !== before) this.emit("status", this.status());
  }

  #unavailable(reason: string): KernelConnectionsStatus {
    this.#set({ source: "procfs", state: "unavailable", reason, bpftracePid: undefined });
    return this.status();
  }

  /** Names processes that joined the set to the running program now rather than within a second. */
  refresh(): void {
    this.#follow();
  }

  /** The processes to follow now: valid pids, not the agent. */
  #toFollow(): number[] {
    const pids = (this.options.follow ?? this.options.pids)();
    return [...new Set(pids)].filter((p) => Number.isSafeInteger(p) && p > 0 && p < maxPid && p !== process.pid);
  }

  /**
   * Names the processes of the set the program does not follow yet to it
   * (closing the invalid fd followFdBase + pid runs the probe that adds it,
   * before close returns). Pids that left the set are forgotten, so one that
   * comes back (a reused pid the kernel dropped on exit) is named again.
   */
  #follow(): void {
    if (!this.#child || this.#status.state !== "running") return;
    const now = new Set(this.#toFollow());
    for (const p of this.#known) if (!now.has(p)) this.#known.delete(p);
    for (const p of now) {
      if (this.#known.has(p)) continue;
      try {
        closeSync(followFdBase + p);
      } catch {
        // EBADF, as meant
      }
      this.#known.add(p);
    }
  }

  /** Spawns bpftrace; resolves with null once attached, else with why not. */
  #spawn(): Promise<string | null> {
    const bpftrace = findBpftraceBinary(this.options.bpftracePath)!;
    const seed = this.#toFollow();
    const quietFd = quietFdBase + (nextQuietFd++ % quietFds);
    const program = kernelConnectionsProgram({ pids: seed, agentPid: process.pid, quietFd });
    this.#known = new Set(seed);
    const args = ["-B", "line", "-e", program];
    // sh -c: $0 is bpftrace, $1 the program (never interpolated into the script).
    const child = tracefsMounted()
      ? spawn(bpftrace, args, { stdio: ["ignore", "pipe", "pipe"] })
      : spawn(
          "unshare",
          ["-m", "--propagation", "private", "sh", "-c", 'mount -t tracefs nodev /sys/kernel/tracing && exec "$0" -B line -e "$1"', bpftrace, program],
          { stdio: ["ignore", "pipe", "pipe"] },
        );
    this.#child = child;
    let stderr = "";
    let attached = false;
    return new Promise((resolve) => {
      let settled = false;
      const settle = (err: string | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(err);
      };
      const timer = setTimeout(() => {
        settle(`bpftrace did not attach within ${Math.round((this.options.attachTimeoutMs ?? 60_000) / 1000)} s`);
        child.kill("SIGKILL");
      }, this.options.attachTimeoutMs ?? 60_000);
      child.on("error", (err) => settle(`cannot run bpftrace: ${err.message}`));
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (d: string) => {
        if (stderr.length < 4096) stderr += d;
      });
      let probe: AttachProbe | undefined;
      const lines = createInterface({ input: child.stdout! });
      gatherReads(child.stdout!, this.options.readPauseMs);
      lines.on("line", (line) => {
        if (!attached) {
          if (!probe && /^Attaching \d+ probes?/.test(line)) {
            probe = new AttachProbe();
            void probe.start().catch((err: Error) => settle(`cannot open the attach check's loopback listener: ${err.message}`));
            return;
          }
          if (probe?.sees(line)) {
            attached = true;
            probe.close();
            // Stopped while it attached: these are its last lines, read after
            // stop() cleared the timers; starting them now would keep the
            // agent's process alive after everything else has stopped.
            if (this.#stopped || this.#child !== child) {
              settle(null);
              return;
            }
            // The agent's own connections were printed for the check only.
            try {
              closeSync(quietFd);
            } catch {
              // EBADF, as meant
            }
            this.#failedRestarts = 0;
            this.#set({ source: "ebpf", state: "running", reason: undefined, bpftracePid: child.pid });
            // Processes that joined the set while it attached, then every second.
            this.#follow();
            this.#followTimer ??= setInterval(() => this.#follow(), 1000);
            settle(null);
            return;
          }
        }
        this.#line(line);
      });
      child.on("close", () => probe?.close());
      child.on("exit", (code, signal) => {
        if (this.#child === child) this.#child = undefined;
        const why = bpftraceError(stderr) || `bpftrace exited (${signal ?? `code ${code}`})`;
        if (!attached) {
          settle(why);
          return;
        }
        if (this.#stopped) return;
        this.#restartLater(why);
      });
    });
  }

  #restartLater(why: string): void {
    const attempt = this.#failedRestarts;
    if (attempt >= (this.options.maxFailedRestarts ?? 5)) {
      this.#unavailable(`bpftrace keeps failing (${why})`);
      return;
    }
    this.#set({ state: "restarting", reason: why, bpftracePid: undefined });
    const delay = backoffMs(attempt, this.options.restartDelayMs ?? 1000, this.options.maxRestartDelayMs ?? 60_000, { jitter: "none" });
    this.#restartTimer = setTimeout(() => {
      if (this.#stopped) return;
      this.#status.restarts++;
      void this.#spawn().then((err) => {
        if (err === null || this.#stopped) return;
        this.#failedRestarts++;
        this.#restartLater(err);
      });
    }, delay);
  }

  #line(line: string): void {
    if (line === "T" || line === "") return;
    const fork = /^F (\d{1,10}) (\d{1,10})$/.exec(line);
    if (fork) {
      this.#forks++;
      this.options.onFork?.(Number(fork[1]), Number(fork[2]));
      return;
    }
    const e = parseKernelConnectionLine(line);
    if (!e) {
      this.#status.malformed++;
      return;
    }
    // The agent's own connections (its attach check) are not the service's,
    // nor are a service's accepts of the agent's probes and scrapes.
    if (e.pid === process.pid || (e.kind === "accept" && isOwnConnection(e.remoteIp, e.remotePort))) return;
    this.#status.events++;
    this.options.onEvent?.(e);
    const pids = new Set(this.options.pids());
    if (!pids.has(e.pid) && !pids.has(e.ppid)) return;
    this.#status.matched++;
    if (e.kind === "connect") this.#status.connects++;
    else this.#status.accepts++;
    this.emit("connection", e, this.counter.add(e));
  }
}

/**
 * Connects to a loopback listener of its own every 200 ms until bpftrace has
 * printed both the connect and the accept of one of those connections (told
 * apart by the listener's port, which is this check's alone).
 */
class AttachProbe {
  #server: Server | undefined;
  #timer: NodeJS.Timeout | undefined;
  #port = -1;
  #connected = false;
  #accepted = false;
  #closed = false;

  async start(): Promise<void> {
    const server = createServer((sock) => sock.destroy());
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    if (this.#closed) {
      server.close();
      return;
    }
    this.#port = (server.address() as { port: number }).port;
    const ping = () => {
      const c = createConnection({ host: "127.0.0.1", port: this.#port });
      c.on("error", () => undefined);
      c.on("connect", () => c.destroy());
    };
    ping();
    this.#timer = setInterval(ping, 200);
  }

  /** True once both halves of a check connection have been seen. */
  sees(line: string): boolean {
    if (this.#port < 0) return false;
    const e = parseKernelConnectionLine(line);
    if (!e) return false;
    if (e.kind === "connect" && e.remotePort === this.#port && e.remoteIp === "127.0.0.1") this.#connected = true;
    if (e.kind === "accept" && e.localPort === this.#port) this.#accepted = true;
    return this.#connected && this.#accepted;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#server?.close();
  }
}

/** bpftrace's first real error line, without the harmless memlock warning of newer kernels. */
function bpftraceError(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.includes("RLIMIT_MEMLOCK"));
  const error = lines.find((l) => l.startsWith("ERROR")) ?? lines[0] ?? "";
  return error.slice(0, 300);
}
