import js from "@eslint/js";
import tseslint from "typescript-eslint";
import coral from "./scripts/lint/plugin.mjs";

export default tseslint.config(
  { ignores: ["**/node_modules/**", "proto/gen/**", "**/dist/**", ".coral/**", "**/.wrangler/**", "bench/results/**", "bench/**/.lean-build-*/**", "tests/lint/.tmp-*/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { console: "readonly", process: "readonly", URL: "readonly", setTimeout: "readonly", clearTimeout: "readonly" },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-console": "off",
    },
  },
  {
    // The architecture's package graph and no file-level import cycles (scripts/lint/plugin.mjs).
    files: ["**/*.ts", "**/*.mts", "**/*.js", "**/*.mjs"],
    plugins: { coral },
    rules: { "coral/package-boundaries": "error", "coral/no-import-cycle": "error" },
  },
);
