// Node-side surface of the discovery package: the self-hosted server.
export * from "./self-hosted/index.ts";
