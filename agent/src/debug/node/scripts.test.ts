// Which scripts of a Node process are the app's own: those of its main
// script's package (or workspace), in an npm layout (dependencies under
// node_modules), a distribution's (each dependency a package beside the
// app's, as Debian installs them under /usr/share/nodejs, the command a
// symlink to the package's bin), and a monorepo's; and, with no package.json
// above the main script, every file script outside node_modules.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { appRoot, appScripts, type Cdp } from "./scripts.ts";

/** Files (path → content) under a fresh folder; returns the folder. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "coral-scripts-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** An inspector session whose process was started with `argv1` as its main script. */
const processWith = (argv1: unknown): Cdp => ({
  send: <T,>(method: string) => Promise.resolve((method === "Runtime.evaluate" ? { result: { value: argv1 } } : {}) as T),
  on: () => () => undefined,
});

const url = (path: string) => pathToFileURL(path).href;

describe("the app's own scripts", () => {
  it("a distribution's layout: the main script's package only, found through the command's symlink; the packages beside it are dependencies", async () => {
    const root = tree({
      "share/nodejs/proxy/package.json": "{}",
      "share/nodejs/proxy/bin/proxy": "",
      "share/nodejs/proxy/lib/proxy.js": "",
      "share/nodejs/http-proxy/package.json": "{}",
      "share/nodejs/http-proxy/lib/index.js": "",
    });
    mkdirSync(join(root, "bin"));
    symlinkSync("../share/nodejs/proxy/bin/proxy", join(root, "bin/proxy"));
    const pkg = join(root, "share/nodejs/proxy");
    expect(await appRoot(join(root, "bin/proxy"))).toBe(pkg);
    const own = await appScripts(processWith(join(root, "bin/proxy")));
    expect(own(url(`${pkg}/bin/proxy`))).toBe(true);
    expect(own(`${pkg}/lib/proxy.js`)).toBe(true);
    expect(own(url(join(root, "share/nodejs/http-proxy/lib/index.js")))).toBe(false);
    expect(own("node:internal/main/run_main_module")).toBe(false);
    const all = await appScripts(processWith(join(root, "bin/proxy")), true);
    expect(all(url(join(root, "share/nodejs/http-proxy/lib/index.js")))).toBe(true);
    expect(all("node:http")).toBe(false);
  });

  it("an npm layout: the package's files, not its node_modules, not a sibling folder", async () => {
    const root = tree({ "app/package.json": "{}", "app/src/main.js": "", "app/node_modules/dep/index.js": "", "other/x.js": "" });
    const own = await appScripts(processWith(join(root, "app/src/main.js")));
    expect(own(url(join(root, "app/src/main.js")))).toBe(true);
    expect(own(url(join(root, "app/node_modules/dep/index.js")))).toBe(false);
    expect(own(url(join(root, "other/x.js")))).toBe(false);
  });

  it("a monorepo: every package of the workspace the main script's package belongs to, never past node_modules", async () => {
    const root = tree({
      "package.json": JSON.stringify({ workspaces: ["packages/*"] }),
      "packages/server/package.json": "{}",
      "packages/server/dist/main.js": "",
      "packages/db/package.json": "{}",
      "packages/db/dist/index.js": "",
      "node_modules/tool/package.json": "{}",
      "node_modules/tool/bin/cli.js": "",
    });
    expect(await appRoot(join(root, "packages/server/dist/main.js"))).toBe(root);
    const own = await appScripts(processWith(join(root, "packages/server/dist/main.js")));
    expect(own(url(join(root, "packages/db/dist/index.js")))).toBe(true);
    expect(own(url(join(root, "node_modules/tool/bin/cli.js")))).toBe(false);
    // A tool run from node_modules (npx): its own package, not the workspace around it.
    expect(await appRoot(join(root, "node_modules/tool/bin/cli.js"))).toBe(join(root, "node_modules/tool"));
  });

  it("no package.json above the main script, or no main script (node -e): every file script outside node_modules", async () => {
    const root = tree({ "lone/main.js": "", "lone/node_modules/dep/index.js": "" });
    expect(await appRoot(join(root, "lone/main.js"))).toBeUndefined();
    for (const argv1 of [join(root, "lone/main.js"), undefined]) {
      const own = await appScripts(processWith(argv1));
      expect(own(url(join(root, "lone/main.js")))).toBe(true);
      expect(own("/anywhere/else.js")).toBe(true);
      expect(own(url(join(root, "lone/node_modules/dep/index.js")))).toBe(false);
    }
  });
});
