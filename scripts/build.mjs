// npm run build (and npm install, through prepare): compiles every package to
// its dist/ with tsc project references (one module per source file, so the
// CLI can keep loading only the command it runs), copies the few files tsc
// does not emit, and bundles the discovery worker for self-hosted workerd.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
execFileSync(process.execPath, [tsc, "-b", join(root, "tsconfig.build.json")], { stdio: "inherit" });

const assets = [["cli/src/sample-app/component.mjs", "cli/dist/sample-app/component.mjs"]];
for (const [from, to] of assets) {
  mkdirSync(dirname(join(root, to)), { recursive: true });
  copyFileSync(join(root, from), join(root, to));
}

const { buildWorkerBundle } = await import(join(root, "discovery-worker/dist/self-hosted/bundle.js"));
writeFileSync(join(root, "discovery-worker/dist/worker.js"), await buildWorkerBundle(join(root, "discovery-worker/src/worker/index.ts")));
console.log("build: packages compiled to dist/, discovery worker bundled");
