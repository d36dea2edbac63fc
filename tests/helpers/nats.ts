// A plain nats-server with JetStream that a test can stop and start again
// (the colony's managed server restarts itself, so outages use this one).
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "@nats-io/transport-node";
import { waitFor } from "./wait.ts";

export interface ExternalNats extends AsyncDisposable {
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startExternalNats(port: number, storeDir: string): Promise<ExternalNats> {
  let child: ChildProcess | undefined;
  const url = `nats://127.0.0.1:${port}`;
  const handle: ExternalNats = {
    url,
    async start() {
      child = spawn("nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], { stdio: "ignore" });
      await waitFor(`nats-server on ${port}`, async () => {
        const nc = await connect({ servers: url, reconnect: false, timeout: 1000 });
        await nc.close();
        return true;
      });
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((resolve) => c.once("exit", resolve));
      c.kill("SIGTERM");
      await exited;
    },
    async [Symbol.asyncDispose]() {
      await handle.stop();
    },
  };
  await handle.start();
  return handle;
}
