// Control: feature flags and rollbacks, driven through the agents.
export { ControlPlane, type ControlPlaneOptions } from "./plane.ts";
export { controlService } from "./service.ts";
export { rollbackMachine, type RollbackContext, type RollbackState } from "./rollback-machine.ts";
