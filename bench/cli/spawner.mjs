// The process that starts and times the measured commands for bench/cli/run.ts.
// Plain JavaScript on plain node, so it stays small: forking a child from the
// bench process itself (the colony, DuckDB and tsx loaded, hundreds of MB)
// added ~20 ms to every command, node -e 0 included, which flattered every
// ratio. Reads one JSON request a line on stdin ({ id, argv, cwd, env }),
// runs `node ...argv`, and writes one JSON line back:
// { id, ms (spawn to exit, wall), code, stdout, stderr }.
import { execFile } from "node:child_process";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";

for await (const line of createInterface({ input: process.stdin })) {
  const { id, argv, cwd, env } = JSON.parse(line);
  const result = await new Promise((resolve) => {
    const t = performance.now();
    execFile(process.execPath, argv, { cwd, env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const ms = performance.now() - t;
      resolve({ id, ms, code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
