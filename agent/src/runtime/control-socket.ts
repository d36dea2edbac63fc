// A running agent's local control: `coral connect --add/--remove/--list`
// (and a reload) speak one JSON line each over a unix socket in the agent's
// folder. The socket is 0600 in a 0700 folder, so only the agent's own user
// (and root) can reach it; each request is size-capped and checked, and a
// bad one gets an error answer, never a crash.
import { chmod, mkdir, rm } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { checkServiceName, checkServicePort, isEndpointUrl, ServiceSpecError, type ServiceSpec } from "./services.ts";
import type { HostedService } from "./host.ts";

export type ControlRequest = { op: "list" } | { op: "add"; spec: ServiceSpec } | { op: "remove"; name: string } | { op: "reload" };

export type ControlAnswer =
  | { ok: true; services: HostedService[]; note?: string }
  | { ok: false; code: "invalid" | "unknown" | "failed"; error: string; services?: HostedService[] };

export interface ControlHandler {
  list(): HostedService[];
  add(spec: ServiceSpec): Promise<unknown>;
  remove(name: string): Promise<void>;
  /** Reads the configuration again; undefined when the agent has none (services named on the command line). */
  reload?: () => Promise<string>;
}

const maxRequestBytes = 64 * 1024;

/** The request a line holds, or why it is refused. */
export function parseControlRequest(line: string): ControlRequest | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { error: "not JSON" };
  }
  if (typeof v !== "object" || v === null) return { error: "not an object" };
  const o = v as Record<string, unknown>;
  try {
    switch (o.op) {
      case "list":
      case "reload":
        return { op: o.op };
      case "remove":
        if (typeof o.name !== "string") return { error: "remove: name must be a string" };
        return { op: "remove", name: checkServiceName(o.name) };
      case "add":
        return { op: "add", spec: specFrom(o.spec) };
      default:
        return { error: `unknown op ${JSON.stringify(o.op)}; list, add, remove or reload` };
    }
  } catch (err) {
    if (err instanceof ServiceSpecError) return { error: err.message };
    throw err;
  }
}

function specFrom(v: unknown): ServiceSpec {
  if (typeof v !== "object" || v === null) throw new ServiceSpecError("add: spec must be an object");
  const s = v as Record<string, unknown>;
  if (typeof s.name !== "string") throw new ServiceSpecError("add: spec.name must be a string");
  const spec: ServiceSpec = { name: checkServiceName(s.name), port: checkServicePort(s.port, `${s.name}: the port`) };
  for (const key of ["healthUrl", "metricsUrl"] as const) {
    const u = s[key];
    if (u === undefined) continue;
    if (typeof u !== "string" || !isEndpointUrl(u)) throw new ServiceSpecError(`add: ${key} must be an http(s):// or tcp:// URL`);
    spec[key] = u;
  }
  if (s.sdkPort !== undefined) spec.sdkPort = checkServicePort(s.sdkPort, `${s.name}: the SDK port`);
  if (s.tags !== undefined) {
    if (typeof s.tags !== "object" || s.tags === null || Object.values(s.tags).some((t) => typeof t !== "string"))
      throw new ServiceSpecError("add: tags must be an object of strings");
    spec.tags = { ...(s.tags as Record<string, string>) };
  }
  return spec;
}

export async function startControlSocket(path: string, handler: ControlHandler, onError?: (err: unknown) => void): Promise<{ close(): Promise<void> }> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // A socket left by an agent that died is in the way; a live one answers (checked by the caller's lock).
  await rm(path, { force: true });
  const server: Server = createServer((socket) => serve(socket, handler, onError));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // 0600 from the start: no moment where another user could connect.
    const umask = process.umask(0o177);
    try {
      server.listen(path, () => resolve());
    } finally {
      process.umask(umask);
    }
  });
  await chmod(path, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        void rm(path, { force: true });
      }),
  };
}

function serve(socket: Socket, handler: ControlHandler, onError?: (err: unknown) => void): void {
  let buf = "";
  let done = false;
  const answer = (a: ControlAnswer) => {
    if (done) return;
    done = true;
    socket.end(JSON.stringify(a) + "\n");
  };
  socket.setEncoding("utf8");
  socket.setTimeout(10_000, () => socket.destroy());
  socket.on("error", () => undefined);
  socket.on("data", (chunk: string) => {
    if (done) return;
    buf += chunk;
    if (buf.length > maxRequestBytes) return answer({ ok: false, code: "invalid", error: `request over ${maxRequestBytes} bytes` });
    const nl = buf.indexOf("\n");
    if (nl < 0) return;
    // A request is here: an add may take a while to start its service, so no idle timeout from now on.
    socket.setTimeout(0);
    const req = parseControlRequest(buf.slice(0, nl));
    if ("error" in req) return answer({ ok: false, code: "invalid", error: req.error });
    void handle(req, handler).then(answer, (err: unknown) => {
      onError?.(err);
      answer({ ok: false, code: "failed", error: err instanceof Error ? err.message : String(err), services: handler.list() });
    });
  });
}

async function handle(req: ControlRequest, h: ControlHandler): Promise<ControlAnswer> {
  switch (req.op) {
    case "list":
      return { ok: true, services: h.list() };
    case "add":
      try {
        await h.add(req.spec);
      } catch (err) {
        if (err instanceof ServiceSpecError) return { ok: false, code: "invalid", error: err.message, services: h.list() };
        throw err;
      }
      return { ok: true, services: h.list() };
    case "remove":
      if (!h.list().some((s) => s.spec.name === req.name))
        return { ok: false, code: "unknown", error: `the agent does not observe "${req.name}"; it observes: ${h.list().map((s) => s.spec.name).join(", ") || "nothing"}`, services: h.list() };
      await h.remove(req.name);
      return { ok: true, services: h.list() };
    case "reload":
      if (!h.reload) return { ok: false, code: "invalid", error: "this agent was started without --config: there is nothing to reload", services: h.list() };
      return { ok: true, note: await h.reload(), services: h.list() };
  }
}

/** Sends one request to the agent listening at `path`. */
export function controlRequest(path: string, req: ControlRequest, timeoutMs = 120_000): Promise<ControlAnswer> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buf = "";
    socket.setEncoding("utf8");
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`the agent did not answer within ${Math.round(timeoutMs / 1000)} s`)));
    socket.on("connect", () => socket.write(JSON.stringify(req) + "\n"));
    socket.on("data", (d: string) => (buf += d));
    socket.on("error", reject);
    socket.on("end", () => {
      try {
        resolve(JSON.parse(buf) as ControlAnswer);
      } catch {
        reject(new Error("the agent's answer was not JSON"));
      }
    });
  });
}
