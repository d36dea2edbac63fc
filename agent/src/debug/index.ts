// Live debugging, agent side: ELF symbols, bpftrace program generation and
// uprobe sessions with hard limits.
export {
  closeMatches,
  ElfError,
  functionsOf,
  isGoBinary,
  listFunctions,
  parseElf,
  pclntabFunctionsOf,
  type ElfFile,
  type ElfSection,
  type ElfSegment,
  type ElfSymbol,
  type FunctionInfo,
  type FunctionList,
  type ListFunctionsOptions,
} from "./elf.ts";
export {
  BPF_DIR,
  DebugError,
  generateProgram,
  LIMITS,
  type DebugErrorCode,
  type GeneratedProgram,
  type ProgramOptions,
} from "./program.ts";
export {
  findBpftrace,
  hasBpfPermission,
  parseEventLine,
  SessionLimiter,
  summarize,
  UprobeSession,
  type SessionOptions,
  type SessionSummary,
  type StopReason,
  type UprobeEvent,
} from "./session.ts";
export { GoRetSession, type GoRetOptions } from "./go-ret.ts";
export { NodeFunctionSession, withNodeFunctions, type NodeSessionOptions } from "./node/session.ts";
export type { NodeFunction } from "./node/scripts.ts";
/** The loopback ports a process listens on (its V8 inspector's among them while a Node session runs). */
export { loopbackListeners } from "../profile/inspector.ts";
