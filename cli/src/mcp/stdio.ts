// MCP over stdio: an assistant starts `coral mcp server` and speaks JSON-RPC
// on its stdin/stdout. Nothing but MCP frames may reach stdout: console
// output is sent to stderr while the server runs.
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { ToolContext } from "../tools/index.ts";
import { createCoralMcpServer } from "./server.ts";

/** Sends console.log/info/debug to stderr; returns the undo. */
export function keepStdoutForFrames(): () => void {
  const saved = { log: console.log, info: console.info, debug: console.debug };
  console.log = console.info = console.debug = (...args: unknown[]) => console.error(...args);
  return () => Object.assign(console, saved);
}

/** Serves until the client closes stdin or the process is told to stop. */
export async function serveStdio(ctx: ToolContext, io: { stdin?: NodeJS.ReadStream; stdout?: NodeJS.WriteStream } = {}): Promise<void> {
  const stdin = io.stdin ?? process.stdin;
  const server = createCoralMcpServer(ctx);
  const transport = new StdioServerTransport(stdin, io.stdout ?? process.stdout);
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
  });
  const stop = () => void server.close().catch(() => undefined);
  stdin.once("end", stop);
  stdin.once("close", stop);
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await server.connect(transport);
  try {
    await closed;
  } finally {
    stdin.off("end", stop);
    stdin.off("close", stop);
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}
