// Child of run.ts: N health probes in a row through each client; prints JSON (CPU µs per probe, per round).
import { httpGet, httpStatus } from "@coral/agent";

const [port, count] = [Number(process.argv[2]), Number(process.argv[3])];
const url = `http://127.0.0.1:${port}/health`;
const headers = { "user-agent": "coral-agent/health" };
const clients: Record<string, () => Promise<number>> = {
  "node:http (http-get.ts)": async () => (await httpGet(url, { timeoutMs: 5000, headers })).status,
  "status line (http-status.ts)": async () => (await httpStatus(new URL(url), { timeoutMs: 5000, headers })).status,
};
const out: Record<string, number[]> = {};
for (let round = 0; round < 2; round++)
  for (const [name, probe] of Object.entries(clients)) {
    const before = process.cpuUsage();
    for (let i = 0; i < count; i++) if ((await probe()) !== 200) throw new Error(`${name}: not 200`);
    const used = process.cpuUsage(before);
    (out[name] ??= []).push(Math.round((used.user + used.system) / count));
  }
console.log(JSON.stringify(out));
