// Source-map decoding and the words of file:line errors (the resolution against real processes is in line-session.test.ts).
import { describe, expect, it } from "vitest";
import { DebugError } from "../program.ts";
import { decodeMappings, mappingAt, nearestLines, parseFileLine, resolveLine } from "./lines.ts";
import type { Cdp } from "./scripts.ts";

describe("source maps", () => {
  it("decodes mappings into generated and original positions", () => {
    // gen 0:0 → src 0 0:0; gen 0:4 → 0:4; gen 1:2 → src 0 line 2 col 2; a segment without a source is left out.
    expect(decodeMappings("AAAA,IAAI;EAEE,C")).toEqual([
      [0, 0, 0, 0, 0],
      [0, 4, 0, 0, 4],
      [1, 2, 0, 2, 6],
    ]);
    expect(decodeMappings(";;AACA")).toEqual([[2, 0, 0, 1, 0]]);
    expect(() => decodeMappings("A!")).toThrow(/invalid source map/);
  });

  it("finds the mapping that covers a generated position", () => {
    const m = decodeMappings("AAAA,IAAI;EAEE");
    expect(mappingAt(m, { lineNumber: 0, columnNumber: 6 })).toEqual([0, 4, 0, 0, 4]);
    expect(mappingAt(m, { lineNumber: 1, columnNumber: 0 })).toEqual([0, 4, 0, 0, 4]);
    expect(mappingAt(m, { lineNumber: 1, columnNumber: 2 })).toEqual([1, 2, 0, 2, 6]);
    expect(mappingAt([], { lineNumber: 0, columnNumber: 0 })).toBeUndefined();
  });
});

describe("file:line", () => {
  it("parses file:line, or says what is expected", () => {
    expect(parseFileLine("src/app.ts:12")).toEqual({ file: "src/app.ts", line: 12 });
    expect(parseFileLine("C:/x.js:3")).toEqual({ file: "C:/x.js", line: 3 });
    for (const bad of ["app.js", "app.js:0", ":3", "app.js:x"]) {
      const err = (() => {
        try {
          parseFileLine(bad);
        } catch (e) {
          return e as DebugError;
        }
      })();
      expect(err?.code).toBe("invalid_option");
      expect(err?.message).toMatch(/expected file:line, e\.g\. src\/server\.ts:42/);
    }
  });

  it("names the nearest lines with code", () => {
    expect(nearestLines(9, [3, 8, 8, 12, 20])).toBe("the nearest lines with code: 8, 12");
    expect(nearestLines(1, [4])).toBe("the nearest lines with code: 4");
    expect(nearestLines(5, [])).toBe("no line near it has code");
  });
});

describe("resolveLine: which file", () => {
  // Never asked: the file is chosen from the scripts' URLs (and source maps) alone.
  const cdp: Cdp = { send: () => Promise.reject(new Error("not expected")), on: () => () => undefined };
  const scripts = [
    { scriptId: "1", url: "file:///srv/app/api/routes.js" },
    { scriptId: "2", url: "file:///srv/app/admin/routes.js" },
    { scriptId: "3", url: "node:internal/main" },
    { scriptId: "4", url: "file:///srv/app/node_modules/x/routes.js" },
  ];
  const refused = (spec: string) => resolveLine(cdp, scripts, spec, "/srv/app").then(() => undefined, (e: unknown) => e as DebugError);

  it("a file that matches several: each named, to pick one by a longer path", async () => {
    const err = await refused("routes.js:3");
    expect([err?.code, err?.message]).toEqual(["invalid_option", '"routes.js" matches 2 files: api/routes.js, admin/routes.js; name one by a longer path']);
  });

  it("a file that matches nothing: the app's files listed (not Node's, not node_modules)", async () => {
    const err = await refused("server.js:3");
    expect([err?.code, err?.message]).toEqual(["function_not_found", 'no file "server.js" among the app\'s scripts (they are: admin/routes.js, api/routes.js)']);
  });
});
