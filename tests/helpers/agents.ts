// Real agents (in-process) beside real sample-app processes. Each enrolls its
// own key with a one-use invitation the test's colony makes (as coral connect
// does for a local colony), and pins the colony's key from it.
import { join } from "node:path";
import { loadAgentIdentity, startAgent, type RunningAgent } from "@coral/agent";
import type { TestProject } from "./colony.ts";
import { mintInvitation, quietLogger } from "./colony.ts";

export async function testAgent(project: TestProject, colonyUrl: string, service: string, port: number, extra: Partial<Parameters<typeof startAgent>[0]> = {}): Promise<RunningAgent> {
  const dataDir = extra.dataDir ?? join(project.dir, ".coral", "agents", service);
  const enrolled = (await loadAgentIdentity(dataDir)).enrolled;
  const token = enrolled ? undefined : await mintInvitation(colonyUrl, project.localToken, `test agent ${service}`);
  return startAgent({
    serviceName: service,
    port,
    colonyUrl,
    ...(token ? { invitation: { invitationId: token.invitationId, invitationSecret: token.invitationSecret }, colonyPubkey: token.colonyPubkey } : {}),
    dataDir,
    sampleIntervalMs: 250,
    summaryIntervalMs: 1000,
    heartbeatIntervalMs: 1000,
    healthUrl: `http://127.0.0.1:${port}/health`,
    logger: quietLogger(),
    // Each eBPF connection tracer is a bpftrace (≈1.6 s of CPU to start, ≈110 MB):
    // tests that do not look at short connections use /proc snapshots.
    connectionSource: "procfs",
    // The HTTP request tracer is another bpftrace: on only where a test asks (tests/requests).
    httpTracing: false,
    ...extra,
  });
}
