// Builds the dashboard into dist/ (npm run build runs it through
// scripts/build.mjs): one small entry for the overview, the topology
// (dagre, d3-force) and charts (uPlot) in chunks loaded when their view opens.
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  // The workspace packages' TypeScript sources (the generated protobuf code), as tests and tsx see them.
  resolve: { conditions: ["coral-source", "module", "browser", "development|production"] },
  esbuild: { jsx: "automatic", jsxImportSource: "preact", legalComments: "none" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 600,
    modulePreload: { polyfill: false },
  },
  logLevel: "warn",
});
