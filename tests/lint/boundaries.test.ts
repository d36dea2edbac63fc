// The lint rules that hold the architecture (scripts/lint/plugin.mjs): imports
// between packages go through exports maps along the allowed arrows, and no
// file imports itself through others. Each case is code the rule must refuse
// or accept, linted as if it were the named file of the repository.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Linter } from "eslint";
import tseslint from "typescript-eslint";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs module without types
import coral from "../../scripts/lint/plugin.mjs";

const root = resolve(import.meta.dirname, "../..");
const linter = new Linter({ configType: "flat" });
const config = [
  {
    files: ["**/*.ts"],
    languageOptions: { parser: tseslint.parser as Linter.Parser },
    plugins: { coral: coral as never },
    rules: { "coral/package-boundaries": "error" as const, "coral/no-import-cycle": "error" as const },
  },
];

function problems(file: string, code: string): string[] {
  return linter.verify(code, config, { filename: file.startsWith("/") ? file : join(root, file) }).map((m) => m.message);
}

describe("coral/package-boundaries", () => {
  it.each([
    ["colony/src/store/x.ts", 'import { startAgent } from "@coral/agent";', /@coral\/colony may not import @coral\/agent/],
    ["colony/src/store/x.ts", 'import { startDiscoveryServer } from "@coral/discovery-worker";', /@coral\/colony may not import @coral\/discovery-worker/],
    ["common/src/x.ts", 'import { startColony } from "@coral/colony";', /@coral\/common may not import @coral\/colony/],
    ["proto/src/x.ts", 'export { sleep } from "@coral/common/async";', /@coral\/proto may not import @coral\/common/],
    ["sdk/src/x.ts", 'import { withAppender } from "@coral/common/duckdb";', /@coral\/sdk may not import @coral\/common/],
    ["cli/src/commands/x.ts", 'import { openStore } from "../../../colony/src/store/index.ts";', /reaches into colony\/'s files/],
    ["tests/colony/x.test.ts", 'import { openStore } from "../../colony/src/store/index.ts";', /reaches into colony\/'s files/],
    ["tests/colony/x.test.ts", 'const m = await import("@coral/colony/src/runtime/colony.ts");', /not in @coral\/colony's exports map/],
    ["cli/src/x.ts", 'import { x } from "@coral/nothing";', /no such Coral package/],
    ["agent/src/x.ts", 'import { startAgent } from "@coral/agent";', /imports its own files by relative path/],
  ])("refuses in %s: %s", (file, code, message) => {
    expect(problems(file, code)).toEqual([expect.stringMatching(message)]);
  });

  it.each([
    ["cli/src/commands/x.ts", 'import { startColony } from "@coral/colony";\nimport { startAgent } from "@coral/agent";'],
    ["colony/src/store/x.ts", 'import { QueuedConnection } from "@coral/common/duckdb";\nimport { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";'],
    ["agent/src/x.ts", 'export * from "@coral/sdk";\nimport { a } from "./b.ts";'],
    ["tests/colony/x.test.ts", 'import { AgentClientPool } from "@coral/colony/testing";\nimport { waitFor } from "../helpers/wait.ts";'],
  ])("accepts in %s", (file, code) => {
    expect(problems(file, code)).toEqual([]);
  });
});

describe("coral/no-import-cycle", () => {
  let dir: string;
  beforeAll(async () => {
    // Inside the repository: eslint lints files under its working directory only.
    dir = await mkdtemp(join(root, "tests", "lint", ".tmp-cycle-"));
    await writeFile(join(dir, "a.ts"), 'import { b } from "./b.ts";\nexport const a = 1;\n');
    await writeFile(join(dir, "b.ts"), 'import type { C } from "./c.ts";\nexport const b = 2;\n');
    await writeFile(join(dir, "c.ts"), '// import { a } from "./a.ts"; (a comment is no import)\nimport { a } from "./a.ts";\nexport type C = typeof a;\n');
    await writeFile(join(dir, "d.ts"), 'import { a } from "./a.ts";\nexport const d = a;\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("reports a cycle through type imports too, naming its files", () => {
    const [message] = problems(join(dir, "a.ts"), 'import { b } from "./b.ts";\nexport const a = 1;\n');
    expect(message).toMatch(/^import cycle: .*a\.ts → .*b\.ts → .*c\.ts → .*a\.ts$/);
  });

  it("does not report a file that only imports into a cycle", () => {
    expect(problems(join(dir, "d.ts"), 'import { a } from "./a.ts";\nexport const d = a;\n')).toEqual([]);
  });
});
