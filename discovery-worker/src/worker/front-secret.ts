// Self-hosted discovery runs the worker in workerd shards behind a Node front
// (self-hosted/server.ts). Each start picks a random secret, gives it to the
// shards as FRONT_SECRET and adds it to every request it forwards in this
// header, so the shards' 127.0.0.1 sockets answer the front only. Shared by
// both sides, so it holds no runtime-specific code.
export const frontSecretHeader = "x-coral-front-secret";
