// Starts the sample app's three components as child processes.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const sampleComponentScript = fileURLToPath(new URL("./component.mjs", import.meta.url));

export interface SampleAppPorts {
  frontend: number;
  api: number;
  store: number;
}

export interface SampleApp extends AsyncDisposable {
  ports: SampleAppPorts;
  processes: Record<keyof SampleAppPorts, ChildProcess>;
  stop(): Promise<void>;
}

function startComponent(role: string, port: number, next?: number): ChildProcess {
  const args = [sampleComponentScript, role, String(port), ...(next ? [String(next)] : [])];
  return spawn(process.execPath, args, { stdio: "ignore" });
}

export function startSampleApp(ports: SampleAppPorts): SampleApp {
  const processes = {
    store: startComponent("store", ports.store),
    api: startComponent("api", ports.api, ports.store),
    frontend: startComponent("frontend", ports.frontend, ports.api),
  };
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= Promise.all(
      Object.values(processes).map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once("exit", () => resolve());
            p.kill("SIGTERM");
          }),
      ),
    ).then(() => undefined));
  return { ports, processes, stop, [Symbol.asyncDispose]: stop };
}
