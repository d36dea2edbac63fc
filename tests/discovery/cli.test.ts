// coral-discovery as a script sees it: exit codes (0 ok, 1 failure, 2 usage
// error, as coral's) and messages that say what to change.
import { execFile } from "node:child_process";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const bin = resolve(import.meta.dirname, "../../node_modules/.bin/coral-discovery");
const dirs: string[] = [];

afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = execFile(bin, args, { timeout: 60_000 }, (_err, stdout, stderr) => done({ code: child.exitCode, output: stdout + stderr }));
  });
}

describe("coral-discovery command line", () => {
  it.each([
    [["--port", "99999"], /--port must be a whole number from 0 to 65535/],
    [["--ttl", "abc"], /--ttl must be a whole number from 1 to 86400/],
    [["--cleanup-interval", "-1"], /--cleanup-interval must be a whole number/],
    [["--log-level", "loud"], /Allowed choices are debug, info, warn, error/],
    [["--shards", "0"], /--shards must be a whole number from 1/],
    [["--mesh-buckets", "lots"], /--mesh-buckets must be a whole number from 0 to 4096/],
    [["--mesh-buckets", "4097"], /--mesh-buckets must be a whole number from 0 to 4096/],
    [["--bogus"], /unknown option '--bogus'/],
  ])("refuses %j as a usage error (exit 2)", async (args, message) => {
    const { code, output } = await run(args);
    expect(code).toBe(2);
    expect(output).toMatch(message);
    expect(output).toContain("Usage: coral-discovery");
  });

  it.each([
    [["--help"], /--data-dir <dir>/],
    [["--version"], /^\d+\.\d+\.\d+\s*$/],
    [["keygen"], /"kty":"OKP","crv":"Ed25519"/],
  ])("answers %j with exit 0", async (args, output) => {
    const result = await run(args);
    expect(result.code).toBe(0);
    expect(result.output).toMatch(output);
  });

  it("says which address is taken and exits 1 when the port is in use", async () => {
    const taken = createServer();
    taken.listen(0, "127.0.0.1");
    await once(taken, "listening");
    const { port } = taken.address() as AddressInfo;
    const dataDir = await mkdtemp(join(tmpdir(), "coral-discovery-cli-"));
    dirs.push(dataDir);
    try {
      const { code, output } = await run(["--host", "127.0.0.1", "--port", String(port), "--data-dir", dataDir, "--shards", "1"]);
      expect(code).toBe(1);
      expect(output).toContain(`failed to listen on 127.0.0.1:${port}: address already in use; pick another with --port`);
    } finally {
      taken.close();
    }
  });
});
