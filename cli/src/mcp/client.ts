// Coral as an MCP client: starts the external MCP servers listed under
// `mcp.servers` in .coral/config.yaml (official SDK client over stdio) and
// offers their tools to `coral ask` beside Coral's own, as
// mcp__<server>__<tool> so no name clashes with coral_* or with each other.
//
// Failure handling (seed 000, "How to handle MCP server failures?"):
// - a server that does not start (or list its tools) within its retries is
//   reported and skipped; the others go on;
// - a call that fails because the server crashed, hung or went away is
//   retried (reconnecting) with backoff up to retry.max_attempts;
// - the last good answer of each call is kept for cache_ttl: when the server
//   is failing, that answer is served, marked stale with its age and the
//   failure, instead of nothing.
// A tool's own error (isError) is an answer, not a server failure.
import { resolve } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import type { AskTool } from "../ask/types.ts";
import { backoffMs, sleep } from "@coral/common/async";
import { parseDuration } from "@coral/common/duration";
import type { McpServerSettings } from "@coral/colony";
import { coralVersion } from "@coral/common/version";

export interface ExternalServerStatus {
  name: string;
  state: "ready" | "failed" | "disabled";
  /** Tools offered to the model (0 when failed). */
  tools: string[];
  /** Why it failed (secrets from its env never appear: only the server's own words). */
  error?: string;
  attempts: number;
}

export interface StartExternalOptions {
  /** Where ${NAME} in env values is looked up. Default: process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Folder relative `cwd` settings resolve against (the project folder). */
  baseDir?: string;
  /** Each problem as it happens (a server skipped, a call served from cache...), for stderr. */
  onWarning?: (message: string) => void;
  /** The clock (ms); tests pin it. */
  now?: () => number;
  /** Waits between retries; tests may shorten them. */
  sleep?: (ms: number) => Promise<void>;
}

const ms = (text: string) => {
  const d = parseDuration(text);
  if ("error" in d) throw new Error(`unreachable: a validated duration "${text}": ${d.error}`);
  return d.ms;
};

// A retry wait keeps the process alive: `coral ask` may have nothing else
// pending while a server that failed to start waits for its next try.
const defaultSleep = (delay: number) => sleep(delay);

/**
 * The wait before retry number `attempt` (1 = the first retry), no jitter:
 * "exponential" doubles initial_delay per retry up to 30 s, "fixed" always
 * waits initial_delay.
 */
export function backoffDelay(settings: McpServerSettings["retry"], attempt: number): number {
  const initial = ms(settings.initial_delay);
  return backoffMs(attempt - 1, initial, settings.backoff === "fixed" ? initial : 30_000, { jitter: "none" });
}

/** "${NAME}" → the value of NAME; a variable that is not set is an error naming it (never its value). */
export function expandEnv(values: Readonly<Record<string, string>>, env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    out[key] = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new Error(`env ${key}: \${${name}} is not set in coral's environment`);
      return v;
    });
  }
  return out;
}

/** A tool name the Messages API accepts (letters, digits, _ and -, at most 128), unique among `taken`. */
export function namespacedToolName(server: string, tool: string, taken: ReadonlySet<string>): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, "_");
  const base = `mcp__${clean(server)}__${clean(tool)}`.slice(0, 124);
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}_${i}`;
  return name;
}

/** An MCP tool result as text for the model: text blocks as they are, other blocks described. */
export function resultText(result: CallToolResult): string {
  const parts: string[] = [];
  for (const block of result.content ?? []) {
    switch (block.type) {
      case "text":
        parts.push(block.text);
        break;
      case "image":
      case "audio":
        parts.push(`[${block.type} ${block.mimeType}, ${Math.round((block.data.length * 3) / 4)} bytes: not shown]`);
        break;
      case "resource":
        parts.push("text" in block.resource ? String(block.resource.text) : `[resource ${block.resource.uri}: binary, not shown]`);
        break;
      case "resource_link":
        parts.push(`[resource ${block.name} ${block.uri}]`);
        break;
    }
  }
  if (parts.length === 0 && result.structuredContent !== undefined) parts.push(JSON.stringify(result.structuredContent));
  return parts.join("\n");
}

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split("\n")[0]!.slice(0, 300);

/** The stderr tail of a server process: what it said before it died helps more than "Connection closed". */
class StderrTail {
  private text = "";
  push(chunk: Buffer | string) {
    this.text = (this.text + chunk.toString()).slice(-2000);
  }
  lastLine(): string | undefined {
    return this.text.trim().split("\n").filter(Boolean).at(-1)?.trim().slice(0, 300);
  }
}

/** The server failed as a server (not started, crashed, hung): worth a retry, and the cache. */
class ServerFailure extends Error {}

class ExternalServer {
  private client: Client | undefined;
  private stderr = new StderrTail();
  private connecting: Promise<Client> | undefined;
  readonly cache = new Map<string, { text: string; at: number }>();
  tools: Tool[] = [];
  private readonly timeoutMs: number;
  private readonly cacheTtlMs: number;

  constructor(
    readonly name: string,
    readonly settings: McpServerSettings,
    private readonly options: StartExternalOptions,
  ) {
    this.timeoutMs = ms(settings.timeout);
    this.cacheTtlMs = ms(settings.cache_ttl);
  }

  private now() {
    return this.options.now ? this.options.now() : Date.now();
  }

  /** One attempt: spawn, initialize, list tools. */
  private async connectOnce(): Promise<Client> {
    const env = { ...getDefaultEnvironment(), ...expandEnv(this.settings.env, this.options.env ?? process.env) };
    const cwd = this.settings.cwd ? resolve(this.options.baseDir ?? process.cwd(), this.settings.cwd) : undefined;
    this.stderr = new StderrTail();
    const transport = new StdioClientTransport({ command: this.settings.command, args: this.settings.args, env, stderr: "pipe", ...(cwd ? { cwd } : {}) });
    const tail = this.stderr;
    transport.stderr?.on("data", (chunk: Buffer) => tail.push(chunk));
    const client = new Client({ name: "coral", version: coralVersion });
    client.onclose = () => {
      if (this.client === client) this.client = undefined;
    };
    try {
      await client.connect(transport, { timeout: this.timeoutMs });
      const listed = await client.listTools(undefined, { timeout: this.timeoutMs });
      this.tools = listed.tools;
      return client;
    } catch (err) {
      await client.close().catch(() => undefined);
      throw new ServerFailure(this.explain(err, "start"));
    }
  }

  private explain(err: unknown, what: "start" | "call"): string {
    const raw = firstLine(err);
    const code = (err as NodeJS.ErrnoException).code;
    let message: string;
    if (code === "ENOENT") message = `command not found: ${this.settings.command} (check mcp.servers.${this.name}.command and PATH)`;
    else if (code === "EACCES") message = `command not executable: ${this.settings.command}`;
    else if (/timed? ?out/i.test(raw)) message = `no answer within ${this.settings.timeout} (mcp.servers.${this.name}.timeout)`;
    else if (/connection closed/i.test(raw)) message = what === "start" ? "the server exited during start-up" : "the server exited";
    else message = raw;
    const said = this.stderr.lastLine();
    return said ? `${message}; its last words on stderr: ${said}` : message;
  }

  /** Connects (one attempt per call; the retry loops are the callers'). */
  private async ensureClient(): Promise<Client> {
    if (this.client) return this.client;
    this.connecting ??= this.connectOnce().finally(() => (this.connecting = undefined));
    this.client = await this.connecting;
    return this.client;
  }

  /** Start-up: up to max_attempts tries with backoff. Throws ServerFailure with the last reason. */
  async start(): Promise<number> {
    const attempts = this.settings.retry.max_attempts;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.ensureClient();
        return attempt;
      } catch (err) {
        if (attempt >= attempts) throw Object.assign(err instanceof ServerFailure ? err : new ServerFailure(firstLine(err)), { attempts: attempt });
        await (this.options.sleep ?? defaultSleep)(backoffDelay(this.settings.retry, attempt));
      }
    }
  }

  /** A tool call: retried (reconnecting) on server failures, else the last good answer if fresh enough. */
  async call(tool: string, args: unknown): Promise<string> {
    const key = `${tool}\u0000${JSON.stringify(args ?? {})}`;
    const attempts = this.settings.retry.max_attempts;
    let reason = "";
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await (this.options.sleep ?? defaultSleep)(backoffDelay(this.settings.retry, attempt - 1));
      let client: Client;
      try {
        client = await this.ensureClient();
      } catch (err) {
        reason = err instanceof ServerFailure ? err.message : firstLine(err);
        continue;
      }
      let result: CallToolResult;
      try {
        result = (await client.callTool({ name: tool, arguments: (args ?? {}) as Record<string, unknown> }, undefined, { timeout: this.timeoutMs })) as CallToolResult;
      } catch (err) {
        reason = this.explain(err, "call");
        if (/^MCP error -32602/.test(firstLine(err))) throw new Error(firstLine(err)); // invalid params: the model's fault, not the server's
        // A hung or half-dead server is restarted on the next attempt.
        if (this.client === client) this.client = undefined;
        await client.close().catch(() => undefined);
        continue;
      }
      const text = resultText(result);
      if (result.isError) throw new Error(text || `${tool} failed`);
      this.cache.set(key, { text, at: this.now() });
      return text;
    }
    const cached = this.cache.get(key);
    const age = cached ? this.now() - cached.at : Infinity;
    const failure = `MCP server "${this.name}" failed after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${reason}`;
    this.options.onWarning?.(failure);
    if (cached && age <= this.cacheTtlMs)
      return `${cached.text}\n[coral: STALE — ${failure}; this is its last good answer to the same call, ${Math.round(age / 1000)} s old]`;
    throw new Error(failure);
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.close().catch(() => undefined);
  }
}

/** The external MCP servers of one `coral ask` (or any other user), started together. */
export class ExternalMcpServers implements AsyncDisposable {
  private constructor(
    private readonly servers: ExternalServer[],
    private readonly statuses: ExternalServerStatus[],
    private readonly askTools: AskTool[],
  ) {}

  /** Starts every enabled server concurrently; failures are reported (onWarning, status()) and skipped. */
  static async start(servers: Readonly<Record<string, McpServerSettings>>, options: StartExternalOptions = {}): Promise<ExternalMcpServers> {
    const started: ExternalServer[] = [];
    const statuses: ExternalServerStatus[] = [];
    const entries = Object.entries(servers);
    const outcomes = await Promise.all(
      entries.map(async ([name, settings]) => {
        if (!settings.enabled) return { name, server: undefined, status: { name, state: "disabled", tools: [], attempts: 0 } as ExternalServerStatus };
        const server = new ExternalServer(name, settings, options);
        try {
          const attempts = await server.start();
          return { name, server, status: { name, state: "ready", tools: [], attempts } as ExternalServerStatus };
        } catch (err) {
          await server.close();
          const attempts = (err as { attempts?: number }).attempts ?? 1;
          const error = firstLine(err);
          options.onWarning?.(`MCP server "${name}" skipped: ${error} (after ${attempts} attempt${attempts === 1 ? "" : "s"})`);
          return { name, server: undefined, status: { name, state: "failed", tools: [], error, attempts } as ExternalServerStatus };
        }
      }),
    );
    const taken = new Set<string>();
    const tools: AskTool[] = [];
    for (const { server, status } of outcomes) {
      statuses.push(status);
      if (!server) continue;
      started.push(server);
      for (const tool of server.tools) {
        const name = namespacedToolName(server.name, tool.name, taken);
        taken.add(name);
        status.tools.push(name);
        tools.push({
          name,
          description: `[external MCP server "${server.name}", tool ${tool.name}] ${tool.description ?? tool.title ?? ""}`.trim().slice(0, 1024),
          inputSchema: tool.inputSchema,
          run: async (args) => ({ text: await server.call(tool.name, args) }),
        });
      }
    }
    return new ExternalMcpServers(started, statuses, tools);
  }

  /** The tools of every server that started, for runAsk. */
  tools(): AskTool[] {
    return [...this.askTools];
  }

  status(): ExternalServerStatus[] {
    return this.statuses.map((s) => ({ ...s, tools: [...s.tools] }));
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
