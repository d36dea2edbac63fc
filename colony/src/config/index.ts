// The colony's configuration: .coral/config.yaml, its keys and local token,
// and the list of colonies this machine knows ($CORAL_HOME/colonies.yaml).
export { parseDuration, durationToString, durationUnits, type DurationUnit, type ParsedDuration } from "@coral/common/duration";
export { ConfigError, displayPath, type ConfigIssue } from "./errors.ts";
export { nameLimits, nameProblem, newColonyId, slugify } from "./names.ts";
export {
  colonyConfigSchema,
  type ColonyConfig,
  type ColonyConfigFile,
  type ColonyConfigInput,
  type RetentionMs,
} from "./schema.ts";
export {
  CONFIG_FILE,
  applyEnvOverrides,
  configPath,
  envOverrides,
  loadColonyConfig,
  parseColonyConfig,
  readColonyConfigFile,
  resolveColonyConfig,
  writeColonyConfig,
  type LoadOptions,
  type WriteOptions,
} from "./load.ts";
export {
  KEY_FILES,
  KeyError,
  checkPrivateFile,
  createColonyKeys,
  createLocalToken,
  generateWireguardKeyPair,
  keysDir,
  loadColonyKeys,
  localTokenPath,
  readLocalToken,
  wireguardPublicKey,
  type ColonyKeys,
  type CreatedKeys,
  type WireguardKeyPair,
} from "./keys.ts";
export {
  coralHome,
  currentColony,
  listColonies,
  registerColony,
  registryPath,
  unregisterColony,
  useColony,
  type ColonyEntry,
  type RegistryOptions,
} from "./registry.ts";
export { mcpSectionSchema, mcpServerSchema, type McpSection, type McpServerSettings } from "./mcp.ts";
