import { describe, expect, it } from "vitest";
import { NonceLedger } from "./nonce-ledger.ts";

describe("NonceLedger", () => {
  it("takes each nonce once while its signature could be accepted", () => {
    const ledger = new NonceLedger(300_000);
    expect(ledger.use("a", 1_000, 1_000)).toBe("fresh");
    expect(ledger.use("a", 1_000, 2_000)).toBe("replayed");
    expect(ledger.use("b", 1_000, 2_000)).toBe("fresh");
  });

  it("forgets nonces whose window closed, and refuses new ones rather than forget a live one when full", () => {
    const ledger = new NonceLedger(1_000, 2);
    expect([ledger.use("a", 0, 0), ledger.use("b", 500, 500)]).toEqual(["fresh", "fresh"]);
    // Both windows are open: no room, and nothing may be dropped.
    expect(ledger.use("c", 600, 600)).toBe("full");
    // a's window (until 1000) has closed: it leaves, c gets in.
    expect(ledger.use("c", 1_200, 1_200)).toBe("fresh");
    expect(ledger.size).toBe(2);
  });
});
