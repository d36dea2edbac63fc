// Helpers of the dashboard suites: sign-in links from the real CLI, raw HTTP
// (for requests a browser or fetch would tidy up), the Chromium Debian ships.
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { runCoral } from "../helpers/cli.ts";
import type { TestProject } from "../helpers/colony.ts";

/** `coral dashboard --no-open --json` in the project (local token), or against `colonyUrl` with `token`. */
export async function signInLink(project: TestProject, remote?: { colonyUrl: string; token: string }): Promise<{ url: string; dashboard: string; scope: string; code: string }> {
  const args = ["dashboard", "--no-open", "--json", ...(remote ? ["--colony-url", remote.colonyUrl, "--token", remote.token] : [])];
  const res = await runCoral(args, { cwd: project.dir, env: { CORAL_HOME: project.home, DISPLAY: "", WAYLAND_DISPLAY: "", CORAL_TOKEN: undefined, CORAL_COLONY_URL: undefined } });
  if (res.code !== 0) throw new Error(`coral dashboard failed (${res.code}): ${res.stderr}`);
  const out = JSON.parse(res.stdout) as { url: string; dashboard: string; scope: string };
  const code = /#code=([A-Za-z0-9_-]+)$/.exec(out.url)?.[1];
  if (!code) throw new Error(`no code in ${out.url}`);
  return { ...out, code };
}

/** Sends `request` as written (no path normalisation) and returns the raw answer. */
export function rawHttp(url: string, request: string): Promise<{ status: number; head: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.setTimeout(15_000, () => socket.destroy(new Error("raw request timed out")));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const split = text.indexOf("\r\n\r\n");
      const head = text.slice(0, split);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body: text.slice(split + 4) });
    });
    socket.write(request);
  });
}

export const chromiumPath = "/usr/bin/chromium";
export const haveChromium = existsSync(chromiumPath);

/** A TCP relay in front of the colony that a test can cut and restore (a network outage, nothing else changed). */
export async function tcpRelay(targetUrl: string): Promise<{ url: string; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const { createServer, connect: dial } = await import("node:net");
  const target = new URL(targetUrl);
  const sockets = new Set<import("node:net").Socket>();
  const server = createServer((client) => {
    const upstream = dial(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => (s === client ? upstream : client).destroy());
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number) => new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", () => resolve()));
  await listen(0);
  const port = (server.address() as import("node:net").AddressInfo).port;
  const cut = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
  return { url: `http://127.0.0.1:${port}`, cut, restore: () => listen(port), close: cut };
}
