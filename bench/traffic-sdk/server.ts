// The app of bench/traffic-sdk: a node:http server answering ~1 KiB of JSON,
// plain or with the Coral SDK's middleware (sample rate 0.1, as shipped) and
// an in-process drain every second standing in for the agent (the RED
// aggregates and the samples, serialised and redacted as DrainTraffic does).
//   node --conditions=coral-source --import tsx bench/traffic-sdk/server.ts <plain|sdk>
import http from "node:http";
import type { AddressInfo } from "node:net";
import { CoralSdk } from "@coral/sdk";

const mode = process.argv[2] === "sdk" ? "sdk" : "plain";
const payload = JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item-${i}`, price: i * 3.5 })) });
const server = http.createServer((req, res) => {
  res.setHeader("content-type", "application/json");
  res.end(payload);
});
if (mode === "sdk") {
  const sdk = new CoralSdk();
  sdk.instrumentServer(server);
  setInterval(() => {
    sdk.requests.red.drain();
    sdk.requests.takeSamples(1000);
  }, 1000).unref();
}
server.listen(0, "127.0.0.1", () => console.log(`listening ${(server.address() as AddressInfo).port}`));
