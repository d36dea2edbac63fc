// A tiny three-part sample app for `coral up` and the tests: frontend → api →
// store. Each part is an HTTP server with /health and Prometheus /metrics, and
// calls the next part over a keep-alive connection, so agents can see who
// talks to whom.
//   node component.mjs <frontend|api|store> <port> [next-port]
import http from "node:http";
import { setInterval } from "node:timers";

const [role, portText, nextText] = process.argv.slice(2);
const port = Number(portText);
const next = nextText ? Number(nextText) : undefined;
if (!["frontend", "api", "store"].includes(role) || !port) {
  console.error("usage: node component.mjs <frontend|api|store> <port> [next-port]");
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
const counters = { requests: 0, upstream_calls: 0, upstream_errors: 0 };
const items = new Map([["sku-1", { name: "coral mug", price: 12 }]]);

function call(path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port: next, path, agent }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.setTimeout(2000, () => req.destroy(new Error("timeout")));
  });
}

async function upstream(path) {
  counters.upstream_calls++;
  try {
    return await call(path);
  } catch (err) {
    counters.upstream_errors++;
    throw err;
  }
}

const server = http.createServer(async (req, res) => {
  counters.requests++;
  const url = new URL(req.url ?? "/", "http://x");
  if (url.pathname === "/health") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "ok", role }));
    return;
  }
  if (url.pathname === "/metrics") {
    const lines = [
      `# TYPE sample_requests_total counter`,
      `sample_requests_total{role="${role}"} ${counters.requests}`,
      `# TYPE sample_upstream_calls_total counter`,
      `sample_upstream_calls_total{role="${role}"} ${counters.upstream_calls}`,
      `# TYPE sample_upstream_errors_total counter`,
      `sample_upstream_errors_total{role="${role}"} ${counters.upstream_errors}`,
    ];
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(lines.join("\n") + "\n");
    return;
  }
  try {
    if (role === "store") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(Object.fromEntries(items)));
    } else {
      const body = await upstream(role === "frontend" ? "/items" : "/get");
      res.writeHead(200, { "content-type": "application/json" }).end(body);
    }
  } catch (err) {
    res.writeHead(502, { "content-type": "application/json" }).end(JSON.stringify({ error: String(err) }));
  }
});
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => console.log(`${role} listening on 127.0.0.1:${port}`));

// The frontend drives traffic through the chain.
if (role === "frontend" && next) {
  setInterval(() => void upstream("/items").catch(() => undefined), 500).unref();
}
process.on("SIGTERM", () => server.close(() => process.exit(0)));
