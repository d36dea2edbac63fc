// The services of one agent from a YAML file (`coral connect --config`),
// read again on SIGHUP or `coral connect --reload`:
//
//   services:
//     - name: api
//       port: 3001
//       health: /health            # a path on the port, or an http(s):// / tcp:// URL
//       metrics: http://127.0.0.1:3001/metrics
//       tags: { version: "2.1.0" }
//       sdk: 4001                  # the app's Coral SDK port (default: found)
//       exec: false                # refuse coral exec beside this service (default: allowed)
import { readFile } from "node:fs/promises";
import { checkServiceSet, healthUrlFor, ServiceSpecError, type ServiceSpec } from "@coral/agent";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

const serviceSchema = z
  .object({
    name: z.string(),
    port: z.number().int().min(1).max(65535),
    health: z.string().optional(),
    metrics: z.url({ protocol: /^https?$/ }).optional(),
    tags: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
    sdk: z.number().int().min(1).max(65535).optional(),
    exec: z.boolean().optional(),
  })
  .strict();

const configSchema = z.object({ services: z.array(serviceSchema).min(1, "list at least one service") }).strict();

export class AgentConfigError extends Error {
  override name = "AgentConfigError";
}

/** The file's services, checked as a set; every mistake names the file and where. */
export async function loadAgentConfig(path: string): Promise<ServiceSpec[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new AgentConfigError(`${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return agentConfigFrom(text, path);
}

export function agentConfigFrom(text: string, path: string): ServiceSpec[] {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new AgentConfigError(`${path}: not valid YAML (${(err as Error).message.split("\n")[0]})`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new AgentConfigError(`${path}: ${issue.path.join(".") || "(top)"}: ${issue.message}`);
  }
  try {
    return checkServiceSet(
      parsed.data.services.map((s) => ({
        name: s.name,
        port: s.port,
        healthUrl: s.health === undefined ? undefined : healthUrlFor(s.health, s.port),
        metricsUrl: s.metrics,
        tags: s.tags,
        sdkPort: s.sdk,
        exec: s.exec,
      })),
    );
  } catch (err) {
    if (err instanceof ServiceSpecError) throw new AgentConfigError(`${path}: ${err.message}`);
    throw err;
  }
}
