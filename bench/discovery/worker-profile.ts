// CPU profiles of the discovery worker's JavaScript inside workerd, taken
// through each shard's V8 inspector (coral-discovery's workerInspector
// option; serve-source.ts --worker-inspector prints the URLs). The worker and
// its Durable Objects share one isolate per shard, so one profile covers the
// router, the Connect handlers and the objects. The result is a .cpuprofile,
// as `node --cpu-prof` writes, for Chrome DevTools or a script.
import WebSocket from "ws";

interface Target {
  id: string;
  title?: string;
  webSocketDebuggerUrl?: string;
}

/** One inspector session: sends CDP commands and resolves their results. */
class Session {
  #next = 1;
  readonly #waiting = new Map<number, { done: (result: unknown) => void; fail: (err: Error) => void }>();

  private constructor(private readonly socket: WebSocket) {
    socket.on("message", (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
      if (message.id === undefined) return; // events
      const waiter = this.#waiting.get(message.id);
      this.#waiting.delete(message.id);
      if (message.error) waiter?.fail(new Error(`inspector: ${message.error.message}`));
      else waiter?.done(message.result);
    });
    socket.on("close", () => {
      for (const waiter of this.#waiting.values()) waiter.fail(new Error("inspector connection closed"));
      this.#waiting.clear();
    });
  }

  static async open(url: string): Promise<Session> {
    const socket = new WebSocket(url);
    await new Promise<void>((done, fail) => socket.once("open", () => done()).once("error", fail));
    return new Session(socket);
  }

  send<R>(method: string, params: Record<string, unknown> = {}): Promise<R> {
    const id = this.#next++;
    return new Promise<R>((done, fail) => {
      this.#waiting.set(id, { done: done as (result: unknown) => void, fail });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.socket.close();
  }
}

/** The worker's target among an inspector's targets (workerd lists one per isolate). */
async function workerTarget(inspectorUrl: string): Promise<string> {
  const list = new URL("/json", inspectorUrl.replace(/^ws/, "http"));
  const targets = (await (await fetch(list)).json()) as Target[];
  const user = targets.filter((t) => t.webSocketDebuggerUrl && /user/.test(t.id));
  const target = user[0] ?? targets.find((t) => t.webSocketDebuggerUrl);
  if (!target?.webSocketDebuggerUrl) throw new Error(`no inspector target at ${list.href}: ${JSON.stringify(targets)}`);
  const url = new URL(target.webSocketDebuggerUrl);
  // workerd names its own host; the port is the one we were given.
  const given = new URL(inspectorUrl);
  url.hostname = given.hostname;
  url.port = given.port;
  return url.href;
}

/** Starts profiling the worker behind `inspectorUrl`; the returned function stops and resolves the profile. */
export async function startWorkerProfile(inspectorUrl: string, samplingIntervalUs = 500): Promise<() => Promise<unknown>> {
  const session = await Session.open(await workerTarget(inspectorUrl));
  await session.send("Profiler.enable");
  await session.send("Profiler.setSamplingInterval", { interval: samplingIntervalUs });
  await session.send("Profiler.start");
  return async () => {
    try {
      const { profile } = await session.send<{ profile: unknown }>("Profiler.stop");
      return profile;
    } finally {
      session.close();
    }
  };
}
