// Real agents (in-process) beside real sample-app processes.
import { join } from "node:path";
import { startAgent, type RunningAgent } from "@coral/agent";
import type { TestProject } from "./colony.ts";
import { quietLogger } from "./colony.ts";

export function testAgent(project: TestProject, colonyUrl: string, service: string, port: number, extra: Partial<Parameters<typeof startAgent>[0]> = {}): Promise<RunningAgent> {
  return startAgent({
    serviceName: service,
    port,
    colonyUrl,
    secret: project.secret,
    dataDir: join(project.dir, ".coral", "agents", service),
    sampleIntervalMs: 250,
    summaryIntervalMs: 1000,
    heartbeatIntervalMs: 1000,
    healthUrl: `http://127.0.0.1:${port}/health`,
    logger: quietLogger(),
    ...extra,
  });
}
