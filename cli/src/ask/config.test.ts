import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { useTempCoralHome } from "@coral/colony/testing";
import {
  AskConfigError,
  DEFAULT_MODEL,
  askPaths,
  checkApiKey,
  checkModel,
  effectiveBaseUrl,
  loadAskConfig,
  maskKey,
  redact,
  resolveApiKey,
  saveApiKey,
  saveAskConfig,
} from "./config.ts";

let restore: () => Promise<void>;
beforeEach(async () => {
  ({ restore } = await useTempCoralHome());
});
afterEach(async () => {
  await restore();
});

const KEY = "sk-ant-api03-unit-test-key-0000-wxyz";

describe("ask config", () => {
  it("defaults when ask.yaml is missing, and merges changes into it", async () => {
    expect(await loadAskConfig()).toEqual({ provider: "anthropic", model: DEFAULT_MODEL, daily_warn_usd: 5, max_retries: 2 });
    await saveAskConfig({ model: "claude-opus-5-5", daily_warn_usd: 10 });
    await saveAskConfig({ base_url: "http://127.0.0.1:8080", max_retries: 4 });
    expect(await loadAskConfig()).toEqual({ provider: "anthropic", model: "claude-opus-5-5", daily_warn_usd: 10, base_url: "http://127.0.0.1:8080", max_retries: 4 });
    expect(await readFile(askPaths().config, "utf8")).toMatch(/^# coral ask settings/);
    await saveAskConfig({ base_url: undefined });
    expect((await loadAskConfig()).base_url).toBeUndefined();
  });

  it("names the file and key of a bad setting", async () => {
    await writeFile(askPaths().config, "model: claude-sonnet-5-5\ndaily_warn_usd: -3\n");
    await expect(loadAskConfig()).rejects.toThrow(/ask\.yaml: daily_warn_usd: daily warning must be a cost in USD/);
    await writeFile(askPaths().config, "provider: openai\n");
    await expect(loadAskConfig()).rejects.toThrow(/provider: only "anthropic" is supported/);
    await writeFile(askPaths().config, "- a\n- b\n");
    await expect(loadAskConfig()).rejects.toThrow(/must be a mapping/);
  });

  it("accepts Anthropic model ids only", () => {
    expect(checkModel("claude-haiku-5-5")).toBe("claude-haiku-5-5");
    expect(checkModel("anthropic:claude-opus-4-8")).toBe("claude-opus-4-8");
    expect(() => checkModel("openai:gpt-4o")).toThrow(AskConfigError);
    expect(() => checkModel("claude sonnet")).toThrow(/is not a model id/);
  });

  it("stores the key with mode 0600, even over a readable file, and refuses a readable key file", async () => {
    const { key } = askPaths();
    await writeFile(key, "old", { mode: 0o644 });
    await saveApiKey(KEY);
    expect((await stat(key)).mode & 0o777).toBe(0o600);
    expect(await resolveApiKey(askPaths(), {})).toEqual({ key: KEY, source: "key file" });
    expect(await resolveApiKey(askPaths(), { ANTHROPIC_API_KEY: "sk-from-env-000000" })).toEqual({ key: "sk-from-env-000000", source: "ANTHROPIC_API_KEY" });
    await chmod(key, 0o644);
    await expect(resolveApiKey(askPaths(), {})).rejects.toThrow(/other users can read it \(mode 0644\); it must be 0600: chmod 600/);
    expect(() => checkApiKey("  ")).toThrow(/empty/);
    expect(() => checkApiKey("sk-ant two words")).toThrow(/one line without spaces/);
  });

  it("shows a key only masked, and removes it from text", () => {
    expect(maskKey(KEY)).toBe("sk-...wxyz");
    expect(maskKey("short")).toBe("...");
    expect(redact(`failed with ${KEY} in it`, KEY)).toBe("failed with sk-...wxyz in it");
  });

  it("sends requests to ANTHROPIC_BASE_URL, else base_url, else the public API", async () => {
    const config = await loadAskConfig();
    expect(effectiveBaseUrl(config, {})).toBe("https://api.anthropic.com");
    expect(effectiveBaseUrl({ ...config, base_url: "http://proxy:8080" }, {})).toBe("http://proxy:8080");
    expect(effectiveBaseUrl({ ...config, base_url: "http://proxy:8080" }, { ANTHROPIC_BASE_URL: "http://other/" })).toBe("http://other");
  });
});
