// A Node HTTP service that runs the Coral SDK and handles SIGUSR1 itself (as
// apps that reload their config or rotate logs on it do), so SIGUSR1 no
// longer opens its inspector: `node --conditions=coral-source --import tsx
// sdk-app.mjs [port]` (tsx for the SDK's TypeScript; this file runs as
// written) prints {"port":N,"sdkPort":M,"announcement":…} once it
// listens (CORAL_SDK_DIR: where it announces itself).
//   GET /add?n=N   calls add() N times (half of them take the early return)
//   GET /usr1      how many SIGUSR1 the app's own handler received
//   GET /inspector the app's inspector URL, "" when it is closed (?open=1: the app opens it itself first, ?close=1: closes it)
import http from "node:http";
import inspector from "node:inspector";
import { coral } from "@coral/sdk";

let usr1 = 0;
process.on("SIGUSR1", () => {
  usr1++;
});

function add(a, b) {
  if (a > 100) return a;
  return a + b;
}

const init = await coral.init({ serviceName: "sdk-app", version: "1.0.0" });

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  let body = "";
  if (url.pathname === "/add") {
    let sum = 0;
    for (let i = 0; i < Number(url.searchParams.get("n") ?? 1); i++) sum += add(i % 2 ? 200 : i, 1);
    body = String(sum);
  } else if (url.pathname === "/usr1") body = String(usr1);
  else if (url.pathname === "/inspector") {
    if (url.searchParams.get("open") === "1" && !inspector.url()) inspector.open(0, "127.0.0.1");
    if (url.searchParams.get("close") === "1") inspector.close();
    body = inspector.url() ?? "";
  }
  res.end(body);
});
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () =>
  console.log(JSON.stringify({ port: server.address().port, sdkPort: coral.port, announcement: init.announcement ?? null, announceError: init.announceError ?? null })),
);
