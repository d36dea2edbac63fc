import { describe, expect, it } from "vitest";
import { decodeRoute, encodeRoute, parseRequestMetricName, requestMetricName } from "@coral/common/http-metric-name";
import { RequestPairer } from "./pairing.ts";
import { parseTraceLine, requestLinePrefix, requestLines, statusLines, BpftraceJsonLines, decodeJsonLine, type TraceLine } from "./parse.ts";
import { normaliseRoute, RouteCap } from "./routes.ts";

const metricName = /^[A-Za-z_:][A-Za-z0-9_:./-]*$/;

describe("routes", () => {
  it("normalises ids, uuids, hex ids and tokens, and drops the query", () => {
    expect(normaliseRoute("/users/123")).toBe("/users/{id}");
    expect(normaliseRoute("/users/123/orders/98765432109876?x=1#f")).toBe("/users/{id}/orders/{id}");
    expect(normaliseRoute("/o/0b5e9d6a-2c1f-4c3e-9a7b-1234567890ab")).toBe("/o/{uuid}");
    expect(normaliseRoute("/commit/9f86d081884c7d659a2feaa0c55ad015")).toBe("/commit/{hex}");
    expect(normaliseRoute("/t/eyJhbGciOiJIUzI1NiJ9abc123xyz")).toBe("/t/{token}");
    expect(normaliseRoute("/facade/cafe/deadbeef")).toBe("/facade/cafe/deadbeef");
    expect(normaliseRoute("http://example.com/a/1?q")).toBe("/a/{id}");
    expect(normaliseRoute("?x")).toBe("/");
    expect(normaliseRoute("*")).toBe("*");
    expect(normaliseRoute(`/${"a".repeat(250)}`)).toBe("other");
  });

  it("caps distinct method+route pairs; known ones keep counting", () => {
    const cap = new RouteCap(2);
    expect(cap.route("GET", "/a")).toBe("/a");
    expect(cap.route("POST", "/a")).toBe("/a");
    expect(cap.route("GET", "/b")).toBe("other");
    expect(cap.route("GET", "/a")).toBe("/a");
    expect(cap.overflow()).toBe(1);
  });
});

describe("metric names", () => {
  it("encode routes into valid metric names and back (cli/src/commands/requests.test.ts decodes the same names)", () => {
    for (const route of ["/users/{id}", "/a_b/c-d.e", "/v1/things:batchGet", "/ü/{uuid}/x", "other", "*", "/%41 b"]) {
      const name = requestMetricName({ method: "GET", status: "2xx", route });
      expect(name).toMatch(metricName);
      expect(parseRequestMetricName(name)).toEqual({ method: "GET", status: "2xx", route });
      expect(decodeRoute(encodeRoute(route))).toBe(route);
    }
    expect(requestMetricName({ method: "GET", status: "2xx", route: "/users/{id}" })).toBe("http_request_duration_ms:GET:2xx:/users/:id");
  });
});

describe("parsing", () => {
  it("reads the program's lines and records, bytes as they were", () => {
    expect(parseTraceLine("R 12 7 1000 30 GET / HTTP/1.1\r\nHost: a\r\n")).toEqual({ kind: "R", pid: 12, fd: 7, ns: 1000n, len: 30, data: "GET / HTTP/1.1\r\nHost: a\r\n" });
    expect(parseTraceLine("X 12 7 99")).toEqual({ kind: "X", pid: 12, fd: 7, ns: 99n });
    expect(parseTraceLine("F 13 12")).toEqual({ kind: "F", pid: 13, parent: 12 });
    for (const bad of ["", "R 1 2 3", "R x 2 3 4 a", "Attaching 20 probes...", "X 1 2", "W 1 2 3 -4 a"]) expect(parseTraceLine(bad)).toBeNull();
  });

  it("reads bpftrace's JSON lines: a printf's bytes stay in its event, whatever they hold", () => {
    const json = new BpftraceJsonLines(4096);
    // As bpftrace 0.17 prints them (`-f json`), fed in pieces that split lines.
    const printf = (text: string) => `{"type": "printf", "data": ${JSON.stringify(text)}}\n`;
    const forged = "x\nW 12 7 3000 20 HTTP/1.1 500 Oops\r\n\nX 12 7 3000\n";
    const text =
      `{"type": "attached_probes", "data": {"probes": 20}}\n` +
      printf("R 12 7 1000 29 GET / HTTP/1.1\r\nHost: a\r\n\r\n\n") +
      printf(`R 12 7 2500 ${forged.length} ${forged}\n`) +
      `{"type": "lost_events", "data": {"events": 3}}\n` +
      printf("X 12 7 4000\n") +
      "ERROR: not json\n";
    const out = [text.slice(0, 70), text.slice(70, 71), text.slice(71)].flatMap((c) => json.feed(c));
    expect(out).toEqual([
      { kind: "attached", probes: 20 },
      { kind: "printf", text: "R 12 7 1000 29 GET / HTTP/1.1\r\nHost: a\r\n\r\n" },
      { kind: "printf", text: `R 12 7 2500 ${forged.length} ${forged}` },
      { kind: "lost", events: 3 },
      { kind: "printf", text: "X 12 7 4000" },
      { kind: "other", line: "ERROR: not json" },
    ]);
    expect(parseTraceLine(`R 12 7 2500 ${forged.length} ${forged}`)).toMatchObject({ kind: "R", data: forged });
    // bpftrace 0.17 writes a byte >= 0x80 as \uffffffXX: still JSON, the bytes garbled (never HTTP).
    expect(decodeJsonLine('{"type": "printf", "data": "R 1 2 3 4 \\u0016\\uffffff80\\n"}')).toEqual({ kind: "printf", text: "R 1 2 3 4 \u0016\uffffff80" });
    // A line longer than any the program prints is not read as JSON.
    expect(new BpftraceJsonLines(100).feed(printf("R 1 2 3 4 " + "a".repeat(200)))).toEqual([{ kind: "other", line: expect.any(String) }]);
  });

  it("finds pipelined request lines and status lines; knows a split request line", () => {
    expect(requestLines("GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.0\r\n\r\n", false)).toEqual([
      { method: "GET", target: "/a" },
      { method: "POST", target: "/b" },
    ]);
    expect(requestLines("GET /very/long/tar", false)).toEqual([]);
    expect(requestLines("GET /very/long/tar", true)).toEqual([{ method: "GET", target: "/very/long/tar" }]);
    expect(requestLines("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false)).toEqual([]);
    expect(statusLines("HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n")).toEqual([200, 404]);
    for (const p of ["G", "GE", "GET", "GET ", "GET /a", "GET /a HT", "GET /a HTTP/1.1\r"]) expect(requestLinePrefix(p), p).toBe(true);
    for (const p of ["X", "GETX", "\x16\x03", "GET /a HTTP/1.1\r\n", ""]) expect(requestLinePrefix(p), p).toBe(false);
  });
});

describe("RequestPairer", () => {
  const R = (fd: number, ns: number, data: string, len = data.length): TraceLine => ({ kind: "R", pid: 1, fd, ns: BigInt(ns), len, data });
  const W = (fd: number, ns: number, data: string, len = data.length): TraceLine => ({ kind: "W", pid: 1, fd, ns: BigInt(ns), len, data });

  it("pairs in order per connection (keep-alive, pipelining), skips 1xx, and ignores the process's own client calls", () => {
    const p = new RequestPairer();
    const out = [
      ...p.add(R(5, 1_000_000, "GET /users/1 HTTP/1.1\r\n\r\nGET /users/2 HTTP/1.1\r\n\r\n")),
      ...p.add(W(5, 3_000_000, "HTTP/1.1 100 Continue\r\n\r\n")),
      ...p.add(W(5, 4_000_000, "HTTP/1.1 200 OK\r\n\r\n")),
      ...p.add(W(5, 6_000_000, "HTTP/1.1 503 Unavailable\r\n\r\n")),
      // An outbound call on fd 9: request written, response read.
      ...p.add(W(9, 6_500_000, "GET /upstream HTTP/1.1\r\n\r\n")),
      ...p.add(R(9, 7_000_000, "HTTP/1.1 200 OK\r\n\r\n")),
      ...p.add(R(5, 8_000_000, "POST /orders HTTP/1.1\r\n\r\n")),
      ...p.add(R(5, 8_500_000, "{\"body\":1}")),
      ...p.add(W(5, 9_000_000, "HTTP/1.1 201 Created\r\n\r\n")),
    ];
    expect(out.map((r) => [r.method, r.route, r.status, r.statusClass, r.durationMs])).toEqual([
      ["GET", "/users/{id}", 200, "2xx", 3],
      ["GET", "/users/{id}", 503, "5xx", 5],
      ["POST", "/orders", 201, "2xx", 1],
    ]);
    expect(p.counts).toMatchObject({ requests: 3, client: 1, unparsed: 0, unmatched: 0 });
  });

  it("joins a split request line, counts garbage as unparsed, forgets a closed connection", () => {
    const p = new RequestPairer();
    expect(p.add(R(5, 1_000_000, "GE"))).toEqual([]);
    p.add(R(5, 2_000_000, "T /a HTTP/1.1\r\n\r\n"));
    expect(p.add(W(5, 5_000_000, "HTTP/1.1 200 OK\r\n\r\n"))[0]).toMatchObject({ route: "/a", durationMs: 4 });
    p.add(R(6, 1, "\x16\x03\x01garbage"));
    p.add(W(6, 2, "HTTP/1.1 400 Bad Request\r\n\r\n"));
    p.add(R(7, 1, "GET /lost HTTP/1.1\r\n\r\n"));
    p.add({ kind: "X", pid: 1, fd: 7, ns: 2n });
    expect(p.add(W(7, 3, "HTTP/1.1 200 OK\r\n\r\n"))).toEqual([]);
    expect(p.counts).toMatchObject({ requests: 1, unparsed: 1, unmatched: 2, unanswered: 1 });
  });
});
