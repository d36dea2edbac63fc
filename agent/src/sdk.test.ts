import * as sdk from "@coral/sdk";
import { describe, expect, it } from "vitest";
import * as legacy from "./sdk.ts";

describe("@coral/agent/sdk (deprecated)", () => {
  it("re-exports @coral/sdk itself, so apps share one SDK instance whichever path they import", () => {
    expect(legacy.coral).toBe(sdk.coral);
    expect(legacy.RollbackReverted).toBe(sdk.RollbackReverted);
    expect(Object.keys(legacy).sort()).toEqual(Object.keys(sdk).sort());
  });
});
