import { describe, expect, it } from "vitest";
import { agentConfigFrom } from "./agent-config.ts";

describe("agent config (coral connect --config)", () => {
  it("reads the services, health paths as URLs on their port", () => {
    const specs = agentConfigFrom(
      "services:\n  - name: api\n    port: 3001\n    health: /health\n    tags: { version: 2.1 }\n  - name: db\n    port: 5432\n    health: tcp://127.0.0.1:5432\n    sdk: 4001\n",
      "a.yaml",
    );
    expect(specs).toEqual([
      { name: "api", port: 3001, healthUrl: "http://127.0.0.1:3001/health", metricsUrl: undefined, tags: { version: "2.1" }, sdkPort: undefined },
      { name: "db", port: 5432, healthUrl: "tcp://127.0.0.1:5432", metricsUrl: undefined, tags: undefined, sdkPort: 4001 },
    ]);
  });

  it("names the file and the place of every mistake", () => {
    expect(() => agentConfigFrom("services: [", "a.yaml")).toThrow(/^a\.yaml: not valid YAML/);
    expect(() => agentConfigFrom("services: []\n", "a.yaml")).toThrow(/a\.yaml: services: list at least one service/);
    expect(() => agentConfigFrom("services:\n  - name: api\n    port: nope\n", "a.yaml")).toThrow(/a\.yaml: services\.0\.port: /);
    expect(() => agentConfigFrom("services:\n  - name: api\n    port: 1\n    colour: red\n", "a.yaml")).toThrow(/a\.yaml: services\.0: .*colour/);
    expect(() => agentConfigFrom("services:\n  - {name: a, port: 1}\n  - {name: a, port: 2}\n", "a.yaml")).toThrow(/a\.yaml: the service "a" is named twice/);
    expect(() => agentConfigFrom("services:\n  - {name: a, port: 1, health: 'ftp://x'}\n", "a.yaml")).toThrow(/a\.yaml: health "ftp:\/\/x" must be a path/);
  });
});
