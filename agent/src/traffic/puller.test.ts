// The agent's side of the SDK middleware against a real SDK (its Connect
// server on localhost) and a real agent store: RED figures become the request
// series (source sdk), samples are stored under "<service>.<id>", and a
// sample rate set while the SDK is away reaches it when it comes back.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { ConnectError } from "@connectrpc/connect";
import { CoralSdk } from "@coral/sdk";
import { HTTP_SDK_SOURCE_METRIC } from "@coral/common/http-metric-name";
import { SdkLink } from "../control/sdk-link.ts";
import { tempStores } from "../storage/testing.ts";
import { TrafficPuller } from "./puller.ts";

const quiet = { info: () => undefined, debug: () => undefined, warn: () => undefined };
const token = "puller-test-token-0123456789";
process.env.CORAL_SDK_TOKEN = token;

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function app(sdk: CoralSdk): Promise<number> {
  const server = sdk.instrumentServer(http.createServer((req, res) => res.writeHead(req.url === "/err" ? 502 : 200).end("ok")));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return (server.address() as AddressInfo).port;
}

function get(port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => res.resume().on("end", resolve)).on("error", reject));
}

describe("TrafficPuller", () => {
  it("turns the SDK's figures into the request series and its samples into stored rows; re-sends the configured rate", async () => {
    const stores = await tempStores();
    cleanups.push(() => stores[Symbol.asyncDispose]());
    const store = await stores.open();
    const sdk = new CoralSdk();
    await sdk.init({ serviceName: "web", version: "1", announce: false, requests: { sampleRate: 0.5 } });
    cleanups.push(() => sdk.shutdown());
    const link = new SdkLink({ port: sdk.port, logger: quiet });
    const puller = new TrafficPuller({ serviceName: "web", sdk: link, store, logger: quiet });

    // No SDK polled yet: nothing to pull, the rate waits.
    expect(await puller.configure(0.25)).toEqual({ sampleRate: 0.25, delivered: false });
    expect(await link.poll(0)).not.toBeNull();
    const port = await app(sdk);
    for (let i = 0; i < 8; i++) await get(port, `/p/${i}`);
    await get(port, "/err");
    let requests = 0;
    const deadline = Date.now() + 10_000;
    while (requests < 9 && Date.now() < deadline) {
      await puller.pull();
      requests = puller.status().requests;
    }
    expect(requests).toBe(9);
    expect(puller.sdkInstrumented()).toBe(true);
    // The pull found the SDK at 0.5 and sent the configured 0.25.
    expect(puller.status().sampleRate).toBe(0.25);
    expect(sdk.requests.sampler.rate).toBe(0.25);

    await store.flush();
    const points = (await store.queryMetrics({ limit: 1000 })).rows;
    const count = (name: string) => points.filter((p) => p.name === name).length;
    expect(count("http_request_duration_ms:GET:2xx:/p/:id")).toBe(8);
    expect(count("http_request_duration_ms:GET:5xx:/err")).toBe(1);
    expect(points.find((p) => p.name === HTTP_SDK_SOURCE_METRIC)?.labels).toEqual({ source: "sdk" });
    // 0.5 of 9: requests 2, 4, 6, 8, and the 502.
    const samples = (await store.queryTraffic({ limit: 50 })).rows;
    expect(samples.map((s) => s.path).sort()).toEqual(["/err", "/p/1", "/p/3", "/p/5", "/p/7"]);
    expect(samples.every((s) => s.id.startsWith("web."))).toBe(true);
    expect((await store.getTrafficSample(samples[0]!.id))?.responseBody.toString()).toBe("ok");

    // The SDK refuses a rate out of range itself too.
    await expect(link.configureTraffic(1.01)).rejects.toThrow(ConnectError);
    await expect(link.configureTraffic(-1)).rejects.toThrow(/sample_rate: must be a number from 0 to 1/);
  });
});
