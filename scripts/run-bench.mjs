// Runs every benchmark (bench/<name>/run.ts) in turn with `node --import tsx`
// (sources through the coral-source export condition; bins run the build).
// Each writes its figures to bench/results/. Exits non-zero if any benchmark
// failed (a missed target is not a failure).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const benchDir = join(root, "bench");
const runs = readdirSync(benchDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && entry.name !== "results")
  .map((entry) => join(benchDir, entry.name, "run.ts"))
  .filter((file) => existsSync(file))
  .sort();

if (runs.length === 0) {
  console.log("no benchmarks found (bench/*/run.ts)");
  process.exit(0);
}

const failed = [];
for (const file of runs) {
  const name = relative(root, file);
  console.log(`\n=== ${name} ===`);
  const result = spawnSync(process.execPath, ["--conditions=coral-source", "--import", "tsx", file], { cwd: root, stdio: "inherit" });
  if (result.status !== 0) failed.push(`${name} (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`);
}
if (failed.length > 0) {
  console.error(`\nbenchmarks failed: ${failed.join(", ")}`);
  process.exit(1);
}
console.log(`\n${runs.length} benchmark(s) done; figures in bench/results/`);
