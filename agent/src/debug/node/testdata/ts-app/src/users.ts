// A TypeScript app for the source-map test: compiled with tsc (sourceMap),
// run as `node dist/users.js [port]`; GET /user?id=N calls fetchUser.
import { createServer } from "node:http";

interface User {
  id: number;
  name: string;
}

export async function fetchUser(id: number): Promise<User> {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return { id, name: `user-${id}` };
}

const server = createServer((req, res) => {
  const id = Number(new URL(req.url ?? "/", "http://x").searchParams.get("id") ?? 1);
  void fetchUser(id).then((u) => res.end(JSON.stringify(u)));
});
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  const address = server.address();
  console.log(JSON.stringify({ port: typeof address === "object" && address ? address.port : 0 }));
});
