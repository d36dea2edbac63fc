// `coral mcp server` exposes the colony to AI assistants over the Model
// Context Protocol (stdio, or Streamable HTTP with a colony token per
// request); `coral mcp configure` prints the block for an assistant's config.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Command, Option } from "commander";
import { coralHome, loadColonyConfig } from "@coral/colony";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { ExternalMcpServers, keepStdoutForFrames, lazyClient, lazyColonyClient, serveStdio, startMcpHttpServer } from "../mcp/index.ts";
import { planMcpServers, terminalPrompt } from "../ask/mcp-trust.ts";
import { parsePortOption } from "./options.ts";
import { colonyClient, localColonyDir, resolveTarget, serviceClient, withRemoteOptions, type RemoteOptions } from "./remote.ts";

interface ServerOptions extends RemoteOptions {
  transport: "stdio" | "http";
  port: number;
  host: string;
}

export const tokenPlaceholder = "<colony token: coral token create --name assistant --scope read>";

/** withRemoteOptions without --json in the help: these commands print MCP frames or JSON anyway. */
function remote(command: Command): Command {
  withRemoteOptions(command);
  command.options.find((o) => o.long === "--json")?.hideHelp();
  return command;
}

function serverCommand(): Command {
  return remote(
    new Command("server").description(
      "serve Coral's tools to an AI assistant over MCP: stdio (the assistant starts this command) or Streamable HTTP (each request needs a colony token)",
    ),
  )
    .addOption(new Option("--transport <transport>", "stdio or http").choices(["stdio", "http"]).default("stdio"))
    .option("--port <port>", "with --transport http: port to listen on", parsePortOption, 3001)
    .option("--host <host>", "with --transport http: address to listen on", "127.0.0.1")
    .action(async (opts: ServerOptions) => {
      if (opts.transport === "stdio") {
        // stdout carries MCP frames only; everything else goes to stderr.
        const restore = keepStdoutForFrames();
        try {
          const colony = lazyColonyClient(async () => colonyClient(await resolveTarget(opts)));
          const debug = lazyClient(DebugService, async () => serviceClient(DebugService, await resolveTarget(opts)));
          const profile = lazyClient(ProfileService, async () => serviceClient(ProfileService, await resolveTarget(opts)));
          const traffic = lazyClient(TrafficService, async () => serviceClient(TrafficService, await resolveTarget(opts)));
          const query = lazyClient(QueryService, async () => serviceClient(QueryService, await resolveTarget(opts)));
          process.stderr.write(`coral mcp server: serving over stdio${opts.colonyUrl ? ` for ${opts.colonyUrl}` : ""}\n`);
          await serveStdio({ colony, debug, profile, traffic, query });
        } finally {
          restore();
        }
        return;
      }
      const target = await resolveTarget(opts);
      if (opts.token) process.stderr.write("note: --token/CORAL_TOKEN is not used over HTTP: each assistant sends its own colony token.\n");
      // Known so it is never relayed for a remote caller (the colony trusts it from loopback, which we are).
      const localToken = await readLocalToken();
      const server = await startMcpHttpServer({ colonyUrl: target.url, host: opts.host, port: opts.port, localToken });
      process.stderr.write(
        `Coral MCP server listening on ${server.url} (colony ${target.url}, ${target.source}).\n` +
          "Assistants must send Authorization: Bearer <token>; create one with: coral token create --name assistant --scope read\n",
      );
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          void server.close().then(resolve);
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
    });
}

/** The local colony's .coral/local.token, if this machine has one here. */
async function readLocalToken(): Promise<string | undefined> {
  const dir = await localColonyDir(process.cwd()).catch(() => undefined);
  if (!dir) return undefined;
  return (await readFile(join(dir, ".coral", "local.token"), "utf8").catch(() => "")).trim() || undefined;
}

export interface McpClientConfig {
  mcpServers: Record<string, Record<string, unknown>>;
}

/** The block for an assistant's MCP config (Claude Desktop, Claude Code's .mcp.json, ...). */
export function mcpClientConfig(options: { name?: string; transport?: "stdio" | "http"; colonyUrl?: string; port?: number; host?: string; coralHome?: string }): McpClientConfig {
  const name = options.name ?? "coral";
  if (options.transport === "http") {
    const host = options.host && options.host !== "0.0.0.0" && options.host !== "::" ? options.host : "127.0.0.1";
    return {
      mcpServers: {
        [name]: { type: "http", url: `http://${host.includes(":") ? `[${host}]` : host}:${options.port ?? 3001}/mcp`, headers: { Authorization: `Bearer ${tokenPlaceholder}` } },
      },
    };
  }
  const server: Record<string, unknown> = { command: "npx", args: ["coral", "mcp", "server"] };
  if (options.colonyUrl) server.env = { CORAL_COLONY_URL: options.colonyUrl, CORAL_TOKEN: tokenPlaceholder };
  else if (options.coralHome) server.env = { CORAL_HOME: options.coralHome };
  return { mcpServers: { [name]: server } };
}

function configureCommand(): Command {
  return remote(new Command("configure").description("print the MCP server block for an AI assistant's config file"))
    .option("--name <name>", "the server's name in the config", "coral")
    .addOption(new Option("--transport <transport>", "how the assistant reaches Coral: stdio (it starts coral) or http").choices(["stdio", "http"]).default("stdio"))
    .option("--port <port>", "with --transport http: the port of coral mcp server", parsePortOption, 3001)
    .option("--host <host>", "with --transport http: the host of coral mcp server", "127.0.0.1")
    .action(async (opts: RemoteOptions & { name: string; transport: "stdio" | "http"; port: number; host: string }) => {
      let colonyUrl: string | undefined;
      if (opts.colonyUrl) colonyUrl = (await resolveTarget(opts)).url;
      else if (opts.transport === "stdio") {
        try {
          const target = await resolveTarget(opts);
          process.stderr.write(`Local ${target.source} at ${target.url}: the assistant's server finds it like other coral commands (the current colony: coral colony use <id>).\n`);
        } catch (err) {
          process.stderr.write(`warning: ${err instanceof Error ? err.message : String(err)}\n`);
        }
      }
      const config = mcpClientConfig({ name: opts.name, transport: opts.transport, colonyUrl, port: opts.port, host: opts.host, coralHome: process.env.CORAL_HOME?.trim() || undefined });
      console.log(JSON.stringify(config, null, 2));
      process.stderr.write(
        "Add this to your assistant's MCP config (Claude Desktop: claude_desktop_config.json; Claude Code: .mcp.json)" +
          (colonyUrl || opts.transport === "http" ? ", and replace the token placeholder with a real token.\n" : ".\n"),
      );
    });
}

/** `coral mcp servers`: starts the external MCP servers of mcp.servers once and shows what each offers, or why it fails. */
function serversCommand(): Command {
  return new Command("servers")
    .description("check the external MCP servers listed under mcp.servers in .coral/config.yaml (the tools coral ask gets from them)")
    .option("--json", "print JSON")
    .option("--trust-mcp", "trust the MCP server commands in this project's .coral/config.yaml, as they are now (recorded in $CORAL_HOME)")
    .action(async (opts: { json?: boolean; trustMcp?: boolean }) => {
      const dir = await localColonyDir(process.cwd());
      if (!dir) throw new Error("no Coral project here (.coral/config.yaml) and no current colony: run it in your project folder, or coral init");
      const config = await loadColonyConfig(dir);
      // The project's commands run only once trusted (see cli/src/ask/mcp-trust.ts).
      const plan = await planMcpServers({
        project: { dir, configPath: config.config_path, servers: config.mcp?.servers ?? {} },
        home: coralHome(),
        trustFlag: Boolean(opts.trustMcp),
        prompt: opts.json ? undefined : terminalPrompt(),
        trustHint: "coral mcp servers --trust-mcp",
      });
      for (const notice of plan.notices) process.stderr.write(`${notice}\n`);
      if (plan.untrusted) process.exitCode = 1;
      const servers = plan.servers;
      await using external = await ExternalMcpServers.start(servers);
      const status = external.status();
      if (opts.json) console.log(JSON.stringify({ config_path: config.config_path, servers: status }, null, 2));
      else if (status.length === 0) {
        if (!plan.untrusted) console.log(`No external MCP servers in ${config.config_path} (add them under mcp.servers).`);
      } else {
        console.log(`External MCP servers (${config.config_path}):`);
        for (const s of status) {
          const head = `  ${s.state === "ready" ? "✓" : s.state === "disabled" ? "-" : "✗"} ${s.name}: ${s.state}`;
          if (s.state === "ready") console.log(`${head}, ${s.tools.length} tool${s.tools.length === 1 ? "" : "s"}${s.attempts > 1 ? ` (after ${s.attempts} attempts)` : ""}`);
          else console.log(s.error ? `${head}: ${s.error}${s.attempts > 1 ? ` (after ${s.attempts} attempts)` : ""}` : head);
          for (const t of s.tools) console.log(`      ${t}`);
        }
      }
      if (status.some((s) => s.state === "failed")) process.exitCode = 1;
    });
}

export function mcpCommand(): Command {
  return new Command("mcp")
    .description("connect AI assistants to Coral over the Model Context Protocol")
    .addCommand(serverCommand())
    .addCommand(configureCommand())
    .addCommand(serversCommand());
}
