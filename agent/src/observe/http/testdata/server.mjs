// A plain node:http server for the request tracer's tests: node server.mjs PORT(0: any) UPSTREAM_PORT
// /users/<id> 200, /slow 200 after 50 ms, /boom 500, /proxy 200 after its own
// outbound GET to the upstream, anything else 404. Prints "listening <port>" when ready.
import http from "node:http";
const port = Number(process.argv[2]);
const upstream = Number(process.argv[3] || 0);
const server = http.createServer((req, res) => {
  const url = req.url || "/";
  if (url.startsWith("/users/") || url.startsWith("/r/")) return res.end("user");
  if (url === "/slow") return setTimeout(() => res.end("slow"), 50);
  if (url === "/boom") {
    res.statusCode = 500;
    return res.end("boom");
  }
  if (url === "/proxy" && upstream) {
    return http
      .get({ host: "127.0.0.1", port: upstream, path: "/upstream/1", agent: false }, (r) => {
        r.resume();
        r.on("end", () => res.end("proxied"));
      })
      .on("error", () => {
        res.statusCode = 502;
        res.end();
      });
  }
  res.statusCode = 404;
  res.end("missing");
});
server.keepAliveTimeout = 30_000;
server.listen(port, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
