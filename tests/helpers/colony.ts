// A real colony in a temporary project: coral init, then the colony runtime
// (real DuckDB file, real nats-server it starts itself, real Connect API).
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { IdentityService } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { decodeJoinToken, type IdentityKey, type JoinToken } from "@coral/proto";
import { loadColonyKeys } from "@coral/colony";
import pino from "pino";
import { parseDocument } from "yaml";
import { runInit } from "@coral/cli/init";
import { startColony, type RunningColony } from "@coral/colony";

export interface TestProject extends AsyncDisposable {
  dir: string;
  home: string;
  colonyId: string;
  localToken: string;
  /** The colony's identity key: what it signs its calls to agents with. */
  colonyKey: IdentityKey;
  /** Edits .coral/config.yaml (path like ["colony", "agent_offline_after"]). */
  setConfig(path: string[], value: unknown): Promise<void>;
  start(): Promise<RunningColony>;
}

export const quietLogger = () => pino({ level: process.env.CORAL_TEST_LOG ?? "silent" });

export async function createTestProject(options: { app?: string } = {}): Promise<TestProject> {
  const dir = await mkdtemp(join(tmpdir(), "coral-project-"));
  const home = join(dir, "home");
  process.env.CORAL_HOME = home;
  const result = await runInit(
    { app: options.app ?? "shop", env: "dev", yes: true, dir },
    { input: new PassThrough(), output: new PassThrough(), interactive: false },
  );
  const localToken = (await readFile(join(dir, ".coral", "local.token"), "utf8")).trim();
  const colonies: RunningColony[] = [];
  const project: TestProject = {
    dir,
    home,
    colonyId: result.colonyId,
    localToken,
    colonyKey: (await loadColonyKeys(dir)).identity,
    async setConfig(path, value) {
      const file = join(dir, ".coral", "config.yaml");
      const doc = parseDocument(await readFile(file, "utf8"));
      doc.setIn(path, value);
      await writeFile(file, doc.toString());
    },
    async start() {
      const colony = await startColony({ projectDir: dir, logger: quietLogger(), apiPort: 0, natsPort: 0 });
      colonies.push(colony);
      return colony;
    },
    async [Symbol.asyncDispose]() {
      for (const c of colonies) await c.close();
      killLeftoverNats(dir);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return project;
}

/** A colony process killed by a failing test can leave its nats-server behind. */
export function killLeftoverNats(projectDir: string): void {
  try {
    const pid = Number(readFileSync(join(projectDir, ".coral", "nats-server.pid"), "utf8").trim());
    if (pid > 1) process.kill(pid, "SIGKILL");
  } catch {
    // No pid file or no such process: nothing left over.
  }
}

/** A client of one of the colony's services, with a bearer token when given. */
export function serviceApi<S extends DescService>(service: S, url: string, token?: string): Client<S> {
  const auth: Interceptor = (next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createClient(service, createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [auth] }));
}

/** A one-use invitation from the colony (as coral colony invite makes), decoded. */
export async function mintInvitation(colonyUrl: string, localToken: string, note = "test", options: { ttlSeconds?: number; maxUses?: number } = {}): Promise<JoinToken> {
  const res = await serviceApi(IdentityService, colonyUrl, localToken).createInvitation({ ttlSeconds: options.ttlSeconds ?? 600, maxUses: options.maxUses ?? 1, note });
  const decoded = decodeJoinToken(res.joinToken);
  if ("error" in decoded) throw new Error(decoded.error);
  return decoded.token;
}

export function colonyApi(url: string, token?: string) {
  return serviceApi(ColonyService, url, token);
}
