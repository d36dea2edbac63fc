// The worker as one ES module for Miniflare, bundled with esbuild as wrangler
// would. `npm run build` writes it to dist/worker.js, so the built
// coral-discovery never loads esbuild; run from source, it bundles on start.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

export const workerEntry = fileURLToPath(new URL("../worker/index.ts", import.meta.url));
/** Where the build puts the bundle, beside dist/self-hosted/. */
const prebuiltBundle = fileURLToPath(new URL("../worker.js", import.meta.url));

export async function bundleWorker(): Promise<string> {
  if (existsSync(prebuiltBundle)) return readFile(prebuiltBundle, "utf8");
  return buildWorkerBundle();
}

/** Bundles src/worker/index.ts now (the build script and runs from source). */
export async function buildWorkerBundle(entry = workerEntry): Promise<string> {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    mainFields: ["module", "main"],
    conditions: ["workerd", "worker", "browser"],
    external: ["cloudflare:*"],
    write: false,
    logLevel: "silent",
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error("esbuild produced no worker bundle");
  return output.text;
}
