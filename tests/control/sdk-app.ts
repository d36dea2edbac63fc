// A real Node app using the Coral SDK, for the control-plane tests:
//   node --import tsx sdk-app.ts <port> <version> <rollback-mode>
// rollback-mode: "switch" (the handler returns at once and the app reports
// the target version 1.5 s later, as a restart would), "throw", "slow"
// (the handler takes 4 s, then switches), "revert" (the handler fails
// part-way and undoes itself). Prints one JSON line per event.
import http from "node:http";
import { coral, RollbackReverted } from "@coral/sdk";

const [portArg, version = "2.0.0", mode = "switch", serviceName = "checkout"] = process.argv.slice(2);
const say = (event: Record<string, unknown>) => console.log(JSON.stringify({ ...event, at: Date.now() }));

let cacheSlow = false;
const init = await coral.init({
  serviceName,
  version,
  git: { commit: "0123456789abcdef", branch: "main" },
  healthChecks: {
    database: async () => undefined,
    cache: async () => (cacheSlow ? { status: "degraded", message: "slow replies" } : undefined),
  },
  flags: { "new-checkout": { defaultEnabled: false } },
  // SDK_APP_ANNOUNCE=0: no announcement file (the agent then needs --sdk and CORAL_SDK_TOKEN).
  announce: process.env.SDK_APP_ANNOUNCE !== "0",
  onRollback: async (target) => {
    say({ event: "rollback", target: target.version, from: target.previousVersion, id: target.rollbackId });
    if (mode === "throw") throw new Error("cannot downgrade: schema migration 42 is not reversible");
    if (mode === "slow") await new Promise((r) => setTimeout(r, 4000));
    if (mode === "revert")
      throw new RollbackReverted("migration 43 failed half-way: disk full", { undoSteps: ["restored schema 42", `kept serving ${target.previousVersion}`] });
    setTimeout(() => {
      coral.setVersion(target.version);
      say({ event: "version", version: target.version });
    }, 1500);
  },
});
coral.flags.onChange((names) => say({ event: "flags", names, newCheckout: coral.flags.isEnabled("new-checkout"), alice: coral.flags.isEnabled("new-checkout", { userId: "alice" }) }));

const server = http.createServer((req, res) => {
  if (req.url === "/degrade") cacheSlow = true;
  res.writeHead(200, { "content-type": "text/plain" });
  res.end("ok\n");
});
server.listen(Number(portArg), "127.0.0.1", () =>
  say({ event: "ready", sdkPort: coral.port, announcement: init.announcement ?? null, announceError: init.announceError ?? null }),
);
process.on("SIGTERM", () => {
  void coral.shutdown().then(() => process.exit(0));
});
