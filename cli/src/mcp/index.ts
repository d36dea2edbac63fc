export { callTool, coralMcpInstructions, createCoralMcpServer, type CoralMcpServerOptions } from "./server.ts";
export { keepStdoutForFrames, serveStdio } from "./stdio.ts";
export { mcpPath, mcpTokenHelp, startMcpHttpServer, type McpHttpOptions, type RunningMcpHttpServer } from "./http.ts";
export { lazyClient, lazyColonyClient } from "./lazy-client.ts";
export { ExternalMcpServers, backoffDelay, expandEnv, namespacedToolName, resultText, type ExternalServerStatus, type StartExternalOptions } from "./client.ts";
