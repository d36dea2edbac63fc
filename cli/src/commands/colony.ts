// coral colony start | status | list | current | use | stop | invite
import { spawn } from "node:child_process";
import { openSync } from "node:fs";
import { join, resolve } from "node:path";
import { GetStatusResponseSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { Command, Option } from "commander";
import { createLogger } from "@coral/common/log";
import { currentColony, listColonies, loadColonyConfig, useColony } from "@coral/colony";
import { formatStatus } from "../format/index.ts";
import { isAlive, readPidFile, startColony } from "@coral/colony";
import { waitUntil } from "./wait.ts";
import { inviteCommand, invitationsCommand } from "./invite.ts";
import { printJson, useColor, withColony } from "./read.ts";

async function projectDirOf(dir: string | undefined): Promise<string> {
  if (dir) return resolve(dir);
  const { existsSync } = await import("node:fs");
  if (existsSync(join(process.cwd(), ".coral", "config.yaml"))) return process.cwd();
  const current = await currentColony();
  if (current) return current.project_dir;
  throw new Error("no colony here: run coral init first, or coral colony use <id>");
}

function startCommand(): Command {
  return new Command("start")
    .description("start the colony (Ctrl+C stops it)")
    .option("--daemon", "run in the background; logs go to .coral/colony.log")
    .option("--dir <path>", "project folder (default: this one or the current colony's)")
    .addOption(new Option("--mesh <mode>", "mesh mode (default: colony.mesh.mode in the config, loopback)").choices(["loopback", "wireguard"]))
    .addOption(new Option("--log-level <level>").choices(["debug", "info", "warn", "error"]).default("info"))
    .addOption(new Option("--log-format <format>").choices(["console", "json"]).default("console"))
    .action(async (opts: { daemon?: boolean; dir?: string; mesh?: "loopback" | "wireguard"; logLevel: "debug" | "info" | "warn" | "error"; logFormat: "console" | "json" }) => {
      const projectDir = await projectDirOf(opts.dir);
      const running = await readPidFile(projectDir);
      if (running && isAlive(running.pid))
        throw new Error(`colony ${running.colony_id} is already running (pid ${running.pid}, ${running.url}); stop it with: coral colony stop`);
      if (opts.daemon) {
        const logPath = join(projectDir, ".coral", "colony.log");
        const out = openSync(logPath, "a");
        const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, "colony", "start", "--dir", projectDir, "--log-level", opts.logLevel, ...(opts.mesh ? ["--mesh", opts.mesh] : [])], {
          detached: true,
          stdio: ["ignore", out, out],
          env: process.env,
        });
        child.unref();
        const pid = await waitUntil(`the colony to start (see ${logPath})`, 60_000, async () => {
          if (child.exitCode !== null) throw new Error(`the colony exited with code ${child.exitCode}; see ${logPath}`);
          const file = await readPidFile(projectDir);
          return file && file.pid === child.pid ? file : undefined;
        });
        console.log(`✓ Colony ${pid.colony_id} started in the background (pid ${pid.pid})`);
        console.log(`  API: ${pid.url}`);
        console.log(`  Logs: ${logPath}`);
        console.log("  Stop it with: coral colony stop");
        return;
      }
      const log = createLogger({ level: opts.logLevel, format: opts.logFormat });
      // Listen for Ctrl+C before starting, so a stop during start-up is graceful too.
      const stopped = new Promise<void>((done) => {
        process.once("SIGINT", () => done());
        process.once("SIGTERM", () => done());
      });
      const colony = await startColony({ projectDir, logger: log, meshMode: opts.mesh });
      console.log("\nPress Ctrl+C to stop");
      await stopped;
      log.info("Stopping colony");
      await colony.close();
    });
}

function stopCommand(): Command {
  return new Command("stop")
    .description("stop a colony started with --daemon (or in another terminal)")
    .option("--dir <path>", "project folder")
    .action(async (opts: { dir?: string }) => {
      const projectDir = await projectDirOf(opts.dir);
      const file = await readPidFile(projectDir);
      if (!file || !isAlive(file.pid)) {
        console.log("Colony is not running.");
        return;
      }
      process.kill(file.pid, "SIGTERM");
      await waitUntil(`colony pid ${file.pid} to stop`, 30_000, () => (!isAlive(file.pid) ? true : undefined));
      console.log(`✓ Colony ${file.colony_id} stopped`);
    });
}

function statusCommand(): Command {
  return new Command("status")
    .description("is the colony running, and what does it see")
    .option("--dir <path>", "project folder")
    .option("--json", "print JSON")
    .action(async (opts: { dir?: string; json?: boolean }) => {
      const projectDir = await projectDirOf(opts.dir);
      const file = await readPidFile(projectDir);
      const config = await loadColonyConfig(projectDir);
      if (!file || !isAlive(file.pid)) {
        if (opts.json) console.log(JSON.stringify({ colony_id: config.colony.colony_id, running: false }));
        else console.log(`Colony ${config.colony.colony_id}: not running (start it with: coral colony start)`);
        process.exitCode = 3;
        return;
      }
      await withColony({}, async (client) => {
        const res = await client.getStatus({});
        if (opts.json) printJson(GetStatusResponseSchema, res);
        else {
          console.log(`Colony ${res.colonyId}: running (pid ${file.pid}, ${file.url})`);
          console.log(`  NATS: ${res.natsStatus}   Discovery: ${res.discoveryStatus}   Mesh: ${res.meshMode}`);
          console.log(formatStatus(res, { color: useColor(), location: "running locally" }));
        }
      });
    });
}

function listCommand(): Command {
  return new Command("list")
    .description("list the colonies this machine knows")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const colonies = await listColonies();
      const current = await currentColony();
      if (opts.json) {
        console.log(JSON.stringify(colonies.map((c) => ({ ...c, current: c.colony_id === current?.colony_id })), null, 2));
        return;
      }
      if (colonies.length === 0) {
        console.log("No colonies yet. Create one with: coral init --app <name> --env dev");
        return;
      }
      for (const c of colonies) {
        const file = await readPidFile(c.project_dir);
        const state = file && isAlive(file.pid) ? "running" : "stopped";
        console.log(`${c.colony_id === current?.colony_id ? "*" : " "} ${c.colony_id.padEnd(28)} ${state.padEnd(8)} ${c.project_dir}`);
      }
    });
}

function currentCommand(): Command {
  return new Command("current")
    .description("show the current colony")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const current = await currentColony();
      if (!current) throw new Error("no current colony: coral init, or coral colony use <id>");
      console.log(opts.json ? JSON.stringify(current) : `${current.colony_id}  (${current.project_dir})`);
    });
}

function useCommand(): Command {
  return new Command("use")
    .description("make a colony the current one")
    .argument("<colony-id>")
    .action(async (id: string) => {
      await useColony(id);
      console.log(`✓ Current colony: ${id}`);
    });
}

export function colonyCommand(): Command {
  const colony = new Command("colony").description("manage the colony: start, stop, status, invite agents");
  for (const sub of [startCommand(), stopCommand(), statusCommand(), listCommand(), currentCommand(), useCommand(), inviteCommand(), invitationsCommand()])
    colony.addCommand(sub);
  return colony;
}
