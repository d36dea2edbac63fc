// Issue 17, Medium 7: one outbox batch over NATS's max payload (15,000
// Prometheus series) blocked an agent's outbox for good; later events never
// arrived. The attack: a real agent scrapes an endpoint with 15,000 series into
// a real colony; its summary batch (well over 1 MiB) must arrive, split, and a
// health change after it must arrive too.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { testAgent } from "../helpers/agents.ts";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";

const series = 15_000;
const name = (i: number) => `coral_wide_test_series_with_a_long_name_${String(i).padStart(5, "0")}`;

/** An app with a /metrics of 15,000 gauges and a /health that can be made to fail. */
async function wideApp(): Promise<{ port: number; setHealthy(ok: boolean): void } & AsyncDisposable> {
  const body = Array.from({ length: series }, (_, i) => `${name(i)} ${i}`).join("\n") + "\n";
  let healthy = true;
  const server: Server = createServer((req, res) => {
    if (req.url === "/metrics") res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body);
    else if (req.url === "/health") res.writeHead(healthy ? 200 : 503).end(healthy ? "ok" : "down");
    else res.writeHead(404).end();
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return {
    port: (server.address() as AddressInfo).port,
    setHealthy: (ok) => void (healthy = ok),
    [Symbol.asyncDispose]: () => new Promise<void>((done) => server.close(() => done())),
  };
}

describe("an agent's outbox with a batch over the server's max payload", () => {
  it("delivers 15,000 series in parts, and the events after them", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    await using app = await wideApp();
    await using agent = await testAgent(project, colony.url, "wide", app.port, {
      metricsUrl: `http://127.0.0.1:${app.port}/metrics`,
      scrapeIntervalMs: 2_000,
      summaryIntervalMs: 4_000,
    });
    const api = colonyApi(colony.url, project.localToken);

    for (const i of [0, 7_777, series - 1]) {
      await waitFor(
        `${name(i)} at the colony`,
        async () => ((await api.queryMetrics({ service: "wide", metricName: name(i), interval: "1m" })).series[0]?.points.length ?? 0) > 0,
        { timeoutMs: 120_000, intervalMs: 500 },
      );
    }
    const [batch] = await colony.store.read(async (c) =>
      (await c.runAndReadAll("SELECT count(*) AS parts FROM ingested_batches WHERE batch_id LIKE '%:%/%:%'")).getRowObjectsJS(),
    );
    // It went in parts (ids "<batch>:<i>/<n>:<limit>"), and nothing was dropped or set aside.
    expect(Number(batch!.parts)).toBeGreaterThan(1);
    const stats = await agent.stats();
    expect(stats.dropped).toEqual({ rows: 0, bytes: 0, items: 0 });
    const [letters] = await colony.store.read(async (c) => (await c.runAndReadAll("SELECT count(*) AS n FROM dead_letters")).getRowObjectsJS());
    expect(Number(letters!.n)).toBe(0);

    // Later events still arrive.
    app.setHealthy(false);
    const events = await waitFor(
      "the health change after the wide batches",
      async () => {
        const res = await api.queryEvents({ service: "wide", eventType: "health_changed" });
        return res.events.length > 0 ? res.events : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(JSON.parse(events[0]!.detailsJson)).toMatchObject({ healthy: false });
    await waitFor("the outbox to drain", async () => (await agent.stats()).pending <= 1, { timeoutMs: 60_000, intervalMs: 500 });
  }, 300_000);
});
