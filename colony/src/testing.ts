// For tests and benchmarks only: temporary homes, a client pool that calls
// agents as the colony does, the scripted insights incident, and decoders to fuzz.
export { tempDir, useTempCoralHome } from "./config/testing.ts";
export { AgentClientPool } from "./debug/agent-pool.ts";
export { leakingFrontend, timeline, type Clock } from "./insights/testing.ts";
export { runInsights } from "./insights/index.ts";
export { EnrollRequestError, parseEnrollRequest } from "./mesh/enroll-request.ts";
