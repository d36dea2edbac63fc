// A plain Node HTTP service for the Node debug tests: `node app.mjs [port]`
// prints {"port":N} once it listens.
//   GET /add?n=N     calls add() N times (half of them take the early return)
//   GET /lookup?n=N&ms=M  awaits N concurrent lookupUser(id, M) calls (/later?n=N: lookupLater(id))
//   GET /throw       calls mayThrow(true) (throws, caught here)
//   GET /greet       calls greet() twice, with and without its default parameter
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

function add(a, b) {
  if (a > 100) return a;
  return a + b;
}

async function lookupUser(id, delayMs) {
  await sleep(delayMs);
  return { id, name: `user-${id}` };
}

function mayThrow(fail) {
  if (fail) throw new Error("asked to");
  return 1;
}

class Store {
  run() {
    return 1;
  }
}

class Queue {
  run() {
    return 2;
  }
}

async function handle(req, res) {
  const url = new URL(req.url, "http://x");
  const n = Number(url.searchParams.get("n") ?? 1);
  let body = "";
  if (url.pathname === "/add") {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += add(i % 2 ? 200 : i, 1);
    body = String(sum);
  } else if (url.pathname === "/lookup") {
    const ms = Number(url.searchParams.get("ms") ?? 50);
    const users = await Promise.all(Array.from({ length: n }, (_, i) => lookupUser(i, ms)));
    body = users.map((u) => u.name).join(",");
  } else if (url.pathname === "/later") {
    body = (await Promise.all(Array.from({ length: n }, (_, i) => lookupLater(i)))).map((u) => u.name).join(",");
  } else if (url.pathname === "/greet") {
    body = greet("a") + " " + greet("b", "hello");
  } else if (url.pathname === "/throw") {
    try {
      mayThrow(true);
    } catch {
      body = "caught";
    }
  } else if (url.pathname === "/reserve") {
    body = await reserve(n).then(String, (err) => err.message);
  } else body = String(new Store().run() + new Queue().run());
  res.end(body);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    res.statusCode = 500;
    res.end(String(err));
  });
});
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })));

// A default parameter with code of its own, which runs only when the argument is missing.
function greet(name, greeting = String("hi")) {
  return `${greeting} ${name}`;
}

// Returns another async function's promise, not awaited: it settles with what that one resolves to.
async function lookupLater(id) {
  return lookupUser(id, 5);
}

// GET /reserve?n=N awaits reserve(N): the stock change, negative (a value, not an error), or a rejection for too many.
async function reserve(qty) {
  await sleep(1);
  if (qty > 10) throw new RangeError(`too many: ${qty}`);
  return -qty;
}
