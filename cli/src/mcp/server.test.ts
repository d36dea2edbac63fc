// The MCP server in process, through the SDK's in-memory transport, against
// a stand-in colony client.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client as ConnectClient } from "@connectrpc/connect";
import { ColonyService, GetStatusResponseSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, it } from "vitest";
import { mcpClientConfig, tokenPlaceholder } from "../commands/mcp.ts";
import { coralTools } from "../tools/index.ts";
import { lazyColonyClient } from "./lazy-client.ts";
import { createCoralMcpServer } from "./server.ts";

type Colony = ConnectClient<typeof ColonyService>;

async function connected(colony: Colony) {
  const server = createCoralMcpServer({ colony });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: "test", version: "1" });
  await client.connect(clientSide);
  return client;
}

const text = (r: unknown) => ((r as CallToolResult).content[0] as { text: string }).text;

describe("createCoralMcpServer", () => {
  it("registers every tool of the registry, read-only ones annotated as such and write ones as destructive", async () => {
    const client = await connected({} as Colony);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(coralTools.map((t) => t.name));
    const writes = tools.filter((t) => t.annotations?.readOnlyHint === false).map((t) => t.name);
    expect(writes.sort()).toEqual(["coral_debug_attach", "coral_debug_detach", "coral_debug_logpoint", "coral_debug_snapshot", "coral_profile_cpu"]);
    for (const t of tools) expect(t.annotations?.destructiveHint).toBe(t.annotations?.readOnlyHint === false);
    expect(client.getInstructions()).toMatch(/Start with coral_get_status/);
    await client.close();
  });

  it("answers with the tool's text, and with isError and the reason when it fails", async () => {
    let calls = 0;
    const colony = {
      getStatus: async () => {
        calls++;
        if (calls === 1) throw new ConnectError("token is not valid for this colony", Code.Unauthenticated);
        return create(GetStatusResponseSchema, { appName: "shop", environment: "dev", colonyId: "shop-dev-1" });
      },
    } as unknown as Colony;
    const client = await connected(colony);
    const refused = await client.callTool({ name: "coral_get_status", arguments: {} });
    expect(refused.isError).toBe(true);
    expect(text(refused)).toBe("Error: not authenticated by the colony: token is not valid for this colony");
    const ok = await client.callTool({ name: "coral_get_status", arguments: {} });
    expect(ok.isError).toBeFalsy();
    expect(text(ok)).toMatch(/^Application shop \(dev\), colony shop-dev-1/);
    await client.close();
  });
});

describe("lazyColonyClient", () => {
  it("finds the colony on first use and tries again after a failure", async () => {
    let attempts = 0;
    const client = lazyColonyClient(async () => {
      attempts++;
      if (attempts === 1) throw new Error("no colony here: run this in a project with .coral/config.yaml");
      return { getStatus: async () => create(GetStatusResponseSchema, { appName: "shop" }) } as unknown as Colony;
    });
    await expect(client.getStatus({})).rejects.toThrow(/no colony here/);
    expect((await client.getStatus({})).appName).toBe("shop");
    expect((await client.getStatus({})).appName).toBe("shop");
    expect(attempts).toBe(2);
  });
});

describe("mcpClientConfig", () => {
  it("starts coral through npx, with the remote colony's URL and a token placeholder when remote", () => {
    expect(mcpClientConfig({})).toEqual({ mcpServers: { coral: { command: "npx", args: ["coral", "mcp", "server"] } } });
    expect(mcpClientConfig({ colonyUrl: "https://colony.example.com:9000", name: "shop" })).toEqual({
      mcpServers: {
        shop: { command: "npx", args: ["coral", "mcp", "server"], env: { CORAL_COLONY_URL: "https://colony.example.com:9000", CORAL_TOKEN: tokenPlaceholder } },
      },
    });
    expect(mcpClientConfig({ transport: "http", port: 3005 })).toEqual({
      mcpServers: { coral: { type: "http", url: "http://127.0.0.1:3005/mcp", headers: { Authorization: `Bearer ${tokenPlaceholder}` } } },
    });
  });
});
