// Pure functions that turn colony API responses into what people read.
// Colors only when asked (callers pass color: false for NO_COLOR or a pipe).
export { formatStatus, componentState, noComponentsHint, type StatusOptions, type Tone } from "./status.ts";
export { formatTopology, topologyToDot } from "./topology.ts";
export { formatEvents, formatDetails, noEventsHint } from "./events.ts";
export { formatMetrics, noMetricsHint } from "./metrics.ts";
export { formatHistory } from "./history.ts";
export { formatTokens, noTokensHint, scopeName } from "./tokens.ts";
export { formatDuration, formatNumber, formatTime, columns, visibleWidth, type FormatOptions } from "./text.ts";
export { clockTime, eventStats, formatEventLine, formatLineSummary, formatLogLine, formatSnapshot, sessionTarget, snapshotValues, formatFunctions, formatNs, formatSessions, formatSummary, sessionOutcome, isErrorReturn, type EventStats } from "./debug.ts";
export { formatInvitations, noInvitationsHint } from "./invitations.ts";
