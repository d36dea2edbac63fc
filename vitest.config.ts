import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["proto/src/**/*.test.ts", "discovery-worker/**/*.test.ts", "colony/**/*.test.ts", "agent/**/*.test.ts", "tests/**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    // Real servers start in these tests; the machine is small and shared.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ["default"],
  },
});
