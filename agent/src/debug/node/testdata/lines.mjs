// A Node HTTP service for the logpoint and snapshot tests: `node lines.mjs [port]`
// prints {"port":N} once it listens.
//   GET /total?n=N   calls total(i, "k" + i) for i < N
//   GET /price?id=N  calls price({ id, items: ["a", "b"] }, 3)
//   GET /name?v=S    calls nameLength({ name: S }) ("null": name null)
//   GET /seen        the length of seen (what total pushed)
import http from "node:http";

const seen = [];

function total(i, key) {
  const doubled = i * 2;
  seen.push(key);
  let after = doubled + 1;
  return after;
}

function price(order, qty) {
  const unit = 5;
  const { id, items: [first, ...rest] } = order;
  const sum = unit * qty;
  let later = sum + 1;
  if (id > 0) {
    const inner = id + rest.length + first.length;
    later += inner;
  }
  return later;
}

function nameLength(user) {
  return user.name === null ? -1 : user.name.length;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  let body = "";
  if (url.pathname === "/total") {
    let sum = 0;
    for (let i = 0; i < Number(url.searchParams.get("n") ?? 1); i++) sum += total(i, "k" + i);
    body = String(sum);
  } else if (url.pathname === "/price") body = String(price({ id: Number(url.searchParams.get("id") ?? 1), items: ["a", "b"] }, 3));
  else if (url.pathname === "/name") {
    const v = url.searchParams.get("v");
    body = String(nameLength({ name: v === "null" ? null : v }));
  } else if (url.pathname === "/seen") body = String(seen.length);
  res.end(body);
});
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })));
