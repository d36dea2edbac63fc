#!/usr/bin/env node
// coral-discovery runs the compiled JavaScript in dist/ (npm install builds it).
process.setSourceMapsEnabled(true);
let runDiscoveryCli;
try {
  ({ runDiscoveryCli } = await import("../dist/self-hosted/cli.js"));
} catch (err) {
  if (err?.code !== "ERR_MODULE_NOT_FOUND" || !String(err.message).includes("/dist/self-hosted/cli.js")) throw err;
  console.error("coral-discovery: not built yet; run `npm run build` (npm install does it) in the Coral checkout");
  process.exit(1);
}
// The server keeps the process alive; only a finished command (or an error) sets the code.
const code = await runDiscoveryCli(process.argv);
if (code !== 0) process.exit(code);
