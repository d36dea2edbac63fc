export { agentIdFor, startAgent, type AgentOptions, type AgentNotice, type RunningAgent, type AgentLogger } from "./runtime/agent.ts";
export { openAgentStore } from "./storage/index.ts";
export { type Invitation, UntrustedColonyError } from "./runtime/colony-link.ts";
export { loadAgentIdentity, identityFileName, type AgentIdentity } from "./runtime/identity.ts";
export { rollbackConfigProblems, type AgentRollbackConfig } from "./control/index.ts";
export { startHostAgent, UnknownServiceError, type HostAgent, type HostAgentOptions, type HostedService, type SharedAgentOptions } from "./runtime/host.ts";
export { checkServiceName, checkServiceSet, diffServices, healthUrlFor, parseServiceSpec, ServiceSpecError, type ServiceSpec } from "./runtime/services.ts";
export { controlRequest, startControlSocket, type ControlAnswer, type ControlRequest } from "./runtime/control-socket.ts";
export { processSet } from "./observe/process-tree.ts";
export { kernelConnectionsUnavailable } from "./observe/kernel-connections.ts";
// The agent's two HTTP clients for health probes (bench/agent-costs compares their CPU).
export { httpGet } from "./observe/http-get.ts";
export { httpStatus } from "./observe/http-status.ts";
