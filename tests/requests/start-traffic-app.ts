// Starts tests/requests/traffic-app.ts (a real Node app on the Coral SDK's
// request middleware: node:http, Express, Fastify, HTTPS) with a throwaway
// certificate, announcing itself in `dir`/sdk; resolves once it printed its ports.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "../helpers/wait.ts";

const appScript = fileURLToPath(new URL("./traffic-app.ts", import.meta.url));
const testsDir = fileURLToPath(new URL("..", import.meta.url));

export interface TrafficAppPorts {
  http: number;
  express: number;
  fastify: number;
  https: number;
}

export async function startTrafficApp(service: string, dir: string): Promise<{ app: ChildProcess; ports: TrafficAppPorts; announce: string; announcement: string | null }> {
  const cert = join(dir, "app.crt");
  const key = join(dir, "app.key");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert], { stdio: "ignore" });
  const announce = join(dir, "sdk");
  const app = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", appScript, service, cert, key], {
    cwd: testsDir,
    env: { ...process.env, CORAL_SDK_DIR: announce, CORAL_SDK_TOKEN: "", CORAL_SDK_PORT: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  app.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  app.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const ready = await waitFor(
    "the app to start",
    () => {
      if (app.exitCode !== null) throw new Error(`the app exited with ${app.exitCode}:\n${out}`);
      const line = out.split("\n").find((l) => l.includes('"event":"ready"'));
      return line ? (JSON.parse(line) as { ports: TrafficAppPorts; announcement: string | null }) : undefined;
    },
    { timeoutMs: 60_000 },
  );
  return { app, ports: ready.ports, announce, announcement: ready.announcement };
}
