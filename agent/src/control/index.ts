// The agent's control plane: the app's SDK (health, info, flags, rollback
// handler) and the colony's flag and rollback calls.
export { SdkLink, type SdkReport, type SdkLinkOptions } from "./sdk-link.ts";
export { RollbackExecutor, type RollbackExecutorOptions } from "./rollback.ts";
export { rollbackConfigProblems, type AgentRollbackConfig } from "./rollback-config.ts";
