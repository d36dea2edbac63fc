export { startAgent, type AgentOptions, type AgentNotice, type RunningAgent, type AgentLogger } from "./runtime/agent.ts";
