#!/usr/bin/env node
// The coral command runs the compiled JavaScript in dist/ (npm install builds
// it; so does `npm run build`). --version and the read commands run
// dist/bundle/read.js (src/read-main.ts, bundled by the build: a few files
// instead of ~170 modules), `coral connect` (the agent) runs the minified
// dist/bundle-connect/connect.js (src/connect-main.ts); every other command
// runs dist/main.js, which loads only the module of the command being run.
// `coral status` never loads DuckDB, NATS or the colony runtime.
const read = new Set(["status", "topology", "events", "metrics", "history", "-v", "--version"]).has(process.argv[2]);
const agent = process.argv[2] === "connect";
// Stack traces point into the TypeScript sources. Not for the read commands:
// they print one-line errors, never a stack, and Node reading and indexing
// their bundle's source maps cost about a tenth of `coral status`'s start-up
// (bench/BENCHMARKS.md). Nor for the agent: its bundle's source map, parsed
// and kept for the life of the process, would cost more memory than the
// bundle saves. NODE_OPTIONS=--enable-source-maps maps them too.
if (!read && !agent) process.setSourceMapsEnabled(true);
// The agent runs for months beside the services it observes: keep V8's young
// generation at its initial 1 MB instead of letting module loading grow it to
// 16 MB a semi-space that stays resident (about −15 MB RSS, no measurable CPU
// cost at the agent's allocation rate; bench/BENCHMARKS.md), and have V8
// collect its old generation sooner and keep fewer free pages
// (--optimize-for-size: five services' agent stays at ~80 MB instead of
// climbing past 90 over ten minutes, for the same CPU), and stop at V8's
// baseline compiler (--max-opt=1: no TurboFan; the agent's JavaScript is
// rarely hot, and its optimised code and compile jobs held ~11 MB: five
// services 76.7 MB mean instead of 87.5, the same 1.09 % CPU over ten
// minutes). Set before any of the agent's modules load.
if (agent) {
  const { setFlagsFromString } = await import("node:v8");
  setFlagsFromString("--semi-space-growth-factor=1");
  setFlagsFromString("--optimize-for-size");
  setFlagsFromString("--max-opt=1");
}
const entry = read ? "../dist/bundle/read.js" : agent ? "../dist/bundle-connect/connect.js" : "../dist/main.js";
let main;
try {
  ({ main } = await import(entry));
} catch (err) {
  if (err?.code !== "ERR_MODULE_NOT_FOUND" || !String(err.message).includes(entry.slice(2))) throw err;
  console.error("coral: not built yet; run `npm run build` (npm install does it) in the Coral checkout");
  process.exit(1);
}
process.exitCode = await main(process.argv);
