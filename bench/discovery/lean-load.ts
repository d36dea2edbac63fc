// A lean fixed-rate HTTP/1.1 load generator for the discovery benchmarks.
// autocannon costs about as much CPU per request as the front it measures
// (bench/BENCHMARKS.md, issue 26), and on a 2-core machine that CPU is taken
// from the server. This one writes prebuilt requests on kept-alive sockets
// and reads only the status line, Content-Length and body of each answer.
// Like wrk2 it is an open loop: request i is due at i / rate seconds, and its
// latency counts from then, not from when a free connection sent it, so a
// stalled server is not hidden by the client waiting politely
// (coordinated omission).
import net from "node:net";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { LoadConfig, LoadResult } from "./types.ts";

/** How often the sender wakes to issue what has come due. */
const tickMs = 1;

interface Connection {
  socket: net.Socket;
  /** Intended start (ms, performance.now()) of the request on the wire; undefined when idle. */
  due?: number;
  sentAt?: number;
  received: Buffer;
  dead?: boolean;
}

/** What is known once an answer's head is in: its status and where its body ends, or that it is malformed. */
type AnswerHead = { status: number; end: number } | { malformed: string } | undefined;

/** Parses a complete HTTP/1.1 answer head at the start of `data`; undefined while incomplete. */
export function answerHead(data: Buffer): AnswerHead {
  const headEnd = data.indexOf("\r\n\r\n");
  if (headEnd < 0) return data.length > 16_384 ? { malformed: "answer head over 16 KiB" } : undefined;
  const head = data.toString("latin1", 0, headEnd);
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  if (!status) return { malformed: `not an HTTP/1.1 answer: ${JSON.stringify(head.slice(0, 40))}` };
  const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
  if (!length) return { malformed: "answer without Content-Length (the discovery front always sends one)" };
  return { status: Number(status[1]), end: headEnd + 4 + Number(length[1]) };
}

/**
 * What a connection's bytes so far hold: nothing complete yet, a malformed
 * answer, or one whole answer (with `extra` when more bytes followed it,
 * which no request asked for).
 */
type Received = { partial: true } | { malformed: string } | { status: number; extra: boolean };

/** Appends `chunk` to what `reader` holds and says whether a whole answer is in; a whole one is taken out. */
function receive(reader: { received: Buffer }, chunk: Buffer): Received {
  reader.received = reader.received.length === 0 ? chunk : Buffer.concat([reader.received, chunk]);
  const head = answerHead(reader.received);
  if (head === undefined) return { partial: true };
  if ("malformed" in head) return head;
  if (reader.received.length < head.end) return { partial: true };
  const extra = reader.received.length > head.end;
  reader.received = Buffer.alloc(0);
  return { status: head.status, extra };
}

/** The p-th percentile (0-100) of ascending `sorted`; 0 when it is empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The Connect lookup method's path, and the REST lookup's path for a mesh. */
export const connectLookupPath = "/coral.discovery.v1.DiscoveryService/LookupColony";
export const restLookupPath = (meshId: string) => `/v1/mesh/${encodeURIComponent(meshId)}/colony`;

/** Prebuilt requests, one per mesh id, in the form LoadConfig's mode asks for. */
export function leanRequests(config: LoadConfig): Buffer[] {
  const host = new URL(config.url).host;
  return config.meshIds.map((meshId) => {
    if (config.mode === "rest")
      return Buffer.from(`GET ${restLookupPath(meshId)} HTTP/1.1\r\nHost: ${host}\r\n\r\n`, "latin1");
    const body = JSON.stringify({ meshId });
    return Buffer.from(
      `POST ${connectLookupPath} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
}

/**
 * Runs the load for `seconds` at config.overallRate (required: an open loop
 * needs a rate) and returns what autocannon's wrapper returns.
 */
export async function runLeanLoad(config: LoadConfig, seconds: number): Promise<LoadResult> {
  const rate = config.overallRate;
  if (!rate || rate <= 0) throw new Error("the lean load generator needs a fixed rate (overallRate)");
  const requests = leanRequests(config);
  if (requests.length === 0) throw new Error("no mesh ids to look up");
  const { hostname, port } = new URL(config.url);
  const timeoutMs = 10_000;
  const worstBySecond: number[] = [];
  let started = performance.now();
  const latencies = new Float64Array(Math.ceil(seconds * rate) + 16);
  /** From the request's write to its answer: the latency without the client's own delays. */
  const onWire = new Float64Array(latencies.length);
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  let done = 0;
  let non2xx = 0;
  let errors = 0;
  let timeouts = 0;
  const statusCodes: Record<string, number> = {};
  /** Due times of requests no connection has taken yet, oldest first. */
  const backlog: number[] = [];
  let backlogHead = 0;
  let next = Math.floor(Math.random() * requests.length);
  const idle: Connection[] = [];
  const all = new Set<Connection>();
  let inFlight = 0;
  let stopping = false;

  const send = (c: Connection, due: number) => {
    c.due = due;
    c.sentAt = performance.now();
    inFlight++;
    next = (next + 7919) % requests.length; // a prime stride spreads consecutive requests over meshes
    c.socket.write(requests[next]!);
  };
  const release = (c: Connection) => {
    if (c.due !== undefined) inFlight--;
    c.due = undefined;
    if (backlogHead < backlog.length) send(c, backlog[backlogHead++]!);
    else if (!stopping) idle.push(c);
  };
  const fail = (c: Connection, timedOut: boolean) => {
    if (c.dead) return;
    c.dead = true;
    all.delete(c);
    if (c.due !== undefined) {
      inFlight--;
      if (timedOut) timeouts++;
      else errors++;
    }
    c.socket.destroy();
    const at = idle.indexOf(c);
    if (at >= 0) idle.splice(at, 1);
    if (!stopping) open(); // keep the connection count
  };
  const open = () => {
    const c: Connection = { socket: net.connect({ host: hostname, port: Number(port), noDelay: true }), received: Buffer.alloc(0) };
    all.add(c);
    c.socket.once("connect", () => release(c));
    c.socket.on("data", (chunk: Buffer) => {
      const answer = receive(c, chunk);
      if ("partial" in answer) return;
      if ("malformed" in answer) return fail(c, false);
      if (c.due === undefined || answer.extra) return fail(c, false); // an answer nobody asked for
      if (answer.status >= 200 && answer.status < 300) {
        const now = performance.now();
        const latency = now - c.due;
        onWire[done] = now - c.sentAt!;
        latencies[done++] = latency;
        const second = Math.floor((c.due - started) / 1000);
        worstBySecond[second] = Math.max(worstBySecond[second] ?? 0, latency);
      } else non2xx++;
      statusCodes[answer.status] = (statusCodes[answer.status] ?? 0) + 1;
      release(c);
    });
    c.socket.on("error", () => fail(c, false));
    c.socket.on("close", () => fail(c, false));
  };
  for (let i = 0; i < config.connections; i++) open();

  started = performance.now();
  let issued = 0;
  let timeoutsCheckedAt = started;
  await new Promise<void>((finish) => {
    const timer = setInterval(() => {
      const now = performance.now();
      const elapsed = now - started;
      const due = Math.min(Math.floor((Math.min(elapsed, seconds * 1000) / 1000) * rate), latencies.length);
      for (; issued < due; issued++) {
        const at = started + (issued * 1000) / rate;
        const c = idle.pop();
        if (c) send(c, at);
        else backlog.push(at);
      }
      if (backlogHead > 4096) {
        backlog.splice(0, backlogHead);
        backlogHead = 0;
      }
      if (now - timeoutsCheckedAt >= 100) {
        timeoutsCheckedAt = now;
        for (const c of all) if (c.sentAt !== undefined && c.due !== undefined && now - c.sentAt > timeoutMs) fail(c, true);
      }
      if (elapsed >= seconds * 1000) {
        stopping = true;
        // What is on the wire gets its timeout to come back; what never left counts as timed out.
        if (inFlight === 0 || elapsed >= seconds * 1000 + timeoutMs) {
          timeouts += inFlight + (backlog.length - backlogHead);
          clearInterval(timer);
          finish();
        }
      }
    }, tickMs);
  });
  for (const c of all) {
    c.dead = true;
    c.socket.destroy();
  }
  loopDelay.disable();
  const sorted = latencies.subarray(0, done).sort();
  const pct = (p: number) => Number(percentile(sorted, p).toFixed(2));
  const completed = done + non2xx;
  return {
    mode: config.mode,
    connections: config.connections,
    durationSeconds: seconds,
    requests: completed,
    requestsPerSecond: completed / seconds,
    latencyMs: { p50: pct(50), p90: pct(90), p99: pct(99), max: pct(100), mean: done === 0 ? 0 : Number((sorted.reduce((a, b) => a + b, 0) / done).toFixed(2)) },
    ok2xx: done,
    non2xx,
    errors,
    timeouts,
    statusCodes,
    onWireP99Ms: Number(percentile(onWire.subarray(0, done).sort(), 99).toFixed(2)),
    clientLoopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
    slowSeconds: worstBySecond.flatMap((ms, second) => (ms > 100 ? [[second, Math.round(ms)] as [number, number]] : [])),
  };
}

/**
 * Looks every mesh up once, `connections` at a time, as fast as the server
 * answers: the warm-up of a discovery that has served lookups for a while
 * (its front's answer cache holds every mesh). A time-based warm-up at the
 * phase's rate leaves most meshes cold when cold lookups are slow.
 * Resolves with the number of answers that were not 2xx.
 */
export async function askEachOnce(config: LoadConfig): Promise<{ asked: number; failed: number }> {
  const requests = leanRequests(config);
  const { hostname, port } = new URL(config.url);
  let taken = 0;
  let failed = 0;
  // One connection asks, waits for the whole answer, asks the next, until none is left.
  const worker = () =>
    new Promise<void>((finish, fail) => {
      const socket = net.connect({ host: hostname, port: Number(port), noDelay: true });
      const reader = { received: Buffer.alloc(0) };
      const askNext = () => {
        if (taken < requests.length) return void socket.write(requests[taken++]!);
        socket.removeAllListeners("close");
        socket.end();
        finish();
      };
      socket.once("connect", askNext);
      socket.on("data", (chunk: Buffer) => {
        const answer = receive(reader, chunk);
        if ("partial" in answer) return;
        if ("malformed" in answer) return socket.destroy(), fail(new Error(answer.malformed));
        if (answer.status < 200 || answer.status >= 300) failed++;
        askNext();
      });
      socket.on("error", fail);
      socket.on("close", () => fail(new Error("the server closed a connection during the warm-up")));
    });
  await Promise.all(Array.from({ length: Math.min(config.connections, requests.length) }, worker));
  return { asked: requests.length, failed };
}
