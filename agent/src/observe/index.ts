/**
 * The agent's observers of one app: the process that listens on its port and
 * its descendants, as a set (Linux, /proc). Observers only:
 * nothing here sits in the app's traffic path.
 */
export { findListeningProcess, listenersOnPort } from "./listener.ts";
export type { ListeningProcess } from "./listener.ts";

export { sampleProcess, cpuPercent } from "./sample.ts";
export type { ProcessSample, ProcessSnapshot, SampleState } from "./sample.ts";

export { descendantsOf, processSet, readAllStats } from "./process-tree.ts";
export { sampleProcessSet } from "./set-sample.ts";
export type { ProcessSetSample, ProcessSetSnapshot } from "./set-sample.ts";

export { tcpConnections, processSockets, classifySockets } from "./connections.ts";
export type { ConnectionDirection, ListenSocket, ProcessSockets, TcpConnection } from "./connections.ts";

export { ProcessWatcher } from "./watcher.ts";
export type { ProcessEvent, ProcessEventType, ProcessWatcherEvents, ProcessWatcherOptions, WatcherStatus } from "./watcher.ts";

export { healthTargetFor, probeHealth } from "./health.ts";
export type { HealthResult, HealthTarget } from "./health.ts";

export { scrapePrometheus, parsePrometheusText, parsePromValue } from "./prometheus.ts";
export type { InvalidLine, PromMetricType, PromParseResult, PromSample, ScrapeOptions, ScrapeResult } from "./prometheus.ts";

export {
  TCP_STATES,
  decodeHexIp,
  formatEndpoint,
  formatIpv6,
  parseProcNetTcp,
  parseProcNetTcpLine,
  readTcpTables,
} from "./procnet.ts";
export type { ProcNetTcpEntry, TcpStateName } from "./procnet.ts";

export { parseProcStat, parseStatusRssBytes, parseBootTime, socketInodeFromLink, clockTicksPerSecond } from "./procfs.ts";
export type { ProcStat } from "./procfs.ts";
