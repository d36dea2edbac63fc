// npm run build (and npm install, through prepare): compiles every package to
// its dist/ with tsc project references (one module per source file, so the
// CLI can keep loading only the command it runs), copies the few files tsc
// does not emit, bundles the discovery worker for self-hosted workerd, and
// bundles the CLI's read commands (cli/src/read-main.ts → cli/dist/bundle/),
// and builds the dashboard with Vite (dashboard/ → dashboard/dist/, which the colony serves).
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
execFileSync(process.execPath, [tsc, "-b", join(root, "tsconfig.build.json")], { stdio: "inherit" });

const assets = [["cli/src/sample-app/component.mjs", "cli/dist/sample-app/component.mjs"]];
for (const [from, to] of assets) {
  mkdirSync(dirname(join(root, to)), { recursive: true });
  copyFileSync(join(root, from), join(root, to));
}

const { buildWorkerBundle } = await import(join(root, "discovery-worker/dist/self-hosted/bundle.js"));
writeFileSync(join(root, "discovery-worker/dist/worker.js"), await buildWorkerBundle(join(root, "discovery-worker/src/worker/index.ts")));
await bundleReadCommands();
await bundleConnect();
await buildDashboard();
console.log("build: packages compiled to dist/, discovery worker, the CLI's read commands and coral connect bundled, dashboard built");

/**
 * The dashboard: a static bundle (dashboard/dist) built with Vite, the
 * colony serves it. Skipped when dist is newer than every file it is made
 * from (its sources, its config, the generated protobuf code), so the build
 * stays incremental.
 */
async function buildDashboard() {
  const dir = join(root, "dashboard");
  const stamp = join(dir, "dist", ".built");
  const newest = (path) => {
    const st = statSync(path);
    if (!st.isDirectory()) return st.mtimeMs;
    return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
  };
  const inputs = ["src", "index.html", "vite.config.ts", "package.json"].map((p) => join(dir, p)).concat(join(root, "proto", "gen"));
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= Math.max(...inputs.map(newest))) return;
  const { build } = await import(pathToFileURL(createRequire(join(dir, "package.json")).resolve("vite")).href);
  await build({ configFile: join(dir, "vite.config.ts"), logLevel: "warn" });
  writeFileSync(stamp, new Date().toISOString() + "\n");
}

/**
 * `coral --version` and the read commands (status, topology, events, metrics,
 * history) run cli/dist/bundle/read.js: one bundle of the entry, the command
 * module, commander, protobuf and Connect's core, with a chunk per dynamic
 * import (code splitting), so --version loads only the entry. Unbundled,
 * loading those ~170 ES modules one by one took about 100 ms of `coral
 * status`'s 350 (bench/BENCHMARKS.md, CLI start-up). Only the packages below
 * are inlined; anything else a read command imports stays an import of the
 * installed package (the colony's configuration, which remote.ts loads only
 * when no colony is running). No other command loads the bundle, so the
 * agent's and colony's code never meets the bundle's copies of protobuf,
 * Connect or commander in one process.
 */
async function bundleReadCommands() {
  // Exactly what the read path uses. connect-node is inlined so that, unused
  // by the read commands, it is left out; everything else stays an import
  // that tests/cli/lazy-load.test.ts can see.
  const inline = /^(?:(?:commander|picocolors|@bufbuild\/protobuf|@connectrpc\/connect|@connectrpc\/connect-node)(?:\/.*)?|@coral\/proto\/gen\/.+|@coral\/common\/(?:duration|units|version)|@coral\/colony\/pid-file)$/;
  await bundleCliEntry("read", "read-main.ts", "bundle", {
    plugins: [
      {
        name: "inline-only-read-path",
        setup(build) {
          build.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith("node:") || inline.test(args.path) ? undefined : { path: args.path, external: true }));
        },
      },
    ],
  });
}

/** cli/src/<source> bundled by esbuild into cli/dist/<folder>/<name>.js, with a chunk per dynamic import. */
async function bundleCliEntry(name, source, folder, options) {
  // esbuild is the discovery worker's dependency (it bundles the worker above).
  const esbuild = await import(pathToFileURL(createRequire(join(root, "discovery-worker", "package.json")).resolve("esbuild")).href);
  const outdir = join(root, "cli", "dist", folder);
  rmSync(outdir, { recursive: true, force: true });
  await esbuild.build({
    entryPoints: { [name]: join(root, "cli", "src", source) },
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // The workspace packages' TypeScript sources, as tests and tsx see them.
    conditions: ["coral-source"],
    sourcemap: "linked",
    sourcesContent: false,
    legalComments: "none",
    // commander is CommonJS: its require() calls of Node's modules need a require.
    banner: { js: 'import { createRequire as __coralCreateRequire } from "node:module"; const require = __coralCreateRequire(import.meta.url);' },
    logLevel: "warning",
    ...options,
  });
}

/**
 * `coral connect` (the agent) runs cli/dist/bundle-connect/connect.js: the entry and
 * everything it imports, minified, with a chunk per dynamic import so the
 * debug, profiling and WireGuard code still loads only on first use. Native
 * modules (better-sqlite3; DuckDB, reached only by importing an old agent
 * store) stay imports of the installed packages. The agent is one process:
 * no unbundled copy of protobuf or Connect meets the bundle's. Paths made from
 * import.meta.url (the bpftrace programs in bpf/) are three levels below the
 * checkout in agent/src, agent/dist and cli/dist/bundle-connect alike.
 */
async function bundleConnect() {
  await bundleCliEntry("connect", "connect-main.ts", "bundle-connect", { minify: true, external: ["better-sqlite3", "@duckdb/*", "@lydell/node-pty"] });
}
