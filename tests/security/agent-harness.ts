// What the agent security tests share: a real agent in its own process (beside a
// real colony that enrolled it), raw HTTP requests an attacker would send,
// and signing as the colony does.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { colonyCallHeader, signColonyCall, type IdentityKey } from "@coral/proto";
import { mintInvitation, type TestProject } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";

const agentScript = fileURLToPath(new URL("./agent-process.ts", import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  agentId: string;
  apiUrl: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts a real agent (startAgent, as coral connect runs it) in a child process, enrolled with a fresh invitation. */
export async function startAgentProcess(
  project: TestProject,
  colonyUrl: string,
  options: { service: string; port: number; version?: string; rollback?: object; path?: string },
): Promise<AgentProcess> {
  const token = await mintInvitation(colonyUrl, project.localToken, `security test ${options.service}`);
  const child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", agentScript], {
    env: {
      ...process.env,
      PATH: options.path ?? process.env.PATH,
      AGENT_SERVICE: options.service,
      AGENT_PORT: String(options.port),
      AGENT_COLONY_URL: colonyUrl,
      AGENT_COLONY_PUBKEY: token.colonyPubkey,
      AGENT_INVITATION_ID: token.invitationId,
      AGENT_INVITATION_SECRET: token.invitationSecret,
      AGENT_DATA_DIR: join(project.dir, ".coral", "agents", options.service),
      AGENT_VERSION: options.version ?? "",
      AGENT_ROLLBACK: options.rollback ? JSON.stringify(options.rollback) : "",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const ready = await waitFor(
    "the agent process to register",
    () => {
      if (child.exitCode !== null) throw new Error(`the agent process exited (${child.exitCode}): ${out}`);
      const line = out.split("\n").find((l) => l.startsWith("{"));
      return line ? (JSON.parse(line) as { agentId: string; apiUrl: string }) : undefined;
    },
    { timeoutMs: 90_000 },
  );
  return {
    child,
    ...ready,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Resident and peak memory of a process, in bytes (Linux /proc). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** A body of `total` bytes (or endless), made as it is read; `sent()` says how much was taken. */
export function generatedBody(total = Infinity): { stream: Readable; sent(): number; ended(): boolean } {
  const chunk = Buffer.alloc(64 * 1024, 0x7b);
  let sent = 0;
  let ended = false;
  const stream = new Readable({
    read() {
      if (sent >= total) {
        ended = true;
        this.push(null);
        return;
      }
      const next = Math.min(chunk.length, total - sent);
      sent += next;
      this.push(next === chunk.length ? chunk : chunk.subarray(0, next));
    },
  });
  return { stream, sent: () => sent, ended: () => ended };
}

export interface RawAnswer {
  status: number;
  /** The body as text (Connect errors are JSON); `bytes` as received. */
  body: string;
  bytes: Buffer;
  /** ms from the request's start to the response's headers. */
  ms: number;
}

/** A POST with full control of headers and body; resolves when the answer is complete, whatever happens to the upload. */
export function rawPost(url: string, headers: Record<string, string>, body: Readable | Uint8Array | string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const req = http.request(url, { method: "POST", headers });
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      const ms = Date.now() - started;
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, body: bytes.toString("utf8"), bytes, ms });
        req.destroy();
      });
      res.on("error", reject);
    });
    // The agent closes the connection on a refused upload: the upload failing after the answer is expected.
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    if (body instanceof Readable) {
      body.pipe(req);
      body.on("error", () => undefined);
    } else req.end(body);
  });
}

export const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The header the colony sends with `body` to `procedure` on `agentId`. */
export function colonySigned(key: IdentityKey, agentId: string, procedure: string, body: Uint8Array, change: { timestampMs?: number; nonce?: string } = {}): Promise<string> {
  return signColonyCall(key, { agentId, procedure, bodySha256: sha256(body), ...change });
}

export { colonyCallHeader };

/**
 * The old proof (HMAC of the agent id with the colony secret) that every join
 * token holder could make: the attacks carry it too, so they would have
 * worked on the agent before colony signatures.
 */
export function oldSecretProof(secretHex: string, agentId: string): string {
  const timestampMs = Date.now();
  const nonce = randomBytes(16).toString("hex");
  const mac = createHmac("sha256", Buffer.from(secretHex, "hex")).update(`coral-mesh-register\n${agentId}\n${timestampMs}\n${nonce}`).digest("hex");
  return `${timestampMs}.${nonce}.${mac}`;
}

/** The colony secret join tokens carried (hex); colonies without one get a stand-in value, as nothing checks it any more. */
export function projectSecret(project: TestProject): string {
  const path = join(project.dir, ".coral", "keys", "colony.secret");
  return existsSync(path) ? readFileSync(path, "utf8").trim() : randomBytes(32).toString("hex");
}
