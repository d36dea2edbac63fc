import { mkdir, readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError } from "./errors.ts";
import { coralHome, currentColony, listColonies, registerColony, registryPath, unregisterColony, useColony, type ColonyEntry } from "./registry.ts";
import { useTempCoralHome } from "./testing.ts";

let home: string;
let restore: () => Promise<void>;
beforeEach(async () => {
  ({ home, restore } = await useTempCoralHome());
});
afterEach(async () => {
  await restore();
});

const entry = (id: string, dir = `/srv/${id}`): ColonyEntry => ({
  colony_id: id,
  app_name: id.split("-")[0]!,
  environment: "dev",
  project_dir: dir,
  created_at: "2026-01-05T10:00:00.000Z",
});

describe("coralHome", () => {
  it("is $CORAL_HOME, else ~/.coral", () => {
    expect(coralHome()).toBe(home);
    expect(coralHome({ CORAL_HOME: "/opt/coral" })).toBe("/opt/coral");
    expect(coralHome({})).toBe(join(homedir(), ".coral"));
    expect(registryPath()).toBe(join(home, "colonies.yaml"));
  });
});

describe("colony registry", () => {
  it("starts empty", async () => {
    expect(await listColonies()).toEqual([]);
    expect(await currentColony()).toBeUndefined();
  });

  it("lists, switches and reports the current colony", async () => {
    await registerColony(entry("shop-dev-aaaaaa"), { makeCurrent: true });
    await registerColony(entry("blog-dev-bbbbbb"));
    expect((await listColonies()).map((c) => c.colony_id)).toEqual(["shop-dev-aaaaaa", "blog-dev-bbbbbb"]);
    expect((await currentColony())?.colony_id).toBe("shop-dev-aaaaaa");

    expect(await useColony("blog-dev-bbbbbb")).toEqual(entry("blog-dev-bbbbbb"));
    expect(await currentColony()).toEqual(entry("blog-dev-bbbbbb"));
    const text = await readFile(registryPath(), "utf8");
    expect(text).toContain("current: blog-dev-bbbbbb\n");
  });

  it("replaces an entry with the same id", async () => {
    await registerColony(entry("shop-dev-aaaaaa", "/old"));
    await registerColony(entry("shop-dev-aaaaaa", "/new"));
    expect(await listColonies()).toEqual([entry("shop-dev-aaaaaa", "/new")]);
  });

  it("lists the known ids when asked for an unknown one", async () => {
    await expect(useColony("nope")).rejects.toThrow('unknown colony "nope": no colonies registered yet; create one with: coral init --app <name> --env dev');
    await registerColony(entry("shop-dev-aaaaaa"));
    await registerColony(entry("blog-dev-bbbbbb"));
    await expect(useColony("nope")).rejects.toThrow('unknown colony "nope"; known colonies: shop-dev-aaaaaa, blog-dev-bbbbbb');
  });

  it("forgets a colony, and the current one with it", async () => {
    await registerColony(entry("shop-dev-aaaaaa"), { makeCurrent: true });
    expect(await unregisterColony("shop-dev-aaaaaa")).toBe(true);
    expect(await unregisterColony("shop-dev-aaaaaa")).toBe(false);
    expect(await listColonies()).toEqual([]);
    expect(await currentColony()).toBeUndefined();
  });

  it("names the file and key when colonies.yaml is broken", async () => {
    await mkdir(home, { recursive: true });
    await writeFile(registryPath(), "current: x\ncolonies:\n  - colony_id: x\n");
    const err = await listColonies().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`${registryPath()}: colonies.0.app_name: is required`);
    await writeFile(registryPath(), "current: [\n");
    await expect(listColonies()).rejects.toThrow(/colonies\.yaml: line \d+, column \d+: YAML syntax error/);
  });

  it("takes an explicit home", async () => {
    const other = join(home, "other");
    await registerColony(entry("shop-dev-aaaaaa"), { home: other, makeCurrent: true });
    expect(await listColonies()).toEqual([]);
    expect((await currentColony({ home: other }))?.colony_id).toBe("shop-dev-aaaaaa");
  });
});
