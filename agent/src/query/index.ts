// Read-only SQL over the agent's store, for `coral query --agent` (served by
// ../api/query-service.ts). Other folders import this file only.
export { QueryRunner, defaultMaxBytes, type QueryRunnerOptions, type ReadQuery, type QueryResult, type QueryColumnInfo, type QueryTableInfo } from "./runner.ts";
export { QueryError, type QueryErrorKind } from "./errors.ts";
