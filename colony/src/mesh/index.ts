// The colony's WireGuard mesh: interface and peers, bootstrap CA and endpoint.
export { bootstrapCaFingerprint, issueBootstrapCertificates } from "./bootstrap-ca.ts";
export type { BootstrapCertificates } from "./bootstrap-ca.ts";
export { BootstrapPortInUseError, startBootstrapServer } from "./bootstrap-server.ts";
export type { BootstrapServer } from "./bootstrap-server.ts";
export { MeshRequestError, startColonyMesh } from "./colony-mesh.ts";
export type { ColonyMesh, PeerView } from "./colony-mesh.ts";
