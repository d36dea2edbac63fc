// Podman for the deploy suite: the flags this machine needs, a cached local
// base image (no registry here), image builds, and cleanup of everything a
// test made (every name starts with coral-i9-).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
/** Built once from Debian packages and kept between runs (infra/base-image/build.sh). */
export const baseImage = "localhost/coral-i24-base:bookworm-node20";
// runc + cgroupfs: what works as root here (no systemd as pid 1, so events go
// to a file: exec needs them for its exit code); ulimits: the runtime's defaults are refused here, these are not.
const globalFlags = ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"];
// nofile 8192: npm install in the image opens more than 1000 files at once (EMFILE).
export const limits = ["--ulimit", "nofile=8192:8192", "--ulimit", "nproc=1000:1000"];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, cwd: repoRoot }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs podman with this machine's flags and returns what it did, failing or not. */
export function podmanResult(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return run("podman", [...globalFlags, ...args], timeoutMs);
}

/** Runs podman; throws with its stderr (and its stdout's tail) unless it succeeds. */
export async function podman(args: string[], timeoutMs = 120_000): Promise<string> {
  const res = await podmanResult(args, timeoutMs);
  if (res.code !== 0) {
    // A build step's own errors (tsc's, npm's) are on stdout; podman's summary is on stderr.
    const stdoutTail = res.stdout.trim().split("\n").slice(-60).join("\n");
    throw new Error(`podman ${args.join(" ")} failed (${res.code}): ${res.stderr.trim()}${stdoutTail ? `\n--- stdout (last 60 lines) ---\n${stdoutTail}` : ""}`);
  }
  return res.stdout.trim();
}

/** Why podman tests cannot run here, or undefined when they can. */
export async function podmanMissing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "podman tests need root (rootful podman with runc)";
  const version = await run("podman", ["--version"], 30_000);
  if (version.code !== 0) return "podman is not installed (apt-get install -y --no-install-recommends podman runc debootstrap)";
  const probe = await run("podman", [...globalFlags, "info", "--format", "{{.Host.OCIRuntime.Name}}"], 60_000);
  if (probe.code !== 0) return `podman does not work here: ${probe.stderr.trim()}`;
  return undefined;
}

export function uniqueName(what: string): string {
  return `coral-i9-${what}-${randomBytes(3).toString("hex")}`;
}

/** Builds the base image unless it is there already (about 1-2 minutes). */
export async function ensureBaseImage(): Promise<string> {
  const exists = await run("podman", [...globalFlags, "image", "exists", baseImage], 30_000);
  if (exists.code === 0) return baseImage;
  const res = await run("bash", [`${repoRoot}infra/base-image/build.sh`, baseImage], 900_000);
  if (res.code !== 0) throw new Error(`infra/base-image/build.sh failed: ${res.stderr.trim()}`);
  return baseImage;
}

/** A TLS-intercepting proxy's CA for npm inside the build, when this machine uses one. */
function caBuildFlags(): string[] {
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  if (!ca || !existsSync(ca)) return [];
  return ["-v", `${ca}:/run/build-ca.crt:ro`, "--build-arg", "NODE_EXTRA_CA_CERTS=/run/build-ca.crt"];
}

export async function buildImage(containerfile: string, tag: string, buildArgs: Record<string, string>): Promise<void> {
  const args = Object.entries(buildArgs).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]);
  // --layers=false: no intermediate images left behind (each run builds afresh; npm's cache mount keeps it quick).
  await podman(["build", "--format", "docker", "--layers=false", ...limits, ...caBuildFlags(), ...args, "-f", containerfile, "-t", tag, "."], 900_000);
}

/** Names of what a test made, removed at the end (containers first). */
export class Cleanup {
  containers: string[] = [];
  volumes: string[] = [];
  images: string[] = [];

  async run(): Promise<void> {
    // Sidecars first: they hold the app container's namespaces.
    for (const c of [...this.containers].reverse()) await run("podman", [...globalFlags, "rm", "-f", "-v", "-t", "5", c]);
    for (const v of this.volumes) await run("podman", [...globalFlags, "volume", "rm", "-f", v]);
    for (const i of this.images) await run("podman", [...globalFlags, "rmi", "-f", i]);
  }
}

/** The container's address on podman's network. */
export async function containerIp(name: string): Promise<string> {
  return podman(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name]);
}
