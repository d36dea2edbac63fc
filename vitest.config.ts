import { defineConfig } from "vitest/config";

// Tests import the packages' TypeScript sources (the "coral-source" export
// condition); bins that tests spawn run the compiled dist/ that users run.
const conditions = ["coral-source", "module", "node", "development|production"];
// Not "module" on the server side: some packages (OpenTelemetry's) point it
// at an ESM build with extensionless imports that only a bundler can load.
const ssrConditions = conditions.filter((c) => c !== "module");

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions: ssrConditions, externalConditions: ["coral-source"] } },
  test: {
    include: ["{proto,common,sdk,discovery-worker,agent,colony,cli}/src/**/*.test.ts", "tests/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    // Real servers start in these tests; the machine is small and shared.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ["default"],
    // Agents (in-process and the CLI's) run the always-on CPU profiler and
    // the HTTP request tracer by default: a bpftrace each, which would sit
    // beside every test's targets (and count in their "nothing left attached"
    // checks) and load the machine. Their own tests turn them on.
    // The same for the OTLP endpoints on their fixed ports (4317, 4318).
    env: { CORAL_PROFILE_HZ: "0", CORAL_HTTP_TRACING: "0", CORAL_OTLP: "0" },
  },
});
