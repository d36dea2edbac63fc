#!/usr/bin/env node
// The coral command runs the compiled JavaScript in dist/ (npm install builds
// it; so does `npm run build`). main.js loads only the module of the command
// being run: `coral status` never loads DuckDB, NATS or the colony runtime.
process.setSourceMapsEnabled(true);
let main;
try {
  ({ main } = await import("../dist/main.js"));
} catch (err) {
  if (err?.code !== "ERR_MODULE_NOT_FOUND" || !String(err.message).includes("/dist/main.js")) throw err;
  console.error("coral: not built yet; run `npm run build` (npm install does it) in the Coral checkout");
  process.exit(1);
}
process.exitCode = await main(process.argv);
