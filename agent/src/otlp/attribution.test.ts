// Attribution by the sending process, end to end: a real child process
// sends OTLP with OpenTelemetry's own JavaScript SDK and exporters to a real
// receiver (OTLP/HTTP protobuf and JSON, OTLP/gRPC), with resources that
// name no service: the SDK's default (unknown_service:node) for spans, none
// at all for logs. The receiver finds the child's pid from its loopback
// connections (/proc/net/tcp*, /proc/<pid>/fd), once per connection; the
// child belongs to the observed service "checkout", so everything it sent
// is stored as checkout's, with its pid. A resource that names its service
// ("payments") keeps that name, and the disagreement is counted. Both ways
// to find the pid: among the observed processes, and by the scan of /proc.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { KeyValueSchema } from "@coral/proto/gen/opentelemetry/proto/common/v1/common_pb";
import { describe, expect, it } from "vitest";
import type { MetricPoint } from "../storage/types.ts";
import { OtlpIngest, type OtlpStore } from "./ingest.ts";
import { OtlpReceiver } from "./receiver.ts";
import { attribute, type LogRecordRow, type SpanRecord } from "./records.ts";
import { SenderPids } from "./sender.ts";

const repo = fileURLToPath(new URL("../../..", import.meta.url));

// The app: no service.name of its own (BasicTracerProvider's default resource is the SDK's, unknown_service:node).
const app = `
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPTraceExporter as GrpcTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
const { HTTP_URL, GRPC_URL } = process.env;
const tracer = (exporter, resource) => new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] });
const http = tracer(new OTLPTraceExporter({ url: HTTP_URL + "/v1/traces" }));
for (let i = 0; i < 3; i++) {
  http.getTracer("app").startSpan("http " + i).end();
  await http.forceFlush();
}
const grpc = GRPC_URL ? tracer(new GrpcTraceExporter({ url: GRPC_URL })) : undefined;
if (grpc) {
  grpc.getTracer("app").startSpan("grpc").end();
  await grpc.forceFlush();
}
const named = tracer(new OTLPTraceExporter({ url: HTTP_URL + "/v1/traces" }), resourceFromAttributes({ "service.name": "payments" }));
named.getTracer("app").startSpan("named").end();
await named.forceFlush();
const logs = new LoggerProvider({ resource: resourceFromAttributes({ "host.name": "test" }), processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: HTTP_URL + "/v1/logs" }) })] });
logs.getLogger("app").emit({ body: "hello from the app" });
await logs.forceFlush();
await Promise.all([http.shutdown(), grpc?.shutdown(), named.shutdown(), logs.shutdown()]);
`;

class MemoryStore implements OtlpStore {
  spans: SpanRecord[] = [];
  logs: LogRecordRow[] = [];
  recordSpans = async (s: readonly SpanRecord[]) => (this.spans.push(...s), s.length);
  recordLogs = async (l: readonly LogRecordRow[]) => (this.logs.push(...l), l.length);
  recordMetrics = async (p: readonly MetricPoint[]) => p.length;
}

/** Runs the app against `receiver` (gRPC too when it listens) to its end; `started` has its pid before it sends. */
async function runApp(receiver: OtlpReceiver, started: (pid: number) => void = () => undefined): Promise<{ pid: number }> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", app], {
    cwd: repo,
    argv0: "node", // as a shell starts it: the SDK's default service.name is unknown_service:node
    env: { ...process.env, HTTP_URL: `http://127.0.0.1:${receiver.httpPort}`, GRPC_URL: receiver.grpcPort ? `http://127.0.0.1:${receiver.grpcPort}` : "" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  started(child.pid!);
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  expect(code, stderr).toBe(0);
  return { pid: child.pid! };
}

describe("OTLP attributed by the sending process", () => {
  it.each([
    ["found among the observed processes", true],
    ["found by the scan of /proc", false],
  ])("a child without service.name sends for the service it belongs to (%s)", async (_how, observedFirst) => {
    let appPid = -1;
    const store = new MemoryStore();
    const ingest = new OtlpIngest({ store, defaultService: "agent-default", serviceOfPid: (pid) => (pid === appPid ? "checkout" : undefined), sampler: { keepShare: 1 } });
    const senders = new SenderPids({ candidates: () => (observedFirst ? [appPid] : []) });
    // What the resources said, as they came in: the SDK's default name, and none.
    const names: string[] = [];
    const sink = {
      traces: (...a: Parameters<OtlpIngest["traces"]>) => {
        for (const rs of a[0].resourceSpans) names.push(String(rs.resource?.attributes.find((kv) => kv.key === "service.name")?.value?.value.value ?? "none"));
        ingest.traces(...a);
      },
      logs: (...a: Parameters<OtlpIngest["logs"]>) => ingest.logs(...a),
      metrics: (...a: Parameters<OtlpIngest["metrics"]>) => ingest.metrics(...a),
    };
    const receiver = new OtlpReceiver({ httpPort: 0, grpcPort: 0, sink, senderPid: (peer) => senders.pidOf(peer) });
    await receiver.start();
    try {
      await runApp(receiver, (pid) => (appPid = pid));
      await ingest.stop(); // every span and record written, undecided traces included

      expect(names.sort()).toEqual(["payments", "unknown_service:node", "unknown_service:node", "unknown_service:node", "unknown_service:node"]);
      const spans = Object.fromEntries(store.spans.map((s) => [s.name, { service: s.service, pid: s.pid }]));
      expect(spans).toEqual({
        "http 0": { service: "checkout", pid: appPid },
        "http 1": { service: "checkout", pid: appPid },
        "http 2": { service: "checkout", pid: appPid },
        grpc: { service: "checkout", pid: appPid },
        named: { service: "payments", pid: appPid },
      });
      expect(store.logs.map((l) => ({ service: l.service, pid: l.pid, body: l.body }))).toEqual([{ service: "checkout", pid: appPid, body: "hello from the app" }]);
      expect(ingest.stats()).toMatchObject({ attributedByProcess: 5, serviceNameDisagreements: 1 });
      // One lookup per connection (an exporter keeps its connection): 6 requests over 4 connections.
      expect(receiver.stats().requests).toMatchObject({ traces: 5, logs: 1 });
      expect(senders.stats()).toEqual({ lookups: 4, foundObserved: observedFirst ? 4 : 0, foundScanned: observedFirst ? 0 : 4, notFound: 0, notLoopback: 0 });
    } finally {
      await receiver.stop();
    }
  }, 60_000);

  it("a sender that belongs to no observed service keeps its resource's name (or the default), with its pid", async () => {
    const store = new MemoryStore();
    const ingest = new OtlpIngest({ store, defaultService: "agent-default", serviceOfPid: () => undefined, sampler: { keepShare: 1 } });
    const senders = new SenderPids({ candidates: () => [] });
    const receiver = new OtlpReceiver({ httpPort: 0, grpcPort: null, sink: ingest, senderPid: (peer) => senders.pidOf(peer) });
    await receiver.start();
    try {
      const child = await runApp(receiver);
      await ingest.stop();
      expect(new Set(store.spans.map((s) => `${s.service} ${s.pid}`))).toEqual(new Set([`unknown_service:node ${child.pid}`, `payments ${child.pid}`]));
      expect(store.logs.map((l) => `${l.service} ${l.pid}`)).toEqual([`agent-default ${child.pid}`]);
      expect(ingest.stats()).toMatchObject({ attributedByProcess: 0, serviceNameDisagreements: 0 });
    } finally {
      await receiver.stop();
    }
  }, 60_000);
});

describe("attribute", () => {
  const name = (value: string) => create(KeyValueSchema, { key: "service.name", value: { value: { case: "stringValue", value } } });
  const pid = (value: number) => create(KeyValueSchema, { key: "process.pid", value: { value: { case: "intValue", value: BigInt(value) } } });
  const observed = { pid: 42, service: "checkout" };
  const outside = { pid: 43 };
  it.each([
    ["no name, an observed sender", [], observed, { service: "checkout", pid: 42, byProcess: true, disagrees: false }],
    ["the SDK's default, an observed sender", [name("unknown_service:node")], observed, { service: "checkout", pid: 42, byProcess: true, disagrees: false }],
    ["unknown_service, an observed sender", [name("unknown_service")], observed, { service: "checkout", pid: 42, byProcess: true, disagrees: false }],
    ["the same name", [name("checkout")], observed, { service: "checkout", pid: 42, byProcess: false, disagrees: false }],
    ["another name: kept, counted", [name("payments")], observed, { service: "payments", pid: 42, byProcess: false, disagrees: true }],
    ["the resource's pid stands", [pid(7)], observed, { service: "checkout", pid: 7, byProcess: true, disagrees: false }],
    ["no name, a sender of no observed service", [], outside, { service: "agent", pid: 43, byProcess: false, disagrees: false }],
    ["the default name, a sender of no observed service", [name("unknown_service:node")], outside, { service: "unknown_service:node", pid: 43, byProcess: false, disagrees: false }],
    ["no sender known", [name("payments")], undefined, { service: "payments", pid: 0, byProcess: false, disagrees: false }],
    ["nothing at all", [], undefined, { service: "agent", pid: 0, byProcess: false, disagrees: false }],
  ])("%s", (_case, attrs, sender, want) => {
    expect(attribute(attrs, "agent", sender)).toEqual(want);
  });
});
