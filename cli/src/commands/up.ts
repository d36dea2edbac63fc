// `coral up`: the whole local system on embedded defaults, until Ctrl+C:
// discovery, a colony (initialised on first run) with its own NATS, and, as
// the agent lands, a sample app with one agent observing its three components.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { DiscoveryServer } from "@coral/discovery-worker";
import { createLogger } from "@coral/common/log";
import { Command, Option } from "commander";
import { formatStatus, formatTopology } from "../format/index.ts";
import { startColony } from "@coral/colony";
import { startHostAgent } from "@coral/agent";
import { startSampleApp, type SampleAppPorts } from "../sample-app/index.ts";
import { enrollmentFor, openControl, resolveAgentTarget } from "./connect.ts";
import { runInit } from "./init.ts";
import { waitUntil } from "./wait.ts";
import { parsePortOption } from "./options.ts";
import { colonyClient } from "./remote.ts";
import { useColor } from "./read.ts";

type Level = "debug" | "info" | "warn" | "error";

async function startDiscovery(port: number, dataDir: string, log: ReturnType<typeof createLogger>): Promise<DiscoveryServer> {
  // Loaded only here: miniflare and workerd weigh about 100 MB, and every other command starts faster without them.
  const { startDiscoveryServer } = await import("@coral/discovery-worker");
  try {
    return await startDiscoveryServer({ port, host: "127.0.0.1", dataDir });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    log.warn({ port }, "Discovery port is taken; using a free one");
    return startDiscoveryServer({ port: 0, host: "127.0.0.1", dataDir });
  }
}

export function upCommand(): Command {
  return new Command("up")
    .description("run Coral locally on embedded defaults: discovery, a colony with its own NATS, and agents (Ctrl+C stops everything)")
    .option("--dir <path>", "project folder (its .coral/ holds the state)", ".")
    .option("--discovery-port <port>", "port of the local discovery service", parsePortOption, 8080)
    .addOption(new Option("--log-level <level>").choices(["debug", "info", "warn", "error"]).default("info"))
    .action(async (opts: { dir: string; discoveryPort: number; logLevel: Level }) => {
      const projectDir = resolve(opts.dir);
      const log = createLogger({ level: opts.logLevel });
      // Listen for Ctrl+C before starting, so a stop during start-up is graceful too.
      const stopped = new Promise<void>((done) => {
        process.once("SIGINT", () => done());
        process.once("SIGTERM", () => done());
      });
      log.info({ port: opts.discoveryPort }, "Starting discovery service");
      const discovery = await startDiscovery(opts.discoveryPort, join(projectDir, ".coral", "discovery"), log);
      const stops: Array<() => Promise<unknown>> = [() => discovery.close()];
      try {
        log.info({ url: discovery.url }, "Discovery service listening");
        if (!existsSync(join(projectDir, ".coral", "config.yaml"))) {
          const init = await runInit(
            { app: "demo", env: "dev", yes: true, dir: projectDir, discovery: discovery.url },
            { input: process.stdin, output: process.stdout, interactive: false },
          );
          log.info({ colony_id: init.colonyId }, "Initialised a colony for this folder");
        }
        // This run's discovery, unless the config names another one.
        process.env.CORAL_DISCOVERY_URL ??= discovery.url;
        const colony = await startColony({ projectDir, logger: log });
        stops.unshift(() => colony.close());

        // The sample app (frontend → api → store) and an agent beside each part.
        const ports = await samplePorts();
        const app = startSampleApp(ports);
        stops.splice(1, 0, () => app.stop());
        const target = await resolveAgentTarget(undefined, projectDir);
        // One agent for the whole app (each service still its own identity in the colony):
        // `coral connect --add name:port` / `--remove name` reach it through its control socket.
        const agentDir = join(projectDir, ".coral", "agents");
        const host = await startHostAgent({
          services: Object.entries(ports).map(([name, port]) => ({
            name,
            port,
            healthUrl: `http://127.0.0.1:${port}/health`,
            metricsUrl: `http://127.0.0.1:${port}/metrics`,
            tags: { app: "sample" },
          })),
          // Each service its own key, enrolled with a one-use invitation from this colony.
          dataDirFor: (service) => target.dataDirFor(service),
          enrollmentFor: (service, dataDir) => enrollmentFor(target, service, dataDir),
          shared: { colonyUrl: colony.url, logger: log.child({ agent: "sample" }) },
        });
        stops.unshift(() => host.close("coral up stopping"));
        for (const s of host.services())
          if (s.state === "running") log.info({ service: s.spec.name, port: s.spec.port, agent_id: s.agentId }, "Agent connected");
          else log.error({ service: s.spec.name, err: s.error }, "Agent could not start");
        const control = await openControl(
          agentDir,
          { list: () => host.services(), add: (spec) => host.add(spec), remove: (name) => host.remove(name) },
          log,
        );
        if (control) stops.unshift(() => control.close());

        const client = colonyClient({ url: colony.url, token: await localToken(projectDir), source: "coral up" });
        // The first status shows every part observed (a part's process may start listening after its
        // agent's first look) and the app's two edges.
        await waitUntil("the sample app observed", 60_000, async () => {
          const status = await client.getStatus({});
          const observed = Object.keys(ports).every((name) => status.services.some((s) => s.name === name && s.pid > 0 && s.health !== "waiting"));
          if (!observed) return undefined;
          const topology = await client.getTopology({});
          return topology.edges.filter((e) => !e.external).length >= 2 ? true : undefined;
        }).catch((err: unknown) => log.warn({ err: String(err) }, "The sample app is not fully observed yet"));
        const color = useColor();
        console.log();
        console.log(formatStatus(await client.getStatus({}), { color, location: "running locally" }));
        console.log(formatTopology(await client.getTopology({}), { color }));
        console.log(`Discovery: ${discovery.url}   Colony API: ${colony.url}   NATS: ${colony.natsUrl}`);
        console.log("Coral is up. Try, in another terminal: npx coral status · npx coral topology · npx coral events");
        console.log(`Dashboard: ${colony.url}/   (sign in with a one-time link: npx coral dashboard)`);
        console.log("Press Ctrl+C to stop\n");
        await stopped;
        log.info("Stopping");
      } finally {
        for (const stop of stops) await stop().catch((err: unknown) => log.warn({ err: String(err) }, "stop failed"));
      }
    });
}

/** 3000-3002 when free, else free ports. */
async function samplePorts(): Promise<SampleAppPorts> {
  const { createServer } = await import("node:net");
  const free = (port: number) =>
    new Promise<number>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(free(0)));
      server.listen(port, "127.0.0.1", () => {
        const actual = (server.address() as { port: number }).port;
        server.close(() => resolve(actual));
      });
    });
  return { frontend: await free(3000), api: await free(3001), store: await free(3002) };
}

async function localToken(projectDir: string): Promise<string> {
  const { readLocalToken } = await import("@coral/colony");
  return readLocalToken(projectDir);
}
