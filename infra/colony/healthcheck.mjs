/* global fetch, AbortSignal */
// The container's health check: the colony answers GetStatus (API, store and
// actors up) to its own local token over loopback. Exit 0 healthy, 1 not.
import { readFileSync } from "node:fs";

const port = process.env.CORAL_API_PORT || "9000";
try {
  const token = readFileSync("/data/local.token", "utf8").trim();
  const res = await fetch(`http://127.0.0.1:${port}/coral.colony.v1.ColonyService/GetStatus`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: "{}",
    signal: AbortSignal.timeout(4000),
  });
  if (!res.ok) throw new Error(`GetStatus answered HTTP ${res.status}: ${await res.text()}`);
  process.exit(0);
} catch (err) {
  console.error(`unhealthy: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
