export * from "./validation.ts";
export * from "./signing.ts";
export * from "./base64.ts";
export * from "./discovery-fields.ts";
export * as discoveryPb from "../gen/coral/discovery/v1/discovery_pb.ts";
export { DiscoveryService, BootstrapIntent } from "../gen/coral/discovery/v1/discovery_pb.ts";
export * from "./discovery-client.ts";
export * from "./mesh-auth.ts";
export * from "./join-token.ts";
