// `coral up`: the whole local system on embedded defaults, until Ctrl+C.
// Today that is the discovery service; the colony and agents join as they land.
import { createConnectTransport } from "@connectrpc/connect-node";
import { createLogger, startDiscoveryServer } from "@coral/discovery-worker";
import { DiscoveryClient } from "@coral/proto";
import { Command, Option } from "commander";
import { parsePortOption } from "./options.ts";

export function upCommand(): Command {
  return new Command("up")
    .description("run Coral locally: discovery (and, as they land, a colony and agents) on embedded defaults")
    .option("--discovery-port <port>", "port of the local discovery service", parsePortOption, 8080)
    .option("--data-dir <dir>", "where local state lives", ".coral")
    .addOption(new Option("--log-level <level>").choices(["debug", "info", "warn", "error"]).default("info"))
    .action(async (opts: { discoveryPort: number; dataDir: string; logLevel: "debug" | "info" | "warn" | "error" }) => {
      const log = createLogger({ level: opts.logLevel });
      log.info({ port: opts.discoveryPort }, "Starting discovery service");
      const discovery = await startDiscoveryServer({ port: opts.discoveryPort, host: "127.0.0.1", dataDir: `${opts.dataDir}/discovery` });
      const client = new DiscoveryClient({
        transport: createConnectTransport({ baseUrl: discovery.url, httpVersion: "1.1" }),
        url: discovery.url,
      });
      const health = await client.health();
      log.info({ url: discovery.url, version: health.version, colonies: health.registeredColonies }, "Discovery service ready");
      console.log(`\nCoral is up. Discovery: ${discovery.url}  (Ctrl+C to stop)\n`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      log.info("Stopping");
      await discovery.close();
    });
}
