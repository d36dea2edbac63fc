// Inlined frames from DWARF: for addresses in a file that carries debug
// information, binutils' addr2line (-i) names every function inlined at that
// address, innermost first, down to the function that holds it. One
// addr2line per file and profile, fed the addresses on stdin; answers are
// cached per file and address. A file it cannot read, a timeout or any
// failure gives no inlined frames, never an error: the symbol table's name
// still stands.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

/** Functions inlined at an address, innermost first (the holding function itself not included). */
export type InlinedNames = string[];

const maxCached = 200_000;
const timeoutMs = 30_000;

export class InlineResolver {
  private readonly cache = new Map<string, InlinedNames>();
  private available: boolean | undefined;

  constructor(private readonly addr2line = "addr2line") {}

  /** Inlined functions at each ELF virtual address of `path` (addresses with none map to []). */
  async resolve(path: string, vaddrs: readonly bigint[]): Promise<Map<bigint, InlinedNames>> {
    const out = new Map<bigint, InlinedNames>();
    const missing: bigint[] = [];
    for (const a of new Set(vaddrs)) {
      const known = this.cache.get(`${path}\0${a}`);
      if (known) out.set(a, known);
      else missing.push(a);
    }
    if (missing.length === 0 || this.available === false) return out;
    const answers = await this.run(path, missing);
    for (const a of missing) {
      const names = answers.get(a) ?? [];
      out.set(a, names);
      if (answers.size > 0) this.cache.set(`${path}\0${a}`, names);
    }
    while (this.cache.size > maxCached) this.cache.delete(this.cache.keys().next().value!);
    return out;
  }

  private run(path: string, vaddrs: readonly bigint[]): Promise<Map<bigint, InlinedNames>> {
    return new Promise((resolve) => {
      const answers = new Map<bigint, string[]>();
      let child;
      try {
        child = spawn(this.addr2line, ["-a", "-f", "-i", "-C", "-e", path], { stdio: ["pipe", "pipe", "ignore"] });
      } catch {
        this.available = false;
        return resolve(answers);
      }
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.on("error", () => {
        this.available = false;
      });
      // Output per address: the address ("0x…"), then pairs of lines (function, file:line), innermost first.
      let current: bigint | undefined;
      let names: string[] = [];
      let expectFunction = true;
      const finish = () => {
        // The last name is the function that holds the address; the ones before it were inlined into it.
        if (current !== undefined) answers.set(current, names.slice(0, -1).filter((n) => n !== "??"));
      };
      createInterface({ input: child.stdout }).on("line", (line) => {
        if (/^0x[0-9a-f]+$/i.test(line)) {
          finish();
          current = BigInt(line);
          names = [];
          expectFunction = true;
          return;
        }
        if (expectFunction) names.push(line.trim());
        expectFunction = !expectFunction;
      });
      child.on("close", () => {
        clearTimeout(timer);
        finish();
        resolve(answers);
      });
      child.stdin.on("error", () => undefined);
      child.stdin.end(vaddrs.map((a) => `0x${a.toString(16)}`).join("\n") + "\n");
    });
  }
}
