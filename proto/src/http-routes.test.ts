// normaliseRoute classifies segments in one pass (it runs for every request
// the SDK middleware and the eBPF tracer see); it must name routes exactly
// as the regular expressions that define the placeholders do.
import { describe, expect, it } from "vitest";
import { MAX_ROUTE_LENGTH, normaliseRoute, OTHER_ROUTE } from "./http-routes.ts";

// The definition, as regular expressions.
const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
function segment(s: string): string {
  if (s === "") return s;
  if (/^\d+$/.test(s)) return "{id}";
  if (uuidRe.test(s)) return "{uuid}";
  if (/^[0-9a-f]{8,}$/i.test(s) && /\d/.test(s)) return "{hex}";
  if (/^[A-Za-z0-9_~=+.%-]{24,}$/.test(s) && /\d/.test(s)) return "{token}";
  return s;
}
function reference(target: string): string {
  let path = target;
  const abs = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(path);
  if (abs) path = path.slice(abs[0].length) || "/";
  const cut = path.search(/[?#]/);
  if (cut >= 0) path = path.slice(0, cut);
  if (path === "*") return path;
  if (path === "") return "/";
  const route = path.split("/").map(segment).join("/");
  return route.length > MAX_ROUTE_LENGTH ? OTHER_ROUTE : route;
}

describe("normaliseRoute", () => {
  it("names routes as the placeholder definitions do", () => {
    const fixed = [
      "/users/123",
      "/users/123/",
      "//a//1",
      "/o/0b5e9d6a-2c1f-4c3e-9a7b-1234567890ab/x",
      "/o/0B5E9D6A-2C1F-4C3E-9A7B-1234567890AB",
      "/o/abcdefab-abcd-abcd-abcd-abcdefabcdef",
      "/commit/9f86d081884c7d659a2feaa0c55ad015",
      "/facade/cafe/deadbeef",
      "/t/eyJhbGciOiJIUzI1NiJ9abc123xyz",
      "/t/eyJhbGciOiJIUzI1NiJ9abcXYZxyz",
      "http://example.com/a/1?q",
      "https://example.com",
      "HTTP://example.com?x",
      "?x",
      "#f",
      "",
      "*",
      "*?x",
      "users/12",
      "/ü/12345678/ümlaut1234567890123456789012",
      `/${"a".repeat(250)}`,
      `/${"1".repeat(250)}`,
    ];
    for (const t of fixed) expect(normaliseRoute(t), t).toBe(reference(t));
    // Random targets over the characters that matter.
    const alphabet = "0123456789abcdefABCDEFxyzXYZ_~=+.%-/?#:*ü ";
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 20_000; i++) {
      const parts: string[] = [];
      const segments = 1 + rand(5);
      for (let s = 0; s < segments; s++) {
        const len = [0, 1, 4, 8, 9, 24, 30, 36][rand(8)]!;
        let seg = "";
        const pool = rand(3) === 0 ? "0123456789" : rand(2) === 0 ? "0123456789abcdef" : alphabet;
        for (let c = 0; c < len; c++) seg += pool[rand(pool.length)];
        // UUID-shaped, with or without digits, sometimes one character off.
        if (rand(6) === 0) seg = [8, 4, 4, 4, 12].map((n) => Array.from({ length: n }, () => "abcdefABCDEF0123456789"[rand(rand(2) ? 12 : 22)]).join("")).join(rand(20) ? "-" : "_");
        parts.push(seg);
      }
      const t = (rand(10) === 0 ? "http://h.example" : "") + "/" + parts.join("/");
      expect(normaliseRoute(t), t).toBe(reference(t));
    }
  });
});
