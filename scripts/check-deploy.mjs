// Proves the hosted build: `wrangler deploy --dry-run` bundles the worker with
// wrangler.toml's bindings and migrations, offline.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const out = mkdtempSync(join(tmpdir(), "coral-wrangler-"));
try {
  const log = execFileSync(join("node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", out], {
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const bundle = join(out, "index.js");
  if (!existsSync(bundle)) throw new Error(`wrangler wrote no ${bundle}:\n${log}`);
  for (const binding of ["MESHES", "DIRECTORY", "RATE_LIMITER"])
    if (!log.includes(binding)) throw new Error(`wrangler's dry run does not list the ${binding} binding:\n${log}`);
  console.log(`deploy: wrangler deploy --dry-run OK (${Math.round(statSync(bundle).size / 1024)} KiB bundle)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
