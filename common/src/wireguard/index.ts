// Userspace WireGuard for the mesh mode: X25519 keys, a UAPI client and a
// wireguard-go interface managed with iproute2. Node-only; the agent package
// exports it as "@coral/common/wireguard".
export { KEY_LENGTH, generateKeyPair, generatePrivateKey, isKey, keyBytes, keyFromHex, keyToHex, publicKeyOf } from "./keys.ts";
export type { WireguardKeyPair } from "./keys.ts";
export {
  GET_REQUEST,
  UAPI_SOCKET_DIR,
  UapiClient,
  UapiError,
  UapiProtocolError,
  checkCidr,
  checkEndpoint,
  formatSetLines,
  formatSetRequest,
  isPortInUse,
  parseGetResponse,
  parseSetResponse,
  uapiSocketPath,
} from "./uapi.ts";
export type { DeviceConfig, DeviceState, PeerConfig, PeerState, SetRequest, UapiClientOptions } from "./uapi.ts";
export {
  INSTALL_COMMAND,
  TUN_DEVICE,
  WireguardInterface,
  WireguardSetupError,
  checkPrerequisites,
  findExecutable,
  wireguardUnavailableReason,
} from "./interface.ts";
export type { WireguardInterfaceOptions } from "./interface.ts";
export { ENROLL_PATH, EnrollmentError, certificateFingerprint, enrollWithColony, pinnedChainProblem } from "./enroll.ts";
export type { EnrollRequestJson, EnrollResponseJson } from "./enroll.ts";
export { ensureEnrollment, interfaceNameFor, loadEnrollment, numericEndpoint, startMeshInterface } from "./join.ts";
export type { MeshEnrollment } from "./join.ts";
