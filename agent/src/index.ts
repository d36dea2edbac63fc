export { agentIdFor, startAgent, type AgentOptions, type AgentNotice, type RunningAgent, type AgentLogger } from "./runtime/agent.ts";
export { openAgentStore } from "./storage/index.ts";
