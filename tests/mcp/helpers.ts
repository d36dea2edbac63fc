// Starting `coral mcp server` as a process and talking to it with the SDK's
// real MCP client, over stdio and over Streamable HTTP.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { coralBin } from "../helpers/cli.ts";

/** `node cli/bin/coral.js mcp ...`, as an assistant would run it. */
export function coralMcpArgs(args: string[]): string[] {
  return [coralBin, "mcp", ...args];
}

const sourceEntry = fileURLToPath(new URL("./coral-source.ts", import.meta.url));
/** tsx's loader by path: the command may run in a folder outside the checkout. */
const tsxLoader = new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url).href;

/** The same command run from the TypeScript sources (coral-source.ts). */
export function coralSourceArgs(args: string[]): string[] {
  return ["--conditions=coral-source", "--import", tsxLoader, sourceEntry, ...args];
}

export interface McpEnv {
  cwd: string;
  env: Record<string, string>;
}

export async function stdioClient(where: McpEnv, extraArgs: string[] = []): Promise<{ client: Client; stderr: () => string; transport: StdioClientTransport }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: coralMcpArgs(["server", ...extraArgs]),
    cwd: where.cwd,
    env: { ...(process.env as Record<string, string>), NO_COLOR: "1", ...where.env },
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const client = new Client({ name: "coral-test", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport, stderr: () => stderr };
}

export interface HttpServerProcess extends AsyncDisposable {
  url: string;
  proc: ChildProcess;
  stderr: () => string;
}

/** Starts `coral mcp server --transport http` and waits until it listens. */
export async function startHttpServer(where: McpEnv, port: number, options: { extraArgs?: string[]; fromSource?: boolean } = {}): Promise<HttpServerProcess> {
  const args = ["server", "--transport", "http", "--port", String(port), ...(options.extraArgs ?? [])];
  const proc = spawn(process.execPath, options.fromSource ? coralSourceArgs(["mcp", ...args]) : coralMcpArgs(args), {
    cwd: where.cwd,
    env: { ...process.env, NO_COLOR: "1", ...where.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  proc.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coral mcp server did not start: ${stderr}`)), 90_000);
    proc.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
      const m = /listening on (http:\/\/\S+\/mcp)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`coral mcp server exited with ${code}: ${stderr}${stdout}`));
    });
  });
  return {
    url,
    proc,
    stderr: () => stderr,
    async [Symbol.asyncDispose]() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

export async function httpClient(url: string, token: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name: "coral-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

/** Calls a tool: its text, and whether it is an error result. */
export async function callTool(client: Client, name: string, args: Record<string, unknown>): Promise<{ text: string; isError: boolean }> {
  const result = await client.callTool({ name, arguments: args });
  return { text: textOf(result), isError: result.isError === true };
}

/** The text of a tool result (all text parts). */
export function textOf(result: unknown): string {
  return ((result as CallToolResult).content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => (c as { text: string }).text)
    .join("\n");
}
