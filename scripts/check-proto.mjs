// Fails when `buf lint` complains or when regenerating changes proto/gen.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const bin = join(process.cwd(), "node_modules", ".bin");
const buf = join(bin, "buf");
// buf runs the local protoc-gen-es plugin from PATH.
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };
execFileSync(buf, ["lint"], { stdio: "inherit", env });

const out = mkdtempSync(join(tmpdir(), "coral-proto-"));
try {
  execFileSync(buf, ["generate", "--output", out], { stdio: "inherit", env });
  const list = (dir) =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? list(path) : [path];
    });
  const committed = new Map(list("proto/gen").map((p) => [relative("proto/gen", p), readFileSync(p, "utf8")]));
  const fresh = new Map(list(join(out, "proto/gen")).map((p) => [relative(join(out, "proto/gen"), p), readFileSync(p, "utf8")]));
  const problems = [];
  for (const [file, text] of fresh) {
    if (!committed.has(file)) problems.push(`missing from proto/gen: ${file}`);
    else if (committed.get(file) !== text) problems.push(`out of date: proto/gen/${file}`);
  }
  for (const file of committed.keys()) if (!fresh.has(file)) problems.push(`stale (no .proto makes it): proto/gen/${file}`);
  if (problems.length) {
    console.error(`proto/gen does not match the .proto sources; run \`npm run proto\` and commit:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`proto: buf lint clean, proto/gen up to date (${fresh.size} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
