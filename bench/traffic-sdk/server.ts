// The app of bench/traffic-sdk: a node:http server, plain or with the Coral
// SDK's middleware (sample rate 0.1, as shipped) and an in-process drain
// every second standing in for the agent (the RED aggregates and the
// samples, serialised and redacted as DrainTraffic does). Two handlers:
//   tiny  ~1 KiB of JSON built once, answered at once (a 0.3 ms loopback answer:
//         the middleware's absolute cost shows, against almost nothing)
//   io    awaits 3 ms of simulated I/O (a timer), then renders ~1 KiB of JSON
//         for this request: a handler that does some work, as real ones do
//   node --conditions=coral-source --import tsx bench/traffic-sdk/server.ts <plain|sdk> [tiny|io]
import http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { CoralSdk } from "@coral/sdk";

const mode = process.argv[2] === "sdk" ? "sdk" : "plain";
const handler = process.argv[3] === "io" ? "io" : "tiny";
const items = (n: number) => Array.from({ length: 20 }, (_, i) => ({ id: n * 20 + i, name: `item-${i}`, price: i * 3.5 }));
const payload = JSON.stringify({ items: items(0) });
const server = http.createServer(
  handler === "tiny"
    ? (_req, res) => {
        res.setHeader("content-type", "application/json");
        res.end(payload);
      }
    : async (req, res) => {
        await sleep(3);
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ url: req.url, at: Date.now(), items: items(req.url?.length ?? 0) }));
      },
);
if (mode === "sdk") {
  const sdk = new CoralSdk();
  sdk.instrumentServer(server);
  setInterval(() => {
    sdk.requests.red.drain();
    sdk.requests.takeSamples(1000);
  }, 1000).unref();
}
// A clean exit on SIGTERM, so that `node --cpu-prof` writes its profile.
process.on("SIGTERM", () => process.exit(0));
server.listen(0, "127.0.0.1", () => console.log(`listening ${(server.address() as AddressInfo).port}`));
