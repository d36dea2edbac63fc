/**
 * @deprecated Import from "@coral/sdk" instead; this re-export is kept for one
 * release so apps that import "@coral/agent/sdk" keep working.
 */
export * from "@coral/sdk";
