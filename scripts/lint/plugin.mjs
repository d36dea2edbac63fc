// Coral's own lint rules: the package boundaries of the architecture, and no
// import cycles between files. Run by eslint (eslint.config.js).
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { cycleThrough } from "./import-graph.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Which package may import which: proto ← common ← {agent, sdk,
 * discovery-worker, colony} ← cli; the dashboard (a browser app) uses
 * proto's generated types and common's browser-safe modules (its Vite build
 * fails on anything Node-only), and the colony serves its built files. The agent reads the SDK's announcements
 * (and re-exports the SDK for one release as @coral/agent/sdk).
 */
export const allowedImports = {
  proto: [],
  common: ["proto"],
  sdk: ["proto"],
  "discovery-worker": ["proto", "common"],
  agent: ["proto", "common", "sdk"],
  dashboard: ["proto", "common"],
  colony: ["proto", "common", "dashboard"],
  cli: ["proto", "common", "sdk", "agent", "colony", "discovery-worker"],
};
const folderOf = { "@coral/proto": "proto", "@coral/common": "common", "@coral/sdk": "sdk", "@coral/discovery-worker": "discovery-worker", "@coral/agent": "agent", "@coral/colony": "colony", "@coral/dashboard": "dashboard", "@coral/cli": "cli" };
const packages = Object.keys(allowedImports);

/** The package folder a file belongs to, or null (tests, bench, scripts). */
function packageOf(file) {
  const top = relative(root, file).split(sep)[0];
  return packages.includes(top) ? top : null;
}

const exportsCache = new Map();
function exportedSubpaths(folder) {
  let subpaths = exportsCache.get(folder);
  if (!subpaths) {
    const pkg = JSON.parse(readFileSync(join(root, folder, "package.json"), "utf8"));
    subpaths = Object.keys(pkg.exports ?? {});
    exportsCache.set(folder, subpaths);
  }
  return subpaths;
}
function isExported(folder, subpath) {
  return exportedSubpaths(folder).some((s) => s === subpath || (s.endsWith("/*") && subpath.startsWith(s.slice(0, -1))));
}

function sourcesOf(context, check) {
  const visit = (node) => {
    if (node.source && node.source.type === "Literal" && typeof node.source.value === "string") check(node.source, node.source.value);
  };
  return { ImportDeclaration: visit, ExportNamedDeclaration: visit, ExportAllDeclaration: visit, ImportExpression: visit };
}

const packageBoundaries = {
  meta: { type: "problem", docs: { description: "packages import each other only through their exports maps, along the architecture's arrows" }, schema: [] },
  create(context) {
    const file = resolve(context.filename);
    const own = packageOf(file);
    return sourcesOf(context, (node, spec) => {
      if (spec.startsWith(".")) {
        const target = resolve(dirname(file), spec);
        const theirs = packageOf(target);
        if (theirs && theirs !== own) context.report({ node, message: `'${spec}' reaches into ${theirs}/'s files; import @coral/${theirs} (its exports map) instead` });
        return;
      }
      const match = /^(@coral\/[^/]+)(\/.*)?$/.exec(spec);
      if (!match) return;
      const folder = folderOf[match[1]];
      if (!folder) return context.report({ node, message: `'${spec}': no such Coral package` });
      const subpath = `.${match[2] ?? ""}`;
      if (!isExported(folder, subpath)) return context.report({ node, message: `'${spec}' is not in ${match[1]}'s exports map (${exportedSubpaths(folder).join(", ")})` });
      if (own === null) return;
      if (folder === own) return context.report({ node, message: `'${spec}': a package imports its own files by relative path` });
      if (!allowedImports[own].includes(folder)) {
        context.report({ node, message: `@coral/${own} may not import ${match[1]} (allowed: ${allowedImports[own].map((p) => `@coral/${p}`).join(", ") || "none"})` });
      }
    });
  },
};

const noImportCycle = {
  meta: { type: "problem", docs: { description: "no file imports itself through other files (type imports count)" }, schema: [] },
  create(context) {
    return {
      Program(node) {
        const cycle = cycleThrough(resolve(context.filename));
        if (cycle) context.report({ node, message: `import cycle: ${cycle.map((f) => relative(root, f)).join(" → ")}` });
      },
    };
  },
};

export default { rules: { "package-boundaries": packageBoundaries, "no-import-cycle": noImportCycle } };
