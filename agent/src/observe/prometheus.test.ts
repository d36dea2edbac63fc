import { afterEach, describe, expect, it } from "vitest";
import { parsePrometheusText, parsePromValue, scrapePrometheus } from "./prometheus.ts";
import { HTTP_SERVER_SCRIPT, freePort, killAllChildren, spawnNode } from "./testing.ts";

afterEach(killAllChildren);

const EXPOSITION = `# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200"} 1027
http_requests_total{method="POST",code="500"} 3 1700000000000
# HELP process_open_fds Open fds.
# TYPE process_open_fds gauge
process_open_fds 17
# A free comment line.
# HELP request_seconds Latency.
# TYPE request_seconds histogram
request_seconds_bucket{route="/a",le="0.1"} 5
request_seconds_bucket{route="/a",le="0.5"} 8
request_seconds_bucket{route="/a",le="+Inf"} 9
request_seconds_sum{route="/a"} 2.75
request_seconds_count{route="/a"} 9
request_seconds_bucket{route="/b",le="0.1"} 0
request_seconds_bucket{route="/b",le="0.5"} 1
request_seconds_bucket{route="/b",le="+Inf"} 1
request_seconds_sum{route="/b"} 0.3
request_seconds_count{route="/b"} 1
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.012
rpc_seconds{quantile="0.99"} 0.2
rpc_seconds_sum 4.5
rpc_seconds_count 300
`;

const EXPECTED = [
  { name: "http_requests_total", labels: { method: "GET", code: "200" }, value: 1027, type: "counter" },
  { name: "http_requests_total", labels: { method: "POST", code: "500" }, value: 3, type: "counter", timestampMs: 1700000000000 },
  { name: "process_open_fds", labels: {}, value: 17, type: "gauge" },
  { name: "request_seconds_bucket", labels: { route: "/a", le: "0.1" }, value: 5, type: "histogram" },
  { name: "request_seconds_bucket", labels: { route: "/a", le: "0.5" }, value: 8, type: "histogram" },
  { name: "request_seconds_bucket", labels: { route: "/a", le: "+Inf" }, value: 9, type: "histogram" },
  { name: "request_seconds_sum", labels: { route: "/a" }, value: 2.75, type: "histogram" },
  { name: "request_seconds_count", labels: { route: "/a" }, value: 9, type: "histogram" },
  { name: "request_seconds_bucket", labels: { route: "/b", le: "0.1" }, value: 0, type: "histogram" },
  { name: "request_seconds_bucket", labels: { route: "/b", le: "0.5" }, value: 1, type: "histogram" },
  { name: "request_seconds_bucket", labels: { route: "/b", le: "+Inf" }, value: 1, type: "histogram" },
  { name: "request_seconds_sum", labels: { route: "/b" }, value: 0.3, type: "histogram" },
  { name: "request_seconds_count", labels: { route: "/b" }, value: 1, type: "histogram" },
  { name: "rpc_seconds", labels: { quantile: "0.5" }, value: 0.012, type: "summary" },
  { name: "rpc_seconds", labels: { quantile: "0.99" }, value: 0.2, type: "summary" },
  { name: "rpc_seconds_sum", labels: {}, value: 4.5, type: "summary" },
  { name: "rpc_seconds_count", labels: {}, value: 300, type: "summary" },
];

describe("parsePromValue", () => {
  it.each([
    ["1", 1],
    ["-2.5", -2.5],
    ["1e3", 1000],
    ["1.5E-3", 0.0015],
    [".5", 0.5],
    ["+7", 7],
    ["+Inf", Infinity],
    ["-Inf", -Infinity],
    ["Inf", Infinity],
  ])("%s → %d", (text, want) => {
    expect(parsePromValue(text)).toBe(want);
  });
  it("reads NaN", () => {
    expect(parsePromValue("NaN")).toBeNaN();
  });
  it.each([[""], ["abc"], ["1,5"], ["0x10"], ["1e"], ["--1"]])("rejects %j", (text) => {
    expect(parsePromValue(text)).toBeNull();
  });
});

describe("parsePrometheusText", () => {
  it("flattens counters, gauges, labelled histograms and summaries exactly", () => {
    const r = parsePrometheusText(EXPOSITION);
    expect(r.error).toBeUndefined();
    expect(r.skippedLines).toBe(0);
    expect(r.samples).toEqual(EXPECTED);
  });

  it.each([
    { name: "escaped label values", text: 'm{path="/a\\"b\\\\c\\nd"} 1\n', labels: { path: '/a"b\\c\nd' } },
    { name: "commas and braces inside label values", text: 'm{q="a,b}c"} 2\n', labels: { q: "a,b}c" } },
    { name: "a trailing comma in the labels", text: 'm{a="1",} 3\n', labels: { a: "1" } },
    { name: "empty braces", text: "m{} 4\n", labels: {} },
    { name: "CRLF line endings", text: "m 5\r\n", labels: {} },
  ])("handles $name", ({ text, labels }) => {
    const r = parsePrometheusText(text);
    expect(r.skippedLines).toBe(0);
    expect(r.samples).toHaveLength(1);
    expect(r.samples[0]?.labels).toEqual(labels);
  });

  it.each([
    ["a value that is not a number", "m hello"],
    ["no value", "m"],
    ["no value after labels", 'm{a="b"}'],
    ["unterminated labels", 'm{a="b 1'],
    ["an unquoted label value", "m{a=b} 1"],
    ["a bad metric name", "9m 1"],
    ["a bad label name", 'm{a-b="1"} 1'],
    ["too many fields", "m 1 2 3"],
    ["a non-integer timestamp", "m 1 2.5"],
    ["a malformed TYPE line", "# TYPE m counter extra"],
    ["an unknown TYPE", "# TYPE m weird"],
  ])("skips a line with %s and counts it", (_name, bad) => {
    const r = parsePrometheusText(`ok_metric 1\n${bad}\nok_metric{x="y"} 2\n`);
    expect(r.samples.map((s) => s.value)).toEqual([1, 2]);
    expect(r.skippedLines).toBe(1);
    expect(r.invalidLines).toEqual([{ line: 2, text: bad }]);
    expect(r.error).toBeUndefined();
  });

  it("reports garbage as an error result", () => {
    const r = parsePrometheusText("<html>\n<body>Not Found</body>\n</html>\nthis is not prometheus\n");
    expect(r.samples).toEqual([]);
    expect(r.skippedLines).toBe(4);
    expect(r.error).toMatch(/^not Prometheus text format: no valid sample in 4 line\(s\); line 1: "<html>"/);
  });

  it("treats an empty exposition as valid and empty", () => {
    expect(parsePrometheusText("")).toEqual({ samples: [], skippedLines: 0, invalidLines: [] });
    expect(parsePrometheusText("# HELP x y\n\n")).toEqual({ samples: [], skippedLines: 0, invalidLines: [] });
  });
});

describe("scrapePrometheus", () => {
  it("scrapes a real endpoint with exact values", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT, { BODY: EXPOSITION, CTYPE: "text/plain; version=0.0.4" });
    const r = await scrapePrometheus(`http://127.0.0.1:${child.port}/metrics`, 5000);
    expect(r.ok).toBe(true);
    expect(r.status).toBe(200);
    expect(r.error).toBeUndefined();
    expect(r.bytes).toBe(Buffer.byteLength(EXPOSITION));
    expect(r.skippedLines).toBe(0);
    expect(r.samples).toEqual(EXPECTED);
  });

  it("returns an error result for garbage, without throwing", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT, { BODY: "<html><body>hello</body></html>\n{{{ nope }}}\n", CTYPE: "text/html" });
    const r = await scrapePrometheus(`http://127.0.0.1:${child.port}/metrics`, 5000);
    expect(r.ok).toBe(false);
    expect(r.status).toBe(200);
    expect(r.samples).toEqual([]);
    expect(r.skippedLines).toBe(2);
    expect(r.error).toMatch(/^not Prometheus text format/);
  });

  it("keeps the good samples of partially broken text", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT, { BODY: "up 1\n%%% broken %%%\nbuild_info{version=\"1.2.3\"} 1\n" });
    const r = await scrapePrometheus(`http://127.0.0.1:${child.port}/metrics`, 5000);
    expect(r.ok).toBe(true);
    expect(r.samples).toEqual([
      { name: "up", labels: {}, value: 1, type: "untyped" },
      { name: "build_info", labels: { version: "1.2.3" }, value: 1, type: "untyped" },
    ]);
    expect(r.skippedLines).toBe(1);
  });

  it("reports HTTP errors, closed ports, oversized bodies and bad URLs as results", async () => {
    const failing = await spawnNode(HTTP_SERVER_SCRIPT, { STATUS: "500", BODY: "boom" });
    expect(await scrapePrometheus(`http://127.0.0.1:${failing.port}/metrics`, 5000)).toMatchObject({
      ok: false,
      status: 500,
      error: "HTTP 500 Internal Server Error",
    });
    const closed = await scrapePrometheus(`http://127.0.0.1:${await freePort()}/metrics`, 5000);
    expect(closed.ok).toBe(false);
    expect(closed.error).toMatch(/^ECONNREFUSED/);
    const big = await spawnNode(HTTP_SERVER_SCRIPT, { BODY: "x 1\n".repeat(1000) });
    expect(await scrapePrometheus(`http://127.0.0.1:${big.port}/metrics`, 5000, { maxBytes: 100 })).toMatchObject({
      ok: false,
      error: "response larger than 100 bytes",
    });
    expect(await scrapePrometheus("::nope::", 5000)).toMatchObject({ ok: false, error: "invalid URL: ::nope::" });
  });
});
