// Bundles the worker with esbuild, as wrangler would, so Miniflare can run it.
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

export const workerEntry = fileURLToPath(new URL("../worker/index.ts", import.meta.url));

export async function bundleWorker(): Promise<string> {
  const result = await build({
    entryPoints: [workerEntry],
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
