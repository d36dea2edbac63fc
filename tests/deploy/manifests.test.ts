// The deploy files checked offline: every Kubernetes manifest against the
// Kubernetes schema (kubernetes-models), the compose file's shape, the secrets
// they ship (never usable: the colony refuses them), and the systemd units
// with systemd-analyze verify.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { checkServiceSet } from "@coral/agent";
import { weakSecretProblem } from "@coral/colony";
import { repoRoot } from "./podman.ts";

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string };
  spec?: Record<string, unknown>;
}

/** The kubernetes-models class for an object: apps/v1 StatefulSet → kubernetes-models/apps/v1/StatefulSet. */
async function modelFor(obj: K8sObject): Promise<new (data: unknown) => { validate(): void }> {
  const path = `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
  const mod = (await import(path)) as Record<string, new (data: unknown) => { validate(): void }>;
  const model = mod[obj.kind];
  if (!model) throw new Error(`${path} exports no ${obj.kind}`);
  return model;
}

async function manifests(): Promise<Array<{ file: string; obj: K8sObject }>> {
  const dir = join(repoRoot, "infra/kubernetes");
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml")).sort();
  const all: Array<{ file: string; obj: K8sObject }> = [];
  for (const file of files)
    for (const doc of YAML.parseAllDocuments(await readFile(join(dir, file), "utf8"))) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
      const obj = doc.toJS() as K8sObject | null;
      if (obj) all.push({ file, obj });
    }
  return all;
}

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } };
type Container = {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  securityContext?: { allowPrivilegeEscalation?: boolean; capabilities?: { add?: string[]; drop?: string[] } };
  volumeMounts?: Array<{ mountPath: string }>;
};
function podSpec(obj: K8sObject): { containers: Container[]; shareProcessNamespace?: boolean; volumes?: Array<{ hostPath?: { path: string } }> } {
  return (obj.spec as { template: { spec: ReturnType<typeof podSpec> } }).template.spec;
}

describe("Kubernetes manifests", () => {
  it("every object in infra/kubernetes validates against the Kubernetes schema", async () => {
    const all = await manifests();
    expect(all.map(({ file, obj }) => `${file}:${obj.kind}/${obj.metadata?.name}`)).toEqual([
      "agent-daemonset.yaml:ConfigMap/coral-agent",
      "agent-daemonset.yaml:DaemonSet/coral-agent",
      "agent-sidecar.yaml:Deployment/api",
      "colony-wireguard.yaml:Service/coral-colony",
      "colony-wireguard.yaml:Service/coral-colony-wireguard",
      "colony-wireguard.yaml:StatefulSet/coral-colony",
      "colony.yaml:Service/coral-colony",
      "colony.yaml:StatefulSet/coral-colony",
      "secret.yaml:Secret/coral-secrets",
    ]);
    for (const { file, obj } of all) {
      const Model = await modelFor(obj);
      expect(() => new Model(obj).validate(), `${file} ${obj.kind}`).not.toThrow();
    }
  });

  it("the validator rejects a broken manifest (so the check above can fail)", async () => {
    const [colony] = (await manifests()).filter(({ file, obj }) => file === "colony.yaml" && obj.kind === "StatefulSet");
    const broken = structuredClone(colony!.obj);
    (podSpec(broken).containers[0] as unknown as { ports: unknown[] }).ports = [{ containerPort: "nine thousand" }];
    const Model = await modelFor(broken);
    expect(() => new Model(broken).validate()).toThrow(/containerPort/);
  });

  it("keeps a PVC for the colony's data, secrets from the Secret, and NET_ADMIN and /dev/net/tun only in the WireGuard variant", async () => {
    const all = await manifests();
    const sets = all.filter(({ obj }) => obj.kind === "StatefulSet");
    for (const { file, obj } of sets) {
      const spec = obj.spec as { volumeClaimTemplates: Array<{ metadata: { name: string } }> };
      expect(spec.volumeClaimTemplates[0]!.metadata.name, file).toBe("data");
      const colony = podSpec(obj).containers[0]!;
      expect(colony.volumeMounts?.map((m) => m.mountPath), file).toContain("/data");
      expect(colony.env?.map((e) => e.name), file).toEqual(expect.arrayContaining(["CORAL_ENROLL_SECRET", "ANTHROPIC_API_KEY"]));
      const caps = colony.securityContext?.capabilities?.add ?? [];
      const tun = (podSpec(obj).volumes ?? []).some((v) => v.hostPath?.path === "/dev/net/tun");
      if (file === "colony-wireguard.yaml") {
        expect(caps).toEqual(["NET_ADMIN"]);
        expect(tun).toBe(true);
      } else {
        expect(caps).toEqual([]);
        expect(tun).toBe(false);
      }
    }
    const sidecar = all.find(({ obj }) => obj.kind === "Deployment")!.obj;
    expect(podSpec(sidecar).shareProcessNamespace).toBe(true);
    expect(podSpec(sidecar).containers.map((c) => c.name)).toEqual(["api", "coral-agent"]);
    expect(podSpec(sidecar).containers.flatMap((c) => c.securityContext?.capabilities?.add ?? [])).toEqual([]);
  });

  it("the per-node agent observes the ConfigMap's services, each a valid service list, with only the /proc-reading capabilities", async () => {
    const all = await manifests();
    const map = all.find(({ obj }) => obj.kind === "ConfigMap")!.obj as unknown as { data: Record<string, string> };
    const listed = (YAML.parse(map.data["agent.yaml"]!) as { services: { name: string; port: number; health?: string }[] }).services;
    // As the agent checks a service list: names and ports valid, each once.
    const specs = checkServiceSet(listed.map(({ name, port }) => ({ name, port })));
    expect(specs.map((s) => `${s.name}:${s.port}`)).toEqual(["ingress:443", "node-exporter:9100"]);
    for (const s of listed) expect(s.health, s.name).toMatch(/^(\/|tcp:\/\/|https?:\/\/)/);
    const ds = all.find(({ obj }) => obj.kind === "DaemonSet")!.obj;
    const pod = podSpec(ds) as ReturnType<typeof podSpec> & { hostNetwork?: boolean; hostPID?: boolean };
    expect([pod.hostNetwork, pod.hostPID]).toEqual([true, true]);
    const agent = pod.containers[0]!;
    expect(agent.args).toEqual(["--config", "/etc/coral/agent.yaml", "--data-dir", "/data"]);
    expect(agent.securityContext?.capabilities).toEqual({ drop: ["ALL"], add: ["SYS_PTRACE", "DAC_READ_SEARCH"] });
    expect(agent.securityContext?.allowPrivilegeEscalation).toBe(false);
  });

  it("the colony and the agent sidecar take the standing invitation from the Secret's enroll-secret, never the old name", async () => {
    const all = await manifests();
    const secret = all.find(({ obj }) => obj.kind === "Secret")!.obj as unknown as { metadata: { name: string }; stringData: Record<string, string> };
    const users = all.filter(({ obj }) => obj.kind === "StatefulSet" || obj.kind === "Deployment" || obj.kind === "DaemonSet");
    expect(users.map(({ file }) => file).sort()).toEqual(["agent-daemonset.yaml", "agent-sidecar.yaml", "colony-wireguard.yaml", "colony.yaml"]);
    for (const { file, obj } of users) {
      const env = podSpec(obj).containers.flatMap((c) => c.env ?? []);
      const enroll = env.find((e) => e.name === "CORAL_ENROLL_SECRET");
      expect(enroll?.valueFrom?.secretKeyRef, file).toEqual({ name: "coral-secrets", key: "enroll-secret" });
      expect(env.map((e) => e.name), file).not.toContain("CORAL_COLONY_SECRET");
      // Every key a manifest reads from the Secret is one the Secret has.
      for (const e of env) {
        const ref = e.valueFrom?.secretKeyRef;
        if (!ref) continue;
        expect(ref.name, `${file} ${e.name}`).toBe(secret.metadata.name);
        expect(Object.keys(secret.stringData), `${file} ${e.name}`).toContain(ref.key);
      }
    }
    const text = (await Promise.all((await readdir(join(repoRoot, "infra/kubernetes"))).map((f) => readFile(join(repoRoot, "infra/kubernetes", f), "utf8")))).join("\n");
    expect(text).not.toMatch(/colony-secret|CORAL_COLONY_SECRET/);
  });

  it("the shipped secret.yaml holds no usable enroll secret: the colony's own check refuses its placeholder (item 9: it once shipped all zeros)", async () => {
    const secret = (await manifests()).find(({ obj }) => obj.kind === "Secret")!.obj as unknown as { stringData: Record<string, string> };
    const shipped = secret.stringData["enroll-secret"]!;
    expect(shipped).toBeDefined();
    // What the colony runs at start (standingEnrollSecret lowercases the value first).
    expect(weakSecretProblem(shipped.trim().toLowerCase())).toMatch(/64 hex characters/);
    // It tells whoever applies it what to do.
    expect(shipped).toMatch(/openssl-rand-hex-32/);
    // The check itself refuses the old all-zero value and accepts a real one (so the assertion above can fail).
    expect(weakSecretProblem("0".repeat(64))).toMatch(/not random/);
    expect(weakSecretProblem("ab".repeat(32))).toMatch(/not random/);
    expect(weakSecretProblem(randomBytes(32).toString("hex"))).toBeNull();
    // The file documents how to make a real one.
    const file = await readFile(join(repoRoot, "infra/kubernetes/secret.yaml"), "utf8");
    expect(file).toContain(`--from-literal=enroll-secret="$(openssl rand -hex 32)"`);
  });
});

describe("compose file", () => {
  it("has the colony with its volume and the seed's ports, and agents in the app's namespaces", async () => {
    const compose = YAML.parse(await readFile(join(repoRoot, "infra/compose/compose.yaml"), "utf8"), { merge: true }) as {
      services: Record<string, { image: string; ports?: string[]; volumes?: string[]; network_mode?: string; pid?: string; environment?: Record<string, string> }>;
      volumes: Record<string, unknown>;
    };
    expect(Object.keys(compose.services).sort()).toEqual(["api-agent", "coral-colony", "frontend-agent", "sample-app", "store-agent"]);
    const colony = compose.services["coral-colony"]!;
    expect(colony.volumes).toEqual(["coral-data:/data"]);
    expect(colony.ports).toEqual(["9000:9000", "41820:41820/udp"]);
    expect(Object.keys(compose.volumes)).toEqual(["coral-data"]);
    const agents = Object.entries(compose.services).filter(([name]) => name.endsWith("-agent"));
    expect(agents.map(([, s]) => [s.environment?.CORAL_COMPONENT, s.environment?.CORAL_PORT, s.network_mode, s.pid])).toEqual([
      ["frontend", "3000", "service:sample-app", "service:sample-app"],
      ["api", "3001", "service:sample-app", "service:sample-app"],
      ["store", "3002", "service:sample-app", "service:sample-app"],
    ]);
  });

  it("gives the colony and every agent the standing invitation from the caller's CORAL_ENROLL_SECRET, required, never a default", async () => {
    const text = await readFile(join(repoRoot, "infra/compose/compose.yaml"), "utf8");
    const compose = YAML.parse(text, { merge: true }) as { services: Record<string, { environment?: Record<string, string> }> };
    for (const name of ["coral-colony", "frontend-agent", "api-agent", "store-agent"]) {
      const env = compose.services[name]!.environment ?? {};
      // ${VAR:?message}: compose refuses to start without it.
      expect(env.CORAL_ENROLL_SECRET, name).toMatch(/^\$\{CORAL_ENROLL_SECRET:\?[^}]+\}$/);
      expect(Object.keys(env), name).not.toContain("CORAL_COLONY_SECRET");
      expect(env.CORAL_COLONY_URL ?? "http://coral-colony:9000", name).toBe("http://coral-colony:9000");
    }
    expect(text).not.toContain("CORAL_COLONY_SECRET");
  });
});

describe("paths in infra/", () => {
  /** Every file under infra/, as [path relative to infra/, text]. */
  async function infraFiles(): Promise<Array<[string, string]>> {
    const files = (await readdir(join(repoRoot, "infra"), { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
    return Promise.all(files.map(async (e) => {
      const path = join(e.parentPath, e.name);
      return [path.slice(join(repoRoot, "infra").length + 1), await readFile(path, "utf8")] as [string, string];
    }));
  }

  it("every /opt/coral path names built output or a file the image copies, never a package's TypeScript sources", async () => {
    const workspaces = (JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { workspaces: string[] }).workspaces;
    const seen: string[] = [];
    for (const [file, text] of await infraFiles())
      for (const [, rel] of text.matchAll(/\/opt\/coral\/([\w@./-]+)/g)) {
        const path = rel!.replace(/\/+$/, "");
        seen.push(path);
        // The image holds each package's package.json, bin/ and dist/ only (tests run after `npm run build`).
        expect(workspaces.some((ws) => path.startsWith(`${ws}/`) && !/^[^/]+\/(package\.json|bin|dist)(\/|$)/.test(path)), `${file}: /opt/coral/${path}`).toBe(false);
        expect(existsSync(join(repoRoot, path)), `${file}: /opt/coral/${path} has no ${path} in this checkout (built?)`).toBe(true);
      }
    expect(seen).toEqual(expect.arrayContaining(["cli/bin/coral.js", "discovery-worker/bin/coral-discovery.js", "infra/colony/healthcheck.mjs", "cli/dist/sample-app"]));
  });

  it("the colony image's build stage copies every workspace package (its package.json before the install, its sources before the build)", async () => {
    const workspaces = (JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { workspaces: string[] }).workspaces;
    const containerfile = await readFile(join(repoRoot, "infra/colony/Containerfile"), "utf8");
    const install = containerfile.indexOf("npm install");
    const build = containerfile.indexOf("npm run build");
    expect(install).toBeGreaterThan(0);
    expect(build).toBeGreaterThan(install);
    for (const ws of workspaces) {
      const manifest = containerfile.indexOf(`COPY ${ws}/package.json ${ws}/\n`);
      const sources = containerfile.indexOf(`COPY ${ws}/ ${ws}/\n`);
      expect(manifest, `COPY ${ws}/package.json`).toBeGreaterThan(0);
      expect(manifest, `COPY ${ws}/package.json before npm install`).toBeLessThan(install);
      expect(sources, `COPY ${ws}/`).toBeGreaterThan(install);
      expect(sources, `COPY ${ws}/ before npm run build`).toBeLessThan(build);
    }
  });
});

function systemdAnalyze(args: string[], env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) =>
    execFile("systemd-analyze", args, { env: { ...process.env, ...env }, timeout: 60_000 }, (err, _stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stderr }),
    ),
  );
}

const noSystemdAnalyze = await new Promise<string | undefined>((resolve) =>
  execFile("systemd-analyze", ["--version"], (err) => resolve(err ? "systemd-analyze is not installed (apt-get install systemd)" : undefined)),
);
if (noSystemdAnalyze) console.warn(`skipping the systemd unit checks: ${noSystemdAnalyze}`);

describe.skipIf(noSystemdAnalyze)("systemd units", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /** The units in a temporary unit folder, ExecStart pointed at this checkout's bins (verify checks they exist). */
  async function unitDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "coral-i9-units-"));
    dirs.push(dir);
    await cp(join(repoRoot, "infra/systemd"), dir, { recursive: true });
    for (const file of await readdir(dir)) {
      if (!file.endsWith(".service")) continue;
      const text = (await readFile(join(dir, file), "utf8"))
        .replaceAll("/usr/local/bin/coral-discovery ", `${repoRoot}discovery-worker/bin/coral-discovery.js `)
        .replaceAll("/usr/local/bin/coral ", `${repoRoot}cli/bin/coral.js `);
      await writeFile(join(dir, file), text);
    }
    // An instance of the agent template, as systemctl would load it.
    await cp(join(dir, "coral-agent@.service"), join(dir, "coral-agent@api.service"));
    return dir;
  }

  it("systemd-analyze verify accepts the colony (with its WireGuard drop-in), agent and discovery units without a warning", async () => {
    const dir = await unitDir();
    const units = ["coral-colony.service", "coral-agent@api.service", "coral-agent.service", "coral-discovery.service"].map((u) => join(dir, u));
    const res = await systemdAnalyze(["verify", "--man=no", ...units], { SYSTEMD_UNIT_PATH: `${dir}:` });
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    for (const unit of ["coral-colony.service", "coral-agent@.service", "coral-agent.service", "coral-discovery.service"]) {
      const text = await readFile(join(repoRoot, "infra/systemd", unit), "utf8");
      expect(text, unit).toMatch(/^Restart=(on-failure|always)$/m);
      expect(text, unit).toMatch(/^NoNewPrivileges=yes$/m);
      expect(text, unit).toMatch(/^ProtectSystem=strict$/m);
    }
  });

  it("the check catches a broken unit and a broken drop-in", async () => {
    const dir = await unitDir();
    const colony = join(dir, "coral-colony.service");
    await writeFile(colony, (await readFile(colony, "utf8")).replace("Restart=on-failure", "Restart=sometimes"));
    const dropIn = join(dir, "coral-colony.service.d/wireguard.conf");
    await writeFile(dropIn, (await readFile(dropIn, "utf8")).replace("DeviceAllow=/dev/net/tun rw", "DeviceAllow=/dev/net/tun bogus"));
    const res = await systemdAnalyze(["verify", "--man=no", colony], { SYSTEMD_UNIT_PATH: `${dir}:` });
    expect(res.stderr).toMatch(/restart specifier.*sometimes/);
    expect(res.stderr).toMatch(/Invalid device rights 'bogus'/);
  });
});
