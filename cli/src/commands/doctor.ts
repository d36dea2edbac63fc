// coral doctor: checks a project's security set-up and says how to fix what
// it finds. Exit code 0 when every check passes (or is skipped), 1 otherwise.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { isAlive, readPidFile } from "@coral/colony/pid-file";
import { colors, columns } from "../format/text.ts";
import { useColor } from "./read.ts";
import { unaryClient } from "./read-client.ts";
import { localColonyDir, resolveTarget } from "./remote.ts";
import {
  checkApiTransport,
  checkDiscovery,
  checkFileModes,
  checkSecrets,
  checkTokens,
  type Finding,
  type NamedSecret,
  type TokenSummary,
} from "./doctor-checks.ts";

interface DoctorOptions {
  dir?: string;
  json?: boolean;
}

export interface DoctorReport {
  projectDir: string;
  colonyId: string | undefined;
  findings: Finding[];
}

/** Runs every check against the project in `projectDir`, with the environment `env`. */
export async function runDoctor(projectDir: string, env: Readonly<Record<string, string | undefined>> = process.env): Promise<DoctorReport> {
  const { loadColonyConfig } = await import("@coral/colony");
  const findings: Finding[] = [];
  let config: Awaited<ReturnType<typeof loadColonyConfig>> | undefined;
  try {
    config = await loadColonyConfig(projectDir, { env });
  } catch (err) {
    findings.push({ check: "config", name: "Configuration", status: "error", detail: (err as Error).message, fix: "correct .coral/config.yaml (or the CORAL_* variable named)" });
  }
  if (config) {
    findings.push(checkApiTransport(config.colony.api, config.colony.mesh.mode));
    findings.push(checkDiscovery(config.discovery.endpoint));
  }
  findings.push(...checkSecrets(await projectSecrets(projectDir, env)));
  findings.push(...(await checkFileModes(join(projectDir, ".coral"))));
  findings.push(checkTokens(await tokenSummaries(projectDir, config?.colony.storage.path)));
  return { projectDir, colonyId: config?.colony.colony_id, findings };
}

/** The colony secret file and the secrets the environment hands a colony or agent. */
async function projectSecrets(projectDir: string, env: Readonly<Record<string, string | undefined>>): Promise<NamedSecret[]> {
  const secrets: NamedSecret[] = [];
  const file = join(projectDir, ".coral", "keys", "colony.secret");
  if (existsSync(file)) secrets.push({ source: ".coral/keys/colony.secret", value: await readFile(file, "utf8").catch(() => "") });
  for (const name of ["CORAL_COLONY_SECRET", "CORAL_ENROLL_SECRET"]) {
    const value = env[name]?.trim();
    if (value) secrets.push({ source: name, value });
    const path = env[`${name}_FILE`]?.trim();
    if (path && existsSync(path)) secrets.push({ source: `${name}_FILE (${path})`, value: await readFile(path, "utf8").catch(() => "") });
  }
  return secrets;
}

/** From the running colony (local token), else read-only from its stopped store. */
async function tokenSummaries(projectDir: string, storePath: string | undefined): Promise<TokenSummary[] | { skipped: string }> {
  const running = await readPidFile(projectDir);
  if (running && isAlive(running.pid)) {
    try {
      const target = await resolveTarget({}, projectDir);
      const res = await unaryClient(ColonyService, target, { timeoutMs: 10_000 }).listTokens({});
      return res.tokens.map((t) => ({ name: t.name, revoked: t.revoked, neverExpires: !t.expiresAt }));
    } catch (err) {
      return { skipped: `the running colony did not list its tokens: ${(err as Error).message}` };
    }
  }
  if (!storePath) return { skipped: "no configuration to find the store by" };
  try {
    const { readTokensOffline } = await import("@coral/colony/store");
    const rows = await readTokensOffline(storePath);
    return rows.map((t) => ({ name: t.name, revoked: t.revokedAt !== null, neverExpires: !t.expiresAt }));
  } catch (err) {
    return { skipped: `cannot read the store ${storePath}: ${(err as Error).message}` };
  }
}

const symbols = { ok: "✓", warning: "⚠", error: "✗", skipped: "-" } as const;

export function formatDoctor(report: DoctorReport, color: boolean): string {
  const c = colors(color);
  const paint = { ok: c.green, warning: c.yellow, error: c.red, skipped: c.dim } as const;
  const rows = report.findings.map((f) => [paint[f.status](symbols[f.status]), f.name, f.detail]);
  const [head, ...lines] = columns(["", "CHECK", "DETAIL"], rows, 2);
  const problems = report.findings.filter((f) => f.status === "warning" || f.status === "error");
  const out = [`Coral doctor: ${report.projectDir}${report.colonyId ? ` (${report.colonyId})` : ""}`, "", c.bold(head!), ...lines, ""];
  if (problems.length === 0) out.push(c.green("✓ No problems found."));
  else {
    out.push(`${problems.length} problem${problems.length === 1 ? "" : "s"} to fix:`);
    for (const p of problems) out.push(`  ${paint[p.status](symbols[p.status])} ${p.name}: ${p.detail}`, `    fix: ${p.fix ?? "see above"}`);
  }
  return out.join("\n");
}

export function doctorCommand(): Command {
  return new Command("doctor")
    .description("check this project's security: TLS off loopback, weak secrets, file permissions, non-expiring tokens")
    .option("--dir <path>", "project folder (default: this one or the current colony's)")
    .option("--json", "print JSON")
    .action(async (opts: DoctorOptions) => {
      const projectDir = opts.dir ? resolve(opts.dir) : await localColonyDir(process.cwd());
      if (!projectDir || !existsSync(join(projectDir, ".coral")))
        throw new Error("no colony here: run this in a project with .coral/ (coral init), pass --dir, or pick one with coral colony use <id>");
      const report = await runDoctor(projectDir);
      const ok = report.findings.every((f) => f.status === "ok" || f.status === "skipped");
      if (opts.json)
        console.log(
          JSON.stringify(
            {
              project_dir: report.projectDir,
              colony_id: report.colonyId ?? null,
              ok,
              checks: report.findings.map((f) => ({ check: f.check, name: f.name, status: f.status, detail: f.detail, fix: f.fix ?? null })),
            },
            null,
            2,
          ),
        );
      else console.log(formatDoctor(report, useColor()));
      // Scripts and CI can gate on it: 1 while anything needs fixing.
      if (!ok) process.exitCode = 1;
    });
}
