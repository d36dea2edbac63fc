// The dashboard's static files (dashboard/dist, built at install time). Only
// files listed when the colony first serves one are ever read: a request
// path is looked up in that table, never joined onto a folder, so `..`,
// encoded slashes or backslashes cannot reach anything else. A path that is
// no file and looks like a view (no extension) gets index.html: each view
// has its own URL.
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { gzipSync } from "node:zlib";
import type { IncomingMessage, ServerResponse } from "node:http";

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json",
};

/**
 * What the page may load and do: its own scripts, styles and API only;
 * never framed. Styles set from scripts (uPlot, Preact's style props) are
 * CSSOM writes, which style-src does not restrict; a <style> element is
 * allowed only with the response's nonce, which only the page's own script
 * stamps (contentSecurityPolicyWithNonce; the browser suite's console check
 * would name any other).
 */

/**
 * The page's own <style> elements (xterm.js's terminal creates two, which
 * cannot take a nonce themselves) carry this response's nonce: the page's
 * script stamps it on every <style> it creates (dashboard/src/main.tsx), so
 * styles injected into the HTML by anyone else stay blocked.
 */
export function contentSecurityPolicyWithNonce(nonce: string): string {
  return contentSecurityPolicy.replace("style-src 'self'", `style-src 'self' 'nonce-${nonce}'`);
}

/** index.html with a fresh style nonce in a meta tag the page's script reads. */
function withStyleNonce(html: Buffer, nonce: string): Buffer {
  return Buffer.from(html.toString("utf8").replace("<head>", `<head>\n    <meta name="coral-style-nonce" content="${nonce}" />`));
}

export const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers every dashboard answer carries. */
export const securityHeaders: Record<string, string> = {
  "content-security-policy": contentSecurityPolicy,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

interface StaticFile {
  body: Buffer;
  /** The body gzipped, for text files that shrink. */
  gzip?: Buffer;
  type: string;
  /** Vite's content-hashed files never change: cache them for good. */
  immutable: boolean;
}

export interface StaticFiles {
  /** Answers a GET or HEAD for the dashboard's files; false when the bundle is missing. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): void;
}

function listFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const full = join(folder, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && !entry.name.startsWith(".")) {
        const rel = "/" + relative(dir, full).split(sep).join("/");
        const type = contentTypes[extname(entry.name).toLowerCase()];
        if (!type || statSync(full).size > 16 * 1024 * 1024) continue;
        const body = readFileSync(full);
        const gzip = /^(text|application\/json|image\/svg)/.test(type) && body.byteLength > 1024 ? gzipSync(body) : undefined;
        files.set(rel, { body, gzip: gzip && gzip.byteLength < body.byteLength ? gzip : undefined, type, immutable: rel.startsWith("/assets/") });
      }
    }
  };
  walk(dir);
  return files;
}

/** The request path as a key of the file table, or undefined when it cannot be one. */
export function staticKey(rawPath: string): string | undefined {
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
  if (!path.startsWith("/") || path.includes("\0") || path.includes("\\") || path.split("/").some((s) => s === ".." || s === ".")) return undefined;
  return path;
}

export function staticFiles(dir: string): StaticFiles {
  let files: Map<string, StaticFile> | undefined;
  const table = () => {
    if (files) return files;
    try {
      files = listFiles(dir);
    } catch {
      return undefined; // not built (yet): answered below, and looked for again next time
    }
    if (!files.has("/index.html")) files = undefined;
    return files;
  };
  return {
    serve(req, res, path) {
      const all = table();
      if (!all) {
        const body = "The Coral dashboard is not built: run `npm run build` in the Coral checkout (npm install does it).\n";
        res.writeHead(503, { ...securityHeaders, "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : body);
        return;
      }
      const key = staticKey(path);
      let file = key === undefined ? undefined : all.get(key === "/" ? "/index.html" : key);
      if (!file && key !== undefined && !extname(key) && !key.startsWith("/assets/")) file = all.get("/index.html");
      if (!file) {
        const body = "not found\n";
        res.writeHead(404, { ...securityHeaders, "content-type": "text/plain; charset=utf-8", "content-length": body.length, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : body);
        return;
      }
      if (file === all.get("/index.html")) {
        const nonce = randomBytes(16).toString("base64url");
        const html = withStyleNonce(file.body, nonce);
        res.writeHead(200, {
          ...securityHeaders,
          "content-security-policy": contentSecurityPolicyWithNonce(nonce),
          "content-type": file.type,
          "content-length": html.byteLength,
          "cache-control": "no-cache",
        });
        res.end(req.method === "HEAD" ? undefined : html);
        return;
      }
      const gzip = file.gzip && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? "")) ? file.gzip : undefined;
      const body = gzip ?? file.body;
      res.writeHead(200, {
        ...securityHeaders,
        "content-type": file.type,
        "content-length": body.byteLength,
        "cache-control": file.immutable ? "public, max-age=31536000, immutable" : "no-cache",
        vary: "accept-encoding",
        ...(gzip ? { "content-encoding": "gzip" } : {}),
      });
      res.end(req.method === "HEAD" ? undefined : body);
    },
  };
}
