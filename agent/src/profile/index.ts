// CPU profiling, agent side: bpftrace samples user and kernel stacks of the
// observed process set; the agent symbolizes them from the processes' own
// binaries (ELF symbol tables, Go's .gopclntab). Node processes go through
// their V8 inspector instead, for JavaScript function names.
export { ProfileError, type ProfileErrorCode } from "./errors.ts";
export { ContinuousProfiler, topStacks, type ContinuousProfilerOptions, type ContinuousState, type ContinuousStatus, type ProfileWindowData } from "./continuous.ts";
export { CONTINUOUS_LIMITS, PROFILE_LIMITS, profileParameters, type ProfileParameters } from "./program.ts";
export { CpuProfiler, type CpuProfileData, type CpuProfileRequest, type CpuProfilerOptions, type ProfilerLogger } from "./profiler.ts";
export type { ProfileFrameData, ProfileStackData } from "./symbolize.ts";
export { readModuleSymbols, SymbolCache } from "./symbols.ts";
export { HEAP_LIMITS, HeapProfiler, heapParameters, type HeapParameters, type HeapProfileData, type HeapProfileRequest, type HeapProfilerOptions, type HeapStackData } from "./heap.ts";
