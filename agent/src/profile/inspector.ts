// Opens the V8 inspector of a running, unmodified Node process: SIGUSR1 makes
// Node listen on loopback (127.0.0.1:9229 or its --inspect-port); we find the
// port among the process's own loopback listeners, read /json/list and talk
// the Chrome DevTools Protocol over a WebSocket. An inspector we opened is
// closed again (and checked to stop listening); one that was open before is
// someone else's, so it is left open.
//
// A process that runs the Coral SDK is asked instead (`inProcess`, the
// agent's SdkLink): the SDK opens the inspector in-process (node:inspector)
// on a free loopback port and answers its URL, so no signal is sent, an app
// that handles SIGUSR1 itself or runs with --disable-sigusr1 still works, and
// two Node services on a host never contend for 9229. The URL is used only
// when it is a loopback port the process itself listens on.
import { readFileSync, readlinkSync } from "node:fs";
import { get } from "node:http";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { isGone } from "../observe/procfs.ts";
import { socketInodes } from "../observe/procfs.ts";
import { TCP_LISTEN, readTcpTables } from "../observe/procnet.ts";
import { ProfileError } from "./errors.ts";
import { inspectPortProblem } from "./inspect-port.ts";

/** A way to have the process open its inspector itself (the app's Coral SDK), instead of SIGUSR1. */
export interface InProcessInspector {
  /**
   * Opens the inspector of `pid` unless it is open: its WebSocket URL, and
   * whether it was opened for us (then close() is owed); undefined when there
   * is no such way to `pid` (no SDK there). Throws when there is and it failed.
   */
  open(pid: number): Promise<{ url: string; openedForUs: boolean } | undefined>;
  /** Closes what open() opened for us. */
  close(pid: number): Promise<void>;
}

export interface InspectorOptions {
  /** How long to wait for the inspector to listen after SIGUSR1 (default 3 s). */
  openTimeoutMs?: number;
  /** Tried first: the process opens its inspector in-process (no SIGUSR1). */
  inProcess?: InProcessInspector;
}

/** How the inspector was reached: SIGUSR1 (or found open), or opened in-process by the app's Coral SDK. */
export type InspectorVia = "sigusr1" | "sdk-inspector";

/** A CDP session with one Node process. close() must be called whatever happens. */
export interface InspectorSession {
  readonly pid: number;
  readonly port: number;
  /** True when SIGUSR1 or the SDK opened it for us (and close() closes it again). */
  readonly openedByUs: boolean;
  readonly via: InspectorVia;
  send<T = unknown>(method: string, params?: object): Promise<T>;
  /** Calls `listener` with the params of each CDP event `method` (e.g. Debugger.scriptParsed); returns the function that stops it. */
  on(method: string, listener: (params: unknown) => void): () => void;
  /** Closes the WebSocket, and the inspector if we opened it; resolves with a problem in words, or "" when all closed. */
  close(): Promise<string>;
}

/** Node by its executable's name ("node", "node20", "node (deleted)") or its main thread's name. */
export function isNodeProcess(pid: number): boolean {
  try {
    if (/^node/.test(basename(readlinkSync(`/proc/${pid}/exe`)))) return true;
  } catch {
    // exe unreadable (gone, or another user's): fall back to comm
  }
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    return comm === "node" || comm === "MainThread";
  } catch {
    return false;
  }
}

const isLoopback = (ip: string) => ip.startsWith("127.") || ip === "::1";

/** Ports the process itself listens on at a loopback address. */
export async function loopbackListeners(pid: number): Promise<Set<number>> {
  const inodes = await socketInodes(pid);
  if (!inodes) throw new ProfileError("process_exited", `process ${pid} exited`);
  const ports = new Set<number>();
  for (const e of await readTcpTables(`/proc/${pid}/net`)) if (e.stateCode === TCP_LISTEN && inodes.has(e.inode) && isLoopback(e.localIp)) ports.add(e.localPort);
  return ports;
}

/** Whether a handler catches SIGUSR1 (bit 9 of SigCgt): if none does, the signal would kill the process. */
function catchesSigusr1(pid: number): boolean {
  const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m !== null && (BigInt(`0x${m[1]}`) & (1n << 9n)) !== 0n;
}

function failed(pid: number, why: string, cause?: unknown): ProfileError {
  return new ProfileError("inspector_failed", `the V8 inspector of process ${pid} could not be used: ${why}`, cause === undefined ? undefined : { cause });
}

/** GET http://127.0.0.1:<port>/json/list → the target's webSocketDebuggerUrl, or undefined when that is no inspector. */
async function debuggerUrl(port: number, timeoutMs: number): Promise<string | undefined> {
  const body = await new Promise<string | undefined>((resolve) => {
    const req = get({ host: "127.0.0.1", port, path: "/json/list", timeout: timeoutMs }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d.length + text.length > 1_000_000 ? "" : d));
      res.on("end", () => resolve(res.statusCode === 200 ? text : undefined));
      res.on("error", () => resolve(undefined));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
  if (body === undefined) return undefined;
  try {
    const list = JSON.parse(body) as { webSocketDebuggerUrl?: unknown }[];
    for (const t of Array.isArray(list) ? list : []) {
      if (typeof t.webSocketDebuggerUrl !== "string") continue;
      const url = new URL(t.webSocketDebuggerUrl);
      // Only the loopback port we found: never follow a URL elsewhere.
      if (url.protocol === "ws:" && isLoopback(url.hostname.replace(/^\[|\]$/g, "")) && Number(url.port) === port) return url.href;
    }
  } catch {
    // not JSON: some other server
  }
  return undefined;
}

/** Finds the inspector's port: a loopback listener new since SIGUSR1, or (when none appears) one already open before it. */
async function findPort(pid: number, before: ReadonlySet<number>, timeoutMs: number): Promise<{ port: number; url: string; openedByUs: boolean } | undefined> {
  const deadline = Date.now() + timeoutMs;
  const tried = new Set<number>();
  for (;;) {
    for (const port of await loopbackListeners(pid)) {
      if (before.has(port) || tried.has(port)) continue;
      const url = await debuggerUrl(port, 1000);
      if (url) return { port, url, openedByUs: true };
      tried.add(port); // the app's own new listener
    }
    if (Date.now() >= deadline) break;
    await sleep(50);
  }
  for (const port of before) {
    const url = await debuggerUrl(port, 500);
    if (url) return { port, url, openedByUs: false };
  }
  return undefined;
}

/** Processes whose inspector a session of this agent holds: a second would find the port already open, join it, and lose it when the first closes it. */
const inUse = new Set<number>();

/**
 * Opens (or joins) the inspector of `pid` and connects to it. Throws
 * ProfileError "inspector_failed" (or "process_exited"), also while another
 * session of this agent (a CPU or heap profile) holds that process's inspector.
 */
export async function openInspector(pid: number, options: InspectorOptions = {}): Promise<InspectorSession> {
  if (inUse.has(pid)) throw failed(pid, "another profile taken by this agent is using it (one at a time per process)");
  inUse.add(pid);
  try {
    return await connect(pid, options);
  } catch (err) {
    inUse.delete(pid);
    throw err;
  }
}

async function connect(pid: number, options: InspectorOptions): Promise<InspectorSession> {
  try {
    if (readlinkSync(`/proc/${pid}/ns/net`) !== readlinkSync("/proc/self/ns/net")) throw failed(pid, "it runs in another network namespace, whose loopback the agent cannot reach");
  } catch (err) {
    throw checkError(pid, err);
  }
  let sdkProblem = "";
  if (options.inProcess) {
    try {
      const session = await connectInProcess(pid, options.inProcess);
      if (session) return session;
    } catch (err) {
      if (err instanceof ProfileError && err.code === "process_exited") throw err;
      sdkProblem = `; the app's Coral SDK could not open it either: ${(err as Error).message}`;
    }
  }
  try {
    return await connectWithSignal(pid, options);
  } catch (err) {
    if (!sdkProblem || !(err instanceof ProfileError) || err.code !== "inspector_failed") throw err;
    throw new ProfileError(err.code, err.message + sdkProblem, { cause: err });
  }
}

function checkError(pid: number, err: unknown): ProfileError {
  if (isGone(err)) return new ProfileError("process_exited", `process ${pid} exited`, { cause: err });
  if (err instanceof ProfileError) return err;
  return failed(pid, String(err), err);
}

/** The SDK path: the URL the app's SDK answers, when it is a loopback port of the process itself. Undefined when there is no SDK. */
async function connectInProcess(pid: number, inProcess: InProcessInspector): Promise<InspectorSession | undefined> {
  const opened = await inProcess.open(pid);
  if (!opened) return undefined;
  const closeIt = () => (opened.openedForUs ? inProcess.close(pid).catch(() => undefined) : Promise.resolve());
  let url: URL;
  try {
    url = new URL(opened.url);
  } catch {
    await closeIt();
    throw failed(pid, `the app's Coral SDK answered ${JSON.stringify(opened.url.slice(0, 200))}, not an inspector URL`);
  }
  const port = Number(url.port);
  if (url.protocol !== "ws:" || !isLoopback(url.hostname.replace(/^\[|\]$/g, "")) || !(await loopbackListeners(pid)).has(port)) {
    await closeIt();
    throw failed(pid, `the app's Coral SDK answered ${url.origin}, which is not a loopback port process ${pid} listens on`);
  }
  return open(new Session(pid, port, opened.openedForUs, "sdk-inspector", new WebSocket(url.href, { handshakeTimeout: 3000, perMessageDeflate: false }), opened.openedForUs ? () => inProcess.close(pid) : undefined));
}

async function connectWithSignal(pid: number, options: InspectorOptions): Promise<InspectorSession> {
  // Said only to callers that would have used the SDK (live debugging): it found none in this process.
  const sdkHint = options.inProcess ? "; an app that runs the Coral SDK (coral.init) is debugged without the signal, its inspector opened in-process on a free port" : "";
  try {
    if (!catchesSigusr1(pid)) throw failed(pid, `it does not handle SIGUSR1 (started with --disable-sigusr1?), and the signal would end it${sdkHint}`);
  } catch (err) {
    throw checkError(pid, err);
  }
  const before = await loopbackListeners(pid);
  try {
    process.kill(pid, "SIGUSR1");
  } catch (err) {
    throw failed(pid, `SIGUSR1: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
  const openTimeoutMs = options.openTimeoutMs ?? 3000;
  const found = await findPort(pid, before, openTimeoutMs);
  if (!found) {
    const held = await inspectPortProblem(pid);
    throw failed(
      pid,
      (held ??
        `no inspector listened on loopback within ${(openTimeoutMs / 1000).toFixed(0)} s of SIGUSR1: the app may handle SIGUSR1 itself (a process.on("SIGUSR1") listener stops Node from opening its inspector on the signal), or its inspect port is taken by another program`) + sdkHint,
    );
  }
  return open(new Session(pid, found.port, found.openedByUs, "sigusr1", new WebSocket(found.url, { handshakeTimeout: 3000, perMessageDeflate: false })));
}

/** Waits for the WebSocket to open; closes everything again when it does not. */
async function open(session: Session): Promise<InspectorSession> {
  try {
    await session.opened();
  } catch (err) {
    const problem = await session.close();
    throw failed(session.pid, `WebSocket to port ${session.port}: ${String(err)}${problem ? `; ${problem}` : ""}`, err);
  }
  return session;
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

class Session implements InspectorSession {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<(params: unknown) => void>>();
  private readonly closed: Promise<void>;

  constructor(
    readonly pid: number,
    readonly port: number,
    readonly openedByUs: boolean,
    readonly via: InspectorVia,
    private readonly ws: WebSocket,
    /** Closes the inspector in-process (the SDK that opened it for us). */
    private readonly closeInProcess?: () => Promise<void>,
  ) {
    ws.on("message", (data: WebSocket.RawData) => this.receive(String(data)));
    ws.on("error", () => undefined); // "close" follows and fails what is pending
    this.closed = new Promise((resolve) =>
      ws.once("close", () => {
        for (const p of this.pending.values()) p.reject(new Error("the inspector closed the connection"));
        this.pending.clear();
        resolve();
      }),
    );
  }

  opened(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.ws.readyState === WebSocket.OPEN) return resolve();
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
      this.ws.once("close", () => reject(new Error("closed before it opened")));
    });
  }

  send<T = unknown>(method: string, params: object = {}): Promise<T> {
    if (this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error(`${method}: the inspector connection is closed`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  on(method: string, listener: (params: unknown) => void): () => void {
    let set = this.listeners.get(method);
    if (!set) this.listeners.set(method, (set = new Set()));
    set.add(listener);
    return () => void set.delete(listener);
  }

  private receive(text: string): void {
    let msg: { id?: number; result?: unknown; error?: { message?: string }; method?: string; params?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.id === undefined) {
      for (const listener of [...(this.listeners.get(msg.method ?? "") ?? [])]) listener(msg.params);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id!);
    if (msg.error) p.reject(new Error(msg.error.message ?? "CDP error"));
    else p.resolve(msg.result);
  }

  async close(): Promise<string> {
    try {
      return await this.closeAll();
    } finally {
      inUse.delete(this.pid);
    }
  }

  private async closeAll(): Promise<string> {
    // The SDK that opened it closes it (inspector.close() in the app, which drops our connection too).
    const closedInProcess = this.openedByUs && this.closeInProcess !== undefined && (await this.closeInProcess().then(() => true, () => false));
    if (this.openedByUs && !closedInProcess && this.ws.readyState === WebSocket.OPEN) {
      // inspector.close() drops our own connection and never answers; require is
      // the inspector console's, so it works in ES modules too.
      void this.send("Runtime.evaluate", {
        expression: "typeof require === 'function' ? require('inspector').close() : process._debugEnd()",
        includeCommandLineAPI: true,
      }).catch(() => undefined);
    }
    if (this.openedByUs && this.ws.readyState === WebSocket.OPEN) await Promise.race([this.closed, sleep(2000)]);
    if (this.ws.readyState !== WebSocket.CLOSED) {
      this.ws.terminate();
      await this.closed;
    }
    if (!this.openedByUs) return "";
    const deadline = Date.now() + 3000;
    for (;;) {
      try {
        if (!(await loopbackListeners(this.pid)).has(this.port)) return "";
      } catch {
        return ""; // the process is gone, and its inspector with it
      }
      if (Date.now() >= deadline) return `its inspector still listens on 127.0.0.1:${this.port}`;
      await sleep(50);
    }
  }
}
